"""`make mutation`'s own logic (scripts/mutation.py, scripts/mutation_plugin.py), without the
whole mutation run: the name mapping the trampolines need, reading mutmut's diffs, the
harmless list, the docs block, when mutmut's stats are kept, and a real mutmut run (then a rerun after
adding a test) over a two-file project laid out like this one."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from scripts import mutation
from scripts.mutation_plugin import path_name, runtime_name


@pytest.mark.parametrize("runtime, path", [
    ("localmode_lambda_qa_test", "functions.qa_test.app"),
    ("localmode_lambda_deploy_production.x_claim_production", "functions.deploy_production.app.x_claim_production"),
    ("pipeline_common.s3.x_parse_s3_uri", "functions.common.pipeline_common.s3.x_parse_s3_uri"),
    ("pipeline_common", "functions.common.pipeline_common"),
])
def test_trampoline_names_map_both_ways(runtime, path):
    assert path_name(runtime) == path
    assert runtime_name(path) == runtime


@pytest.mark.parametrize("marker", ["", "stats", "fail", "mutant_generation", "json.decoder.x_f__mutmut_1"])
def test_mutmut_markers_and_other_modules_pass_through(marker):
    assert runtime_name(marker) == marker
    assert path_name(marker) == marker


def test_the_loader_names_handlers_as_the_plugin_expects():
    # The plugin's mapping is only right while localmode loads app.py under this name.
    from localmode.lambdas import LocalLambdas

    module = LocalLambdas(region="us-east-1").module("cleanup")
    assert module.__name__ == "localmode_lambda_cleanup"
    assert path_name(module.__name__) == "functions.cleanup.app"


def test_function_of_mutmut_names():
    assert mutation.function_of("functions.qa_test.app.x_qa_test__mutmut_12") == "qa_test"
    assert mutation.function_of("functions.approval_api.app.x__closed_page__mutmut_3") == "_closed_page"
    assert mutation.function_of("pkg.mod.xǁPageǁrender__mutmut_1") == "Page.render"


SOURCE = textwrap.dedent('''\
    """A module."""


    # a comment mutmut keeps with the function
    def deploy(status):
        if status == "Creating":
            return "created"
        if status == "Updating":
            return "updated"
        if status == "InService":
            return "updated"
        return None
''')


def test_a_diff_is_located_on_the_changed_line_even_when_the_text_repeats():
    diff = textwrap.dedent('''\
        --- functions/x/app.py
        +++ functions/x/app.py
        @@ -8,5 +8,5 @@
             if status == "Updating":
                 return "updated"
             if status == "InService":
        -        return "updated"
        +        return "XXupdatedXX"
             return None''')
    first, def_offset, removed, added = mutation.parse_diff(diff, "deploy")
    assert (removed, added) == (('return "updated"',), ('return "XXupdatedXX"',))
    spans = mutation.function_spans(SOURCE)
    assert spans["deploy"] == (5, 12)
    # The diff counts from the comment above the def; the repeated line 9 must not be chosen.
    assert mutation.locate(SOURCE.splitlines(), spans["deploy"], first, def_offset, removed) == 11


def test_a_diff_that_shows_the_def_line_is_located_from_it():
    diff = textwrap.dedent('''\
        --- f.py
        +++ f.py
        @@ -1,4 +1,4 @@
         # a comment mutmut keeps with the function
         def deploy(status):
        -    if status == "Creating":
        +    if status != "Creating":
                 return "created"''')
    first, def_offset, removed, _ = mutation.parse_diff(diff, "deploy")
    assert (first, def_offset) == (3, 2)
    assert mutation.locate(SOURCE.splitlines(), (5, 12), first, def_offset, removed) == 6


def _mutant(status, line=11, removed=('return "updated"',), added=('return "XXupdatedXX"',), name="m1"):
    return mutation.Mutant(name=name, path="functions/x/app.py", function="deploy", status=status,
                           line=line, removed=removed, added=added)


def _entries(tmp_path, body: str):
    path = tmp_path / "harmless.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return mutation.load_harmless(path)


ENTRY = '''\
    [[harmless]]
    file = "functions/x/app.py"
    function = "deploy"
    from = 'return "updated"'
    to = 'return "XXupdatedXX"'
    reason = "the caller ignores the action"
    '''


def test_a_harmless_survivor_is_left_out_of_the_score(tmp_path):
    entries = _entries(tmp_path, ENTRY)
    mutants = [_mutant("survived"), _mutant("killed", name="m2", removed=("if x:",), added=("if not x:",)),
               _mutant("survived", name="m3", removed=("a",), added=("b",))]
    mutation.apply_harmless(mutants, entries)
    assert mutants[0].harmless == "the caller ignores the action"
    assert mutants[2].harmless is None
    [score] = mutation.scores(mutants, ["functions/x/app.py"])
    assert (score.mutants, score.killed, score.survived, score.harmless) == (3, 1, 1, 1)
    assert score.score == 50.0
    assert mutation.stale_entries(entries, {"functions/x/app.py"}) == []


def test_occurrence_picks_one_of_two_identical_changes(tmp_path):
    entries = _entries(tmp_path, ENTRY + "occurrence = 2\n")
    first, second = _mutant("survived", line=9, name="a"), _mutant("survived", line=11, name="b")
    mutation.apply_harmless([second, first], entries)
    assert first.harmless is None and second.harmless


def test_stale_entries_are_reported_and_unrun_modules_are_not(tmp_path):
    entries = _entries(tmp_path, ENTRY + ENTRY.replace('"updated"', '"created"') + ENTRY.replace("functions/x", "functions/y"))
    mutants = [_mutant("killed")]  # entry 1 names it, but the tests kill it now; entry 2 names nothing
    mutation.apply_harmless(mutants, entries)
    stale = mutation.stale_entries(entries, {"functions/x/app.py"})
    assert [(e.index, why.split(" ")[0]) for e, why in stale] == [(1, "its"), (2, "matches")]
    assert "killed now" in stale[0][1]


def test_an_entry_without_a_reason_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="reason"):
        _entries(tmp_path, ENTRY.replace('reason = "the caller ignores the action"', 'reason = "  "'))


def test_module_selection_and_what_mutmut_cannot_reach():
    files = ["functions/qa_test/app.py", "functions/common/pipeline_common/s3.py"]
    assert mutation.chosen_files(["functions/qa_test"], files) == ["functions/qa_test/app.py"]
    with pytest.raises(SystemExit, match="functions/nope"):
        mutation.chosen_files(["functions/nope"], files)
    source = "logger = Logger()\nX = {1}\n@decorate\ndef handler():\n    pass\ndef plain():\n    pass\n"
    assert mutation.out_of_reach(source) == ["X", "handler() (decorated)"]


def test_the_docs_block_lists_survivors_by_module_and_keeps_the_rest_of_the_page(tmp_path):
    survivor = _mutant("survived", removed=("a = b | c",), added=("a = b & c",))
    data = {"mutmut": "3.8.1", "harmless": [],
            "modules": [{"path": "functions/x/app.py", "mutants": 4, "killed": 3, "survived": 1, "harmless": 0,
                         "not_run": 0, "score": 75.0}],
            "survivors": [mutation.asdict(survivor)]}
    run = {"started": "2026-11-30T08:00:00+00:00", "commit": "abc1234", "seconds": 300, "cpu_seconds": 240,
           "load_1min_mean": 3.5, "stats": "reused"}
    before = ("| module | mutants | killed | survived | harmless | not run | score |\n"
              "| `functions/x/app.py` | 4 | 2 | 2 | 0 | 0 | 50.0% |\n"
              "| `functions/y/app.py` | 9 | 9 | 0 | 0 | 0 | 100.0% |\n")
    earlier = mutation.module_sections(
        {"modules": [{"path": "functions/y/app.py", "mutants": 9, "killed": 9, "survived": 0, "harmless": 1,
                      "not_run": 0, "score": 100.0}], "survivors": []}, None, {})
    page = tmp_path / "mutation.md"
    page.write_text(f"notes\n{mutation.BEFORE_BEGIN}\n{before}{mutation.BEFORE_END}\nmiddle\n{mutation.BEGIN}\n"
                    f"{mutation.markdown(earlier, [])}\n{mutation.END}\nmore notes\n", encoding="utf-8")
    mutation.write_docs(data, run, ["functions/x/app.py", "functions/y/app.py"], page)
    text = page.read_text(encoding="utf-8")
    # The BEFORE block and the prose around the blocks are kept as they were.
    assert text.startswith(f"notes\n{mutation.BEFORE_BEGIN}\n{before}{mutation.BEFORE_END}\nmiddle\n")
    assert text.endswith(f"{mutation.END}\nmore notes\n")
    block = text.partition(mutation.BEGIN)[2].partition(mutation.END)[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    # This run's module with its earlier score next to it; the module of an earlier run kept.
    assert rows == [
        "| `functions/x/app.py` | 50.0% | 4 | 3 | 1 | 0 | 0 | 75.0% "
        "| 2026-11-30 abc1234: 5 min wall, 4 CPU-min, load 3.5, stats reused |",
        "| `functions/y/app.py` | - | 9 | 9 | 0 | 1 | 0 | 100.0% | - |",
    ]
    assert "| 11 | `deploy` | `a = b \\| c` | `a = b & c` |" in block  # a pipe must not split the cell
    # Written again (e.g. after more tests), the module's row and survivors are replaced, not added.
    data["modules"][0].update(killed=4, survived=0, score=100.0)
    data["survivors"] = []
    mutation.write_docs(data, run, ["functions/x/app.py", "functions/y/app.py"], page)
    block = page.read_text(encoding="utf-8").partition(mutation.BEGIN)[2].partition(mutation.END)[0]
    assert [line.split(" | ")[7] for line in block.splitlines() if line.startswith("| `")] == ["100.0%", "100.0%"]
    assert "<details>" not in block


def test_the_configured_modules_are_the_decision_path(repo_root):
    config = mutation.mutmut_config(repo_root / "pyproject.toml")
    assert config["pytest_add_cli_args"][:2] == ["-p", "scripts.mutation_plugin"]
    for name in ("approval_api", "request_approval", "deploy_production", "qa_test", "cleanup", "start_run"):
        assert f"functions/{name}" in config["source_paths"]
    assert "functions/common/pipeline_common" in config["source_paths"]


def test_every_function_reaches_the_mutants_copy(repo_root):
    """mutmut's stats run executes tests/functions in its own copy of the tree: a function that is neither
    mutated nor in also_copy is missing there, its tests fail and the run stops before any mutant."""
    config = mutation.mutmut_config(repo_root / "pyproject.toml")
    copied = set(config["source_paths"]) | set(config.get("also_copy", []))
    functions = {f"functions/{d.name}" for d in (repo_root / "functions").iterdir() if (d / "app.py").is_file()}
    assert functions - copied == set()
    assert "functions/recover_training" in config["source_paths"]


# --- one real mutmut run, on a project laid out like this one -------------------------------

MINI = {
    "functions/gate/app.py": '''\
        from pipeline_common.limits import at_least


        def passes(accuracy, threshold):
            return at_least(accuracy, threshold)
        ''',
    "functions/common/pipeline_common/__init__.py": "",
    "functions/common/pipeline_common/limits.py": '''\
        def at_least(value, minimum):
            return value >= minimum
        ''',
    # Loaded as this repository's tests load the Lambdas: by path, as localmode_lambda_<name>,
    # with the shared layer importable as pipeline_common.
    "tests/conftest.py": '''\
        import importlib.util
        import sys
        from pathlib import Path

        import pytest

        ROOT = Path(__file__).resolve().parent.parent
        sys.path.insert(0, str(ROOT / "functions" / "common"))


        @pytest.fixture
        def gate():
            spec = importlib.util.spec_from_file_location("localmode_lambda_gate", ROOT / "functions/gate/app.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
        ''',
    "tests/test_gate.py": '''\
        def test_above(gate):
            assert gate.passes(0.9, 0.8)


        def test_below(gate):
            assert not gate.passes(0.7, 0.8)
        ''',
    "pyproject.toml": '''\
        [tool.mutmut]
        source_paths = ["functions/gate", "functions/common/pipeline_common"]
        pytest_add_cli_args_test_selection = ["tests"]
        pytest_add_cli_args = ["-p", "scripts.mutation_plugin", "-p", "no:cacheprovider"]
        also_copy = ["scripts"]
        use_git_change_detection = false

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        ''',
}
def test_a_real_run_kills_the_gate_mutants_and_lists_the_threshold_survivor(tmp_path, repo_root, monkeypatch):
    for name, text in MINI.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "mutation_plugin.py").write_bytes((repo_root / "scripts" / "mutation_plugin.py").read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MUTANT_UNDER_TEST", raising=False)
    files = mutation.source_files(mutation.mutmut_config())
    assert files == ["functions/gate/app.py", "functions/common/pipeline_common/__init__.py",
                     "functions/common/pipeline_common/limits.py"]

    assert mutation.run_mutmut([], 2, tmp_path / "mutmut.log") == 0, (tmp_path / "mutmut.log").read_text()[-3000:]
    text, data = mutation.report(files, harmless_path=tmp_path / "none.toml")
    # Without the plugin no test would be linked to any mutant (all "no tests"); with it the
    # gate's mutants are all killed...
    gate = next(m for m in data["modules"] if m["path"] == "functions/gate/app.py")
    assert gate["mutants"] > 0 and gate["killed"] == gate["mutants"], text
    # ...and `>=` -> `>` survives, listed where it is: no test sits exactly at the threshold.
    assert [(s["path"], s["line"], s["status"], s["removed"], s["added"]) for s in data["survivors"]] == [
        ("functions/common/pipeline_common/limits.py", 2, "survived", ("return value >= minimum",),
         ("return value > minimum",))], text
    assert "functions/common/pipeline_common/limits.py:2 in at_least()" in text
    limits = next(m for m in data["modules"] if m["path"].endswith("limits.py"))
    assert limits["survived"] == 1 and limits["score"] < 100

    # Adding a test (the usual next step) keeps the stats: mutmut traces only the new test, which
    # must still be linked to the mutant it kills, or the survivor would stay.
    (tmp_path / "tests" / "test_gate_boundary.py").write_text(
        "def test_at_the_threshold(gate):\n    assert gate.passes(0.8, 0.8)\n", encoding="utf-8")
    assert mutation.run_mutmut([], 2, tmp_path / "mutmut2.log") == 0, (tmp_path / "mutmut2.log").read_text()[-3000:]
    run = json.loads((tmp_path / "mutants" / mutation.RUN_FILE).read_text(encoding="utf-8"))
    assert run["stats"] == "reused"
    assert "new tests, rerunning stats collection" in (tmp_path / "mutmut2.log").read_text(encoding="utf-8")
    text, data = mutation.report(files, harmless_path=tmp_path / "none.toml")
    assert data["survivors"] == [], text


@pytest.mark.parametrize("change, reusable", [
    ({}, True),
    ({"tests/functions/test_new.py": "n"}, True),                 # a test file added
    ({"tests/functions/test_fn_qa_test.py": "changed"}, False),   # an existing test changed
    ({"tests/functions/conftest.py": "changed"}, False),          # a fixture changed
    ({"functions/qa_test/app.py": "changed"}, False),             # the code changed
    ({"functions/qa_test/helper.py": "n"}, False),                # code added
    ({"uv.lock": "changed"}, False),
])
def test_stats_are_reused_only_when_tests_were_only_added(change, reusable):
    before = {"functions/qa_test/app.py": "a", "tests/functions/conftest.py": "b",
              "tests/functions/test_fn_qa_test.py": "c", "uv.lock": "d"}
    assert mutation.stats_reusable(before, {**before, **change}) is reusable


def test_stats_are_not_reused_after_a_file_is_removed_or_without_a_record():
    before = {"functions/qa_test/app.py": "a", "tests/functions/test_fn_qa_test.py": "c"}
    assert mutation.stats_reusable(before, {"functions/qa_test/app.py": "a"}) is False
    assert mutation.stats_reusable(None, before) is False
    assert mutation.stats_reusable({}, before) is False


def test_the_inputs_cover_sources_tests_and_config_but_not_the_harness_outputs(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    inputs = mutation.input_hashes(mutation.mutmut_config())
    for path in ("functions/qa_test/app.py", "functions/common/pipeline_common/names.py",
                 "tests/functions/conftest.py", "localmode/lambdas.py", "pyproject.toml", "uv.lock"):
        assert path in inputs, path
    assert "docs/mutation.md" not in inputs and "docs/mutation-harmless.toml" not in inputs
    assert not any("__pycache__" in path for path in inputs)
