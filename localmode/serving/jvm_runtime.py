"""MLeap runtime 0.20.0 on the JVM (the runtime inside SparkML Serving 3.3), driven
through the tests/jvm CLI (`make setup` builds it into build/jars/runtime/). The
reference the Python runtime is checked against, and a benchmark contender.

Protocol (docs: /work/briefs/jvm_cli_protocol.md): JSON lines in, one
{"output": ...} or {"error": "<Exception>: <message>"} line out per row;
`--bench N` prints {"p50_us", "p99_us", "calls"} instead.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from localmode import REPO_ROOT

RUNTIME_JARS = REPO_ROOT / "build" / "jars" / "runtime"


class JvmRuntimeUnavailable(RuntimeError):
    """The CLI jars are not built (run `make setup`) or no `java` is on PATH."""


class MleapJvmRuntime:
    def __init__(self, jars_dir: Path = RUNTIME_JARS, timeout: float = 600.0):
        self.jars_dir = Path(jars_dir)
        self.timeout = timeout
        if not any(self.jars_dir.glob("mleap-runtime-cli-*.jar")):
            raise JvmRuntimeUnavailable(f"{self.jars_dir} has no MLeap runtime CLI jar: run `make setup`")
        if shutil.which("java") is None:
            raise JvmRuntimeUnavailable("no `java` on PATH")

    def _run(self, bundle_dir: Path, schema_path: Path, rows: list[dict], extra: list[str]) -> str:
        command = ["java", "-cp", f"{self.jars_dir}/*", "MleapRuntimeCli", str(bundle_dir), "--schema", str(schema_path),
                   *extra]
        completed = subprocess.run(command, input="".join(json.dumps(r) + "\n" for r in rows), capture_output=True,
                                   text=True, timeout=self.timeout, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"MleapRuntimeCli failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
        return completed.stdout

    def transform(self, bundle_dir: Path, schema_path: Path, rows: list[dict]) -> list[dict]:
        """One {"output": value} or {"error": "Exception: message"} per input row, in order."""
        answers = [json.loads(line) for line in self._run(bundle_dir, schema_path, rows, []).splitlines() if line]
        if len(answers) != len(rows):
            raise RuntimeError(f"MleapRuntimeCli answered {len(answers)} lines for {len(rows)} rows")
        return answers

    def bench(self, bundle_dir: Path, schema_path: Path, rows: list[dict], iterations: int) -> dict:
        """Per-call latency of single-row transforms inside the JVM: {"p50_us", "p99_us", "calls"}."""
        lines = [line for line in self._run(bundle_dir, schema_path, rows, ["--bench", str(iterations)]).splitlines()
                 if line.strip()]
        return json.loads(lines[-1])
