"""`make lint`: the static checks of the SAM application, each a pinned tool.

- cfn-lint (from .venv, pinned in uv.lock) on template.yaml
- `sam validate --lint` (aws-sam-cli, run by uv in its own environment: its
  pins conflict with the project's lock); offline, no credentials needed
- asl-validator (npm, pinned in package-lock.json) on both state machines
- checkov (run by uv like the SAM CLI) on template.yaml: zero failed checks;
  every skip sits next to its resource with a reason

tests/template/test_static_checks.py runs the same functions.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy import REPO_ROOT, SAM_CLI_VERSION, uv_executable  # noqa: E402

CHECKOV_VERSION = "3.3.30"
TEMPLATE = "template.yaml"
DEFINITIONS = ("statemachine/pipeline.asl.json", "statemachine/cleanup.asl.json")
# The tools make no AWS calls; a region keeps botocore-based ones from asking for one.
OFFLINE_ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}


@dataclass
class Result:
    name: str
    ok: bool
    output: str
    details: dict = field(default_factory=dict)


def _run(command: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **OFFLINE_ENV})


def _uv_tool(package: str, *command: str) -> list[str]:
    return [uv_executable(), "tool", "run", "--python", "3.11", "--from", package, *command]


def cfn_lint() -> Result:
    venv_tool = REPO_ROOT / ".venv" / "bin" / "cfn-lint"
    command = [str(venv_tool)] if venv_tool.exists() else [sys.executable, "-m", "cfnlint"]
    result = _run([*command, TEMPLATE])
    return Result("cfn-lint", result.returncode == 0, (result.stdout + result.stderr).strip())


def sam_validate() -> Result:
    result = _run(_uv_tool(f"aws-sam-cli=={SAM_CLI_VERSION}", "sam", "validate", "--lint", "--template", TEMPLATE))
    output = (result.stdout + result.stderr).strip()
    return Result("sam validate --lint", result.returncode == 0 and "is a valid SAM Template" in output, output)


def asl_validator() -> Result:
    local = REPO_ROOT / "node_modules" / ".bin" / "asl-validator"
    if not local.exists():
        return Result("asl-validator", False, "node_modules/.bin/asl-validator is missing: run `make setup` (npm ci)")
    outputs, ok = [], True
    for definition in DEFINITIONS:
        result = _run([str(local), "--json-path", definition])
        ok = ok and result.returncode == 0
        outputs.append((result.stdout + result.stderr).strip())
    return Result("asl-validator", ok, "\n".join(outputs))


def checkov() -> Result:
    # --skip-download: checkov otherwise calls its vendor's API for guidelines.
    result = _run(_uv_tool(f"checkov=={CHECKOV_VERSION}", "checkov", "--file", TEMPLATE, "--framework",
                           "cloudformation", "--skip-download", "--output", "json"))
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return Result("checkov", False, f"checkov printed no JSON report (exit {result.returncode}):\n"
                      f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    report = report[0] if isinstance(report, list) else report
    results = report.get("results", {})
    failed = [(c["check_id"], c["resource"], c.get("check_name", "")) for c in results.get("failed_checks", [])]
    skipped = [(c["check_id"], c["resource"], (c.get("check_result") or {}).get("suppress_comment", ""))
               for c in results.get("skipped_checks", [])]
    passed = len(results.get("passed_checks", []))
    lines = [f"checkov {CHECKOV_VERSION}: {passed} passed, {len(failed)} failed, {len(skipped)} skipped"]
    lines += [f"  FAILED {check} {resource}: {name}" for check, resource, name in failed]
    ok = not failed and passed > 0
    return Result("checkov", ok, "\n".join(lines), {"failed": failed, "skipped": skipped, "passed": passed})


CHECKS = (cfn_lint, sam_validate, asl_validator, checkov)


def main() -> int:
    failures = 0
    for check in CHECKS:
        result = check()
        print(f"[{'ok' if result.ok else 'FAIL'}] {result.name}")
        if result.output and (not result.ok or result.name == "checkov"):
            print("    " + result.output.replace("\n", "\n    "))
        failures += not result.ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
