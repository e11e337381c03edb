"""Wall time of the test suite (what `make test` runs after its no-op setup)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from localmode import REPO_ROOT

# The plugin cache is left alone: a benchmark run should not change what the next `pytest --lf` sees.
PYTEST_ARGS = ("-m", "pytest", "-q", "-p", "no:cacheprovider")

_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)")


def parse_pytest_summary(output: str) -> dict:
    """The counts of pytest's last summary line ('3 failed, 120 passed, 2 skipped in 61.2s')."""
    found = None
    for line in output.strip().splitlines()[::-1]:
        stripped = line.strip().strip("=").strip()
        if _COUNT.search(stripped) and (" in " in stripped or stripped.endswith(("passed", "failed", "skipped"))):
            found = stripped
            break
    if found is None:
        return {"line": None, "counts": {}}
    counts: dict[str, int] = {}
    for number, kind in _COUNT.findall(found):
        kind = {"error": "errors", "warning": "warnings"}.get(kind, kind)
        counts[kind] = counts.get(kind, 0) + int(number)
    return {"line": found, "counts": counts}


def _shown(python: str) -> str:
    """The interpreter as a reader would type it: relative to the repository when it lives there."""
    try:
        return str(Path(python).relative_to(REPO_ROOT))
    except ValueError:
        return python


def run_test_suite(log_path: Path, python: str = sys.executable, timeout: float = 3 * 3600) -> dict:
    """Run the whole suite as `make test` does, in a subprocess; output goes to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [python, *PYTEST_ARGS]
    load_before = [round(v, 2) for v in os.getloadavg()]
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        completed = subprocess.run(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                                   check=False)
    seconds = time.monotonic() - started
    summary = parse_pytest_summary(log_path.read_text(encoding="utf-8", errors="replace"))
    return {
        "seconds": round(seconds, 1),
        "source": "measured",
        "command": " ".join([_shown(python), *PYTEST_ARGS]),
        "exit_code": completed.returncode,
        "summary": summary["line"],
        "counts": summary["counts"],
        "log": str(log_path),
        "load_average_before": load_before,
    }
