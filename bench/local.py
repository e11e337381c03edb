"""The whole local pipeline as `make local AUTO_APPROVE=1` runs it, timed from outside,
with the per-state breakdown its report.json records."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from localmode import REPO_ROOT


def summarize_local_report(report: dict) -> dict:
    """The parts of localmode's report.json a benchmark compares."""
    timings = {k: v for k, v in (report.get("timings") or {}).items() if v is not None}
    return {
        "outcome": report.get("outcome"),
        "status": report.get("status"),
        "execution_seconds": report.get("seconds"),
        "seconds_by_state": {k: round(float(v), 2) for k, v in (report.get("state_seconds") or {}).items()},
        "timings": timings,
        "qa_accuracy": (report.get("qa") or {}).get("accuracy"),
        "failure": report.get("failure"),
    }


def run_local_pipeline(out_dir: Path, data_path: Path, python: str = sys.executable, timeout: float = 1800) -> dict:
    """`python -m localmode run --auto-approve` in a subprocess; wall time from process start to exit."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "bench-local.log"
    command = [python, "-m", "localmode", "run", "--auto-approve", "--data", str(data_path), "--out", str(out_dir / "run")]
    environment = {k: v for k, v in os.environ.items() if k not in ("REJECT", "LOCAL_FAULTS")}
    load_before = [round(v, 2) for v in os.getloadavg()]
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        completed = subprocess.run(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                   timeout=timeout, check=False)
    seconds = time.monotonic() - started
    report_path = out_dir / "run" / "report.json"
    result = {"seconds_total": round(seconds, 2), "exit_code": completed.returncode, "log": str(log_path),
              "command": "python -m localmode run --auto-approve", "load_average_before": load_before}
    if report_path.is_file():
        result.update(summarize_local_report(json.loads(report_path.read_text(encoding="utf-8"))))
        result["report"] = str(report_path)
    else:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"the local run wrote no report.json (exit {completed.returncode}); last lines:\n"
                           + "\n".join(tail))
    return result
