"""`make mutation`: mutation testing of the decision path with mutmut, and a report.

mutmut (pinned in uv.lock; configured in pyproject.toml [tool.mutmut]) copies the modules
into mutants/, runs the Lambda unit tests once to learn which tests call which function,
then runs each mutant (one AST change) in a forked worker against only those tests.
scripts/mutation_plugin.py lets its trampolines see the modules under the names the tests
load them by.

This script starts that run from a clean mutants/ (mutmut keeps results between runs and
would not re-test a survivor after its test was added) except for mutmut's stats when only
test files were added since the last run (mutmut then traces just the new tests; see
`stats_reusable`), then prints the score per module and
every survivor: file:line, function, the changed source line(s) and mutmut's name for
`mutmut show`. A survivor that cannot change behaviour is listed in docs/mutation-harmless.toml
with the reason; it is shown as harmless and left out of the score. An entry that matches no
surviving mutant any more is reported as stale.

    python scripts/mutation.py                      # everything in [tool.mutmut] source_paths
    python scripts/mutation.py functions/qa_test     # one module (or several)
    python scripts/mutation.py --report-only         # re-read mutants/ (e.g. after editing the list)
    python scripts/mutation.py --fresh-stats         # trace the whole test selection again
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HARMLESS_FILE = Path("docs/mutation-harmless.toml")
DOCS_FILE = Path("docs/mutation.md")
REPORT_DIR = Path("build/mutation")
RUN_FILE = "harness-run.json"  # in mutants/, next to the results it describes
STATS_FILE = "mutmut-stats.json"  # mutmut's: which test calls which function, and each test's duration
INPUTS_FILE = "harness-inputs.json"  # in mutants/: the files the stats in STATS_FILE were collected from
BEGIN = "<!-- BEGIN GENERATED: python scripts/mutation.py --report-only --write-docs -->"
END = "<!-- END GENERATED -->"
# The first run's record (issue 13, first half): read for the "before" column, never rewritten.
BEFORE_BEGIN = "<!-- BEGIN BEFORE: the first run, kept as it was -->"
BEFORE_END = "<!-- END BEFORE -->"

# mutmut's statuses (mutmut.stats.status_by_exit_code) grouped by what they mean here.
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}  # the tests failed, hung or crashed
UNDETECTED = {"survived", "no tests", "suspicious"}  # every test that reaches the code passed (or none does)
NOT_RUN = {"not checked", "skipped", "check was interrupted by user"}


@dataclass
class Mutant:
    name: str  # mutmut's: functions.qa_test.app.x_qa_test__mutmut_12 (the number shifts when code changes)
    path: str  # functions/qa_test/app.py
    function: str  # qa_test, or Class.method
    status: str
    line: int = 0  # of the first changed line, in the source file
    removed: tuple[str, ...] = ()  # changed source lines, stripped
    added: tuple[str, ...] = ()
    harmless: str | None = None  # the reason, when the harmless list names it


@dataclass
class HarmlessEntry:
    index: int  # 1-based position in the file, for messages
    file: str
    function: str
    removed: tuple[str, ...]
    added: tuple[str, ...]
    reason: str
    occurrence: int | None = None
    matched: list[Mutant] = field(default_factory=list)

    def describe(self) -> str:
        return f"#{self.index} {self.file} {self.function}: {' / '.join(self.removed)} -> {' / '.join(self.added)}"


def mutmut_config(pyproject: Path = Path("pyproject.toml")) -> dict:
    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["mutmut"]


def source_files(config: dict) -> list[str]:
    """The .py files mutmut mutates, as repository-relative paths."""
    files = []
    for root in config["source_paths"]:
        base = Path(root)
        candidates = [base] if base.is_file() else sorted(base.rglob("*.py"))
        files.extend(str(p) for p in candidates if p.suffix == ".py" and "__pycache__" not in p.parts)
    return files


def module_name(path: str) -> str:
    """mutmut's dotted name for a file (mutmut.utils.format_utils.get_mutant_name, without the src. rule)."""
    name = path[: -len(".py")].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def function_of(mutant_name: str) -> str:
    """`pkg.mod.x_deploy__mutmut_3` -> `deploy`; `pkg.mod.xǁPageǁrender__mutmut_1` -> `Page.render`."""
    mangled = mutant_name.rpartition(".")[2].partition("__mutmut_")[0]
    if mangled.startswith("x_"):
        return mangled[2:]
    _, cls, method = mangled.split("ǁ")
    return f"{cls}.{method}"


def status_of(exit_code) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[exit_code]


def parse_diff(diff: str, function: str) -> tuple[int, int | None, tuple[str, ...], tuple[str, ...]]:
    """Read the unified diff mutmut shows for a mutant (the original function against the mutant).

    Its line numbers count from the first line of the function's text as mutmut wrote it.
    Returns (that number for the first changed line, the same for the `def` line if the diff
    shows it, the removed lines, the added lines); lines stripped."""
    name = function.rpartition(".")[2]
    def_pattern = re.compile(rf"^[ +-]?\s*(async\s+)?def\s+{re.escape(name)}\s*\(")
    removed: list[str] = []
    added: list[str] = []
    first_changed = None
    def_offset = None
    old_line = 0
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        header = re.match(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@", line)
        if header:
            old_line = int(header.group(1))
            continue
        if line.startswith("+"):
            added.append(line[1:].strip())
            continue
        if def_offset is None and not line.startswith("+") and def_pattern.match(line):
            def_offset = old_line
        if line.startswith("-"):
            removed.append(line[1:].strip())
            if first_changed is None:
                first_changed = old_line
        old_line += 1
    return (old_line if first_changed is None else first_changed), def_offset, tuple(removed), tuple(added)


def locate(source_lines: list[str], span: tuple[int, int], first_changed: int, def_offset: int | None,
           removed: tuple[str, ...]) -> int:
    """The file line of a mutant's first changed line, within its function's `span` (def line,
    last line). The diff's numbering starts at the function text, which may begin with comments
    above the `def`; so the estimate from it is checked against the removed text, and the nearest
    line of the function that reads the same wins (a function can repeat a line)."""
    start, end = span
    estimate = start + first_changed - (def_offset or 1)
    if not removed:
        return estimate
    same = [n for n in range(start, end + 1) if source_lines[n - 1].strip() == removed[0]]
    return min(same, key=lambda n: abs(n - estimate)) if same else estimate


def function_spans(source: str) -> dict[str, tuple[int, int]]:
    """Top-level functions and methods (what mutmut mutates) -> (line of the `def`, last line)."""
    spans = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            spans[node.name] = (node.lineno, node.end_lineno)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    spans[f"{node.name}.{item.name}"] = (item.lineno, item.end_lineno)
    return spans


def out_of_reach(source: str) -> list[str]:
    """What mutmut leaves alone in a file: decorated functions (it only wraps undecorated ones and
    @staticmethod/@classmethod) and module-level statements (run once, at import). Objects built
    without positional arguments (Logger(), Tracer(), the API resolver) are wiring, not listed."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.decorator_list:
            names.append(f"{node.name}() (decorated)")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            if isinstance(node.value, ast.Call) and not node.value.args:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.extend(t.id for t in targets if isinstance(t, ast.Name))
    return names


def load_harmless(path: Path) -> list[HarmlessEntry]:
    if not path.exists():
        return []
    entries = []
    for index, raw in enumerate(tomllib.loads(path.read_text(encoding="utf-8")).get("harmless", []), start=1):
        missing = {"file", "function", "from", "to", "reason"} - raw.keys()
        if missing:
            raise SystemExit(f"{path}: entry #{index} lacks {', '.join(sorted(missing))}")
        if not raw["reason"].strip():
            raise SystemExit(f"{path}: entry #{index} needs a reason")
        entries.append(HarmlessEntry(
            index=index,
            file=raw["file"],
            function=raw["function"],
            removed=tuple(line.strip() for line in raw["from"].strip().splitlines()),
            added=tuple(line.strip() for line in raw["to"].strip().splitlines()),
            reason=" ".join(raw["reason"].split()),
            occurrence=raw.get("occurrence"),
        ))
    return entries


def apply_harmless(mutants: list[Mutant], entries: list[HarmlessEntry]) -> None:
    """Mark the undetected mutants each entry names; record every mutant (of any status) it matches,
    so that an entry whose mutant is now killed, or gone, can be reported as stale."""
    for entry in entries:
        same = [m for m in mutants if m.path == entry.file and m.function == entry.function
                and m.removed == entry.removed and m.added == entry.added]
        same.sort(key=lambda m: (m.line, m.name))
        if entry.occurrence is not None:
            same = same[entry.occurrence - 1: entry.occurrence]
        entry.matched = same
        for mutant in same:
            if mutant.status in UNDETECTED:
                mutant.harmless = entry.reason


def stale_entries(entries: list[HarmlessEntry], checked_files: set[str]) -> list[tuple[HarmlessEntry, str]]:
    stale = []
    for entry in entries:
        if entry.file not in checked_files:
            continue  # its module was not part of this run
        if not entry.matched:
            stale.append((entry, "matches no mutant (the code changed?)"))
        elif all(m.status in DETECTED for m in entry.matched):
            stale.append((entry, "its mutant is killed now: remove the entry"))
    return stale


@dataclass
class ModuleScore:
    path: str
    mutants: int = 0
    killed: int = 0
    survived: int = 0
    harmless: int = 0
    not_run: int = 0

    @property
    def score(self) -> float | None:
        counted = self.killed + self.survived
        return None if counted == 0 else 100.0 * self.killed / counted


def scores(mutants: list[Mutant], files: list[str]) -> list[ModuleScore]:
    by_path = {path: ModuleScore(path) for path in files}
    for m in mutants:
        s = by_path[m.path]
        s.mutants += 1
        if m.status in DETECTED:
            s.killed += 1
        elif m.status in NOT_RUN:
            s.not_run += 1
        elif m.harmless:
            s.harmless += 1
        else:
            s.survived += 1
    return [s for s in by_path.values() if s.mutants]


def collect(files: list[str], needs_diff) -> list[Mutant]:
    """Read mutmut's results (mutants/<file>.meta) and, for the mutants `needs_diff` picks, where and
    what each changes (mutmut's own diff of the mutant against the original function)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    mutants = []
    for path in files:
        meta = Path("mutants") / (path + ".meta")
        if not meta.exists():
            continue
        exit_codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        source = Path(path).read_text(encoding="utf-8")
        source_lines = source.splitlines()
        spans = function_spans(source)
        for name, code in sorted(exit_codes.items()):
            mutant = Mutant(name=name, path=path, function=function_of(name), status=status_of(code))
            if needs_diff(mutant):
                first, def_offset, mutant.removed, mutant.added = parse_diff(
                    get_diff_for_mutant(name, path=path), mutant.function)
                span = spans.get(mutant.function, (1, len(source_lines)))
                mutant.line = locate(source_lines, span, first, def_offset, mutant.removed)
            mutants.append(mutant)
    return mutants


def _order(m: Mutant) -> tuple:
    return m.path, m.line, m.function, int(m.name.rpartition("__mutmut_")[2] or 0)


def report(files: list[str], harmless_path: Path = HARMLESS_FILE) -> tuple[str, dict]:
    entries = load_harmless(harmless_path)
    named = {(e.file, e.function) for e in entries}
    mutants = collect(files, lambda m: m.status in UNDETECTED or (m.status in DETECTED and (m.path, m.function) in named))
    apply_harmless(mutants, entries)
    checked = {m.path for m in mutants if m.status not in NOT_RUN}
    table = scores(mutants, files)
    stale = stale_entries(entries, checked)

    from importlib.metadata import version

    out = [f"Mutation score per module (mutmut {version('mutmut')}): killed / (killed + survived); "
           "harmless survivors are left out"]
    out.append(f"{'module':48} {'mutants':>7} {'killed':>7} {'survived':>8} {'harmless':>8} {'score':>7}")
    total = ModuleScore("total")
    for s in table:
        score = "-" if s.score is None else f"{s.score:.1f}%"
        note = f"  ({s.not_run} not run)" if s.not_run else ""
        out.append(f"{s.path:48} {s.mutants:7} {s.killed:7} {s.survived:8} {s.harmless:8} {score:>7}{note}")
        for attr in ("mutants", "killed", "survived", "harmless", "not_run"):
            setattr(total, attr, getattr(total, attr) + getattr(s, attr))
    if total.score is not None:
        out.append(f"{'total':48} {total.mutants:7} {total.killed:7} {total.survived:8} {total.harmless:8} "
                   f"{total.score:6.1f}%")

    survivors = sorted((m for m in mutants if m.status in UNDETECTED and not m.harmless), key=_order)
    out.append("")
    out.append(f"Survivors ({len(survivors)}): `mutmut show <name>` prints one as a diff")
    for m in survivors:
        label = "" if m.status == "survived" else f" [{m.status}]"
        out.append(f"{m.path}:{m.line} in {m.function}(){label}  {m.name.rpartition('.')[2]}")
        out.extend(f"    - {line}" for line in m.removed)
        out.extend(f"    + {line}" for line in m.added)
    harmless = sorted((m for m in mutants if m.harmless), key=_order)
    if harmless:
        out.append("")
        out.append(f"Harmless ({len(harmless)}), from {harmless_path}:")
        for m in harmless:
            out.append(f"{m.path}:{m.line} in {m.function}(): {' / '.join(m.removed)} -> {' / '.join(m.added)}")
            out.append(f"    harmless ({m.harmless})")
    if stale:
        out.append("")
        out.append(f"Stale entries in {harmless_path} ({len(stale)}):")
        out.extend(f"{entry.describe()}: {why}" for entry, why in stale)
    not_run = sum(s.not_run for s in table)
    if not_run:
        out.append("")
        out.append(f"{not_run} mutants were not run (an interrupted run, or modules left out of this one).")
    reach = [(path, out_of_reach(Path(path).read_text(encoding="utf-8"))) for path in sorted(checked)]
    reach = [(path, names) for path, names in reach if names]
    if reach:
        out.append("")
        out.append("Not mutated (mutmut leaves decorated functions and module-level code alone):")
        out.extend(f"{path}: {', '.join(names)}" for path, names in reach)
    data = {
        "mutmut": version("mutmut"),
        "modules": [{**asdict(s), "score": s.score} for s in table],
        "survivors": [asdict(m) for m in survivors],
        "harmless": [asdict(m) for m in harmless],
        "stale": [{"entry": e.describe(), "why": why} for e, why in stale],
    }
    return "\n".join(out), data


def _cell(lines) -> str:
    text = " ⏎ ".join(lines) if lines else "(removed)"
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _run_cell(run: dict | None) -> str:
    if not run:
        return "-"
    stats = ", stats reused" if run.get("stats") == "reused" else ""
    return (f"{run['started'][:10]} {run.get('commit') or '?'}: {run['seconds'] / 60:.0f} min wall, "
            f"{run['cpu_seconds'] / 60:.0f} CPU-min, load {run['load_1min_mean']}{stats}")


_ROW = re.compile(r"^\| `(?P<path>[^`]+)` \|")
_DETAILS = "<details><summary><code>"
TABLE_HEAD = ("| module | before | mutants | killed | survived | harmless | not run | score | run |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|---|")


def module_sections(data: dict, run: dict | None, before: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Per module of this report: (its row in the scores table, its survivors as a <details> block or "")."""
    sections = {}
    for m in data["modules"]:
        score = "-" if m["score"] is None else f"{m['score']:.1f}%"
        row = (f"| `{m['path']}` | {before.get(m['path'], '-')} | {m['mutants']} | {m['killed']} | {m['survived']} "
               f"| {m['harmless']} | {m['not_run']} | {score} | {_run_cell(run)} |")
        survivors = [s for s in data["survivors"] if s["path"] == m["path"]]
        details = ""
        if survivors:
            lines = [f"{_DETAILS}{m['path']}</code>: {len(survivors)} survivors</summary>", "",
                     "| line | function | original | mutant |", "|---:|---|---|---|"]
            for s in survivors:
                status = "" if s["status"] == "survived" else f" ({s['status']})"
                lines.append(f"| {s['line']} | `{s['function']}`{status} | {_cell(s['removed'])} | {_cell(s['added'])} |")
            lines += ["", "</details>"]
            details = "\n".join(lines)
        sections[m["path"]] = (row, details)
    return sections


def parse_block(block: str) -> dict[str, tuple[str, str]]:
    """The per-module sections of a generated block, as `module_sections` wrote them."""
    rows = {match["path"]: line for line in block.splitlines() if (match := _ROW.match(line))}
    details = {}
    for part in block.split(_DETAILS)[1:]:
        details[part.partition("</code>")[0]] = _DETAILS + part.partition("</details>")[0] + "</details>"
    return {path: (row, details.get(path, "")) for path, row in rows.items()}


def before_scores(text: str) -> dict[str, str]:
    """module -> score in the frozen BEFORE block of the page (its last numeric column)."""
    if BEFORE_BEGIN not in text:
        return {}
    block = text.partition(BEFORE_BEGIN)[2].partition(BEFORE_END)[0]
    scores = {}
    for line in block.splitlines():
        match = _ROW.match(line)
        if match:
            scores[match["path"]] = [cell.strip() for cell in line.strip().strip("|").split("|")][-1]
    return scores


def markdown(sections: dict[str, tuple[str, str]], order: list[str]) -> str:
    """The generated block: one row per module that has been run (in `order`), then the survivors."""
    paths = [p for p in order if p in sections] + sorted(p for p in sections if p not in order)
    out = [TABLE_HEAD, *(sections[p][0] for p in paths)]
    for path in paths:
        if sections[path][1]:
            out += ["", sections[path][1]]
    out += ["", f"Harmless survivors, with the reasons, are listed in `{HARMLESS_FILE}`."]
    return "\n".join(out)


def write_docs(data: dict, run: dict | None, order: list[str], path: Path = DOCS_FILE) -> None:
    """Rewrite this report's modules in the generated block of the page, keeping the other modules'
    rows (from earlier runs) and everything outside the markers; the BEFORE block is only read."""
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} lacks the markers {BEGIN} ... {END}")
    head, _, rest = text.partition(BEGIN)
    old, _, tail = rest.partition(END)
    sections = {**parse_block(old), **module_sections(data, run, before_scores(text))}
    path.write_text(f"{head}{BEGIN}\n{markdown(sections, order)}\n{END}{tail}", encoding="utf-8")


def chosen_files(selection: list[str], files: list[str]) -> list[str]:
    """`functions/qa_test` or `functions/qa_test/app.py` (or a glob) -> those source files."""
    def picks(pattern: str, path: str) -> bool:
        return path == pattern or path.startswith(pattern.rstrip("/") + "/") or fnmatch(path, pattern)

    unknown = [s for s in selection if not any(picks(s, f) for f in files)]
    if unknown:
        raise SystemExit(f"not in [tool.mutmut] source_paths: {', '.join(unknown)}")
    return [f for f in files if any(picks(s, f) for s in selection)]


def input_hashes(config: dict) -> dict[str, str]:
    """sha256 of every file a mutation run copies and reads: the mutated sources, the tests, what
    also_copy brings along, and the configuration and lock file. This harness's own outputs in docs/
    are left out (no test reads them, and --write-docs rewrites one after every run)."""
    roots = [*config["source_paths"], "tests", *config.get("also_copy", []), "pyproject.toml", "uv.lock"]
    own = {str(HARMLESS_FILE), str(DOCS_FILE)}
    hashes = {}
    for root in roots:
        base = Path(root)
        for path in ([base] if base.is_file() else sorted(base.rglob("*")) if base.is_dir() else []):
            name = str(path)
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc" and name not in own:
                hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def stats_reusable(before: dict[str, str] | None, now: dict[str, str]) -> bool:
    """Whether mutmut's stats from a run over the files `before` still hold for the files `now`.

    mutmut runs its stats (the whole test selection, traced: which test calls which function) only
    for tests it has not seen, so after *adding* test files the earlier stats stay right and only
    the new tests need tracing. Any other change (a source, an existing test, a fixture, the
    configuration, the lock file; a file removed) can move which test reaches which function:
    then the stats are collected afresh."""
    if not before:
        return False
    if any(now.get(path) != digest for path, digest in before.items()):
        return False
    return all(path.startswith("tests/") for path in now.keys() - before.keys())


def fresh_mutants_dir(inputs: dict[str, str], reuse_stats: bool) -> bool:
    """Empty mutants/ (mutmut keeps a survivor's result even after a test that kills it was added,
    and does not re-copy a changed source over an old copy), keeping only its stats when
    `stats_reusable` allows. Returns whether they were kept."""
    mutants = Path("mutants")
    kept = None
    if reuse_stats and (mutants / STATS_FILE).exists() and (mutants / INPUTS_FILE).exists():
        before = json.loads((mutants / INPUTS_FILE).read_text(encoding="utf-8"))
        if stats_reusable(before, inputs):
            kept = (mutants / STATS_FILE).read_bytes()
    shutil.rmtree(mutants, ignore_errors=True)
    if kept is not None:
        mutants.mkdir()
        (mutants / STATS_FILE).write_bytes(kept)
    return kept is not None


def run_mutmut(globs: list[str], max_children: int, log_path: Path, reuse_stats: bool = True) -> int:
    """Run mutmut in a fresh mutants/; its output goes to `log_path`, its progress here every 30 s."""
    inputs = input_hashes(mutmut_config())
    stats_kept = fresh_mutants_dir(inputs, reuse_stats)
    print("stats: " + ("reused from the last run (only tests added since then are traced)" if stats_kept
                       else "collected afresh (the whole test selection, traced)"), flush=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *globs]
    print(f"$ {' '.join(command)}  (output: {log_path})", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started_at = datetime.now(timezone.utc)
    loads = [os.getloadavg()[0]]
    started = last = time.monotonic()
    progress = re.compile(r"(\d+)/(\d+)\s+🎉 (\d+).*?🙁 (\d+)")
    latest = ""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        tail = ""
        while True:
            chunk = process.stdout.read1(65536)
            if not chunk:
                break
            log.write(chunk)
            tail = (tail + chunk.decode("utf-8", errors="replace"))[-4096:]
            found = progress.findall(tail)
            if found:
                done, total, killed, survived = found[-1]
                latest = f"{done}/{total} mutants, {killed} killed, {survived} survived"
            if time.monotonic() - last >= 30:
                last = time.monotonic()
                loads.append(os.getloadavg()[0])
                print(f"  {int(last - started):5d}s  {latest or 'preparing (copying, stats run over the tests)'}",
                      flush=True)
        code = process.wait()
    seconds = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    loads.append(os.getloadavg()[0])
    print(f"mutmut finished in {seconds:.0f}s with exit code {code}", flush=True)
    if Path("mutants").is_dir():
        # How long, and how busy the machine was: the time depends on both.
        (Path("mutants") / RUN_FILE).write_text(json.dumps({
            "started": started_at.isoformat(timespec="seconds"),
            "seconds": round(seconds),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime),
            "cores": os.cpu_count(),
            "max_children": max_children,
            "load_1min_mean": round(sum(loads) / len(loads), 1),
            # "+changes": the run saw uncommitted edits (e.g. the tests being written).
            "commit": (_git("rev-parse", "--short", "HEAD") or "?") + ("+changes" if _git("status", "--porcelain") else ""),
            "modules": globs or "all",
            "stats": "reused" if stats_kept else "fresh",
        }, indent=2) + "\n", encoding="utf-8")
        (Path("mutants") / INPUTS_FILE).write_text(json.dumps(inputs, indent=0) + "\n", encoding="utf-8")
    return code


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths under [tool.mutmut] source_paths (default: all)")
    parser.add_argument("--report-only", action="store_true", help="report on the existing mutants/ without running")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--fresh-stats", action="store_true",
                        help="trace the whole test selection again even when only tests were added since the last run")
    parser.add_argument("--fail-under", type=float, default=0.0,
                        help="exit 1 when a module scores below this percentage")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"also rewrite the generated part of {DOCS_FILE} (scores, survivors) from this report")
    args = parser.parse_args(argv)
    os.chdir(REPO_ROOT)
    files = source_files(mutmut_config())
    selected = chosen_files(args.modules, files) if args.modules else files
    if not args.report_only:
        # mutmut selects mutants by name: <dotted module>.x_<function>__mutmut_<n> (xǁ<class>ǁ for methods)
        globs = [module_name(f) + ".x*" for f in selected] if args.modules else []
        code = run_mutmut(globs, args.max_children, REPORT_DIR / "mutmut.log", reuse_stats=not args.fresh_stats)
        if code != 0:
            print(f"mutmut failed; see the end of {REPORT_DIR / 'mutmut.log'}", file=sys.stderr)
            return code
    if not Path("mutants").is_dir():
        raise SystemExit("no mutants/ directory: run without --report-only first")
    text, data = report(selected)
    print(text)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / "report.txt").write_text(text + "\n", encoding="utf-8")
    (REPORT_DIR / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.write_docs:
        run_file = Path("mutants") / RUN_FILE
        run = json.loads(run_file.read_text(encoding="utf-8")) if run_file.exists() else None
        write_docs(data, run, files)
        print(f"\nwrote the generated part of {DOCS_FILE}")
    low = [m for m in data["modules"] if m["score"] is not None and m["score"] < args.fail_under]
    if low:
        print(f"\nbelow {args.fail_under}%: {', '.join(m['path'] for m in low)}", file=sys.stderr)
        return 1
    if any(m["not_run"] for m in data["modules"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
