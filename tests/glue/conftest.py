"""Fixtures for the Glue job's tests: one local SparkSession and ONE job run on
the real car data, shared by every test; the MLeap runtime 0.20.0 CLI (tests/jvm)."""
from __future__ import annotations

import csv
import json
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from localmode import REPO_ROOT
from preprocessing.job import run
from preprocessing.options import JobOptions

RUNTIME_JARS = REPO_ROOT / "build" / "jars" / "runtime"


@dataclass
class JobRun:
    out: Path
    manifest: dict
    seconds: float

    def csv_rows(self, split: str) -> list[list[str]]:
        return read_csv_dir(self.out / "data" / split)


def read_csv_dir(directory: Path) -> list[list[str]]:
    rows = []
    for part in sorted(directory.glob("part-*.csv")):
        with open(part, newline="", encoding="utf-8") as fh:
            rows.extend(csv.reader(fh))
    return rows


@pytest.fixture(scope="session")
def run_job(spark, dataset_spec):
    """Runs the job in-process; returns a JobRun."""

    def _run(input_path, out: Path, seed: int = 42, spec: dict | None = None, run_id: str = "test-run") -> JobRun:
        started = time.monotonic()
        options = JobOptions(input=str(input_path), output=str(out), run_id=run_id,
                             spec=spec or dataset_spec, seed=seed)
        manifest = run(spark, options)
        return JobRun(out=out, manifest=manifest, seconds=time.monotonic() - started)

    return _run


@pytest.fixture(scope="session")
def car_run(run_job, car_data, tmp_path_factory) -> JobRun:
    """The job on the real car data, run once for the whole test session."""
    return run_job(car_data, tmp_path_factory.mktemp("car") / "run")


class MleapRuntime:
    """The tests/jvm CLI: MLeap runtime 0.20.0 transforming one row at a time like SparkML Serving."""

    def __init__(self, workdir: Path):
        if not (RUNTIME_JARS / "mleap-runtime-cli-1.0.0.jar").is_file():
            pytest.fail(f"{RUNTIME_JARS} has no MLeap runtime CLI: run `make setup` first")
        self.workdir = workdir

    def unpack(self, tarball: Path) -> Path:
        target = self.workdir / f"{tarball.parent.name}-{len(list(self.workdir.iterdir()))}"
        with tarfile.open(tarball) as tar:
            tar.extractall(target)
        return target

    def _run(self, model_dir: Path, rows: list[dict], *options: str) -> list[dict]:
        bundle = self.unpack(model_dir / "model.tar.gz")
        completed = subprocess.run(
            ["java", "-cp", f"{RUNTIME_JARS}/*", "MleapRuntimeCli", str(bundle),
             "--schema", str(model_dir / "schema.json"), *options],
            input="".join(json.dumps(r) + "\n" for r in rows), capture_output=True, text=True, timeout=300, check=False)
        assert completed.returncode == 0, completed.stderr
        return [json.loads(line) for line in completed.stdout.splitlines()]

    def transform(self, model_dir: Path, rows: list[dict]) -> list[dict]:
        """One answer per row: {"output": ...} or {"error": ...}."""
        answers = self._run(model_dir, rows)
        assert len(answers) == len(rows)
        return answers

    def bench(self, model_dir: Path, row: dict, iterations: int) -> dict:
        [stats] = self._run(model_dir, [row], "--bench", str(iterations))
        return stats


@pytest.fixture(scope="session")
def mleap_runtime(tmp_path_factory) -> MleapRuntime:
    return MleapRuntime(tmp_path_factory.mktemp("mleap"))


@pytest.fixture(scope="session")
def dataset_run(run_job, tmp_path_factory):
    """name -> (JobRun, spec, data path) for the project's test datasets (localmode.datasets), each
    built and run through the job once per test session."""
    from localmode import datasets

    runs = {}

    def get(name: str):
        if name not in runs:
            root = tmp_path_factory.mktemp(f"dataset-{name}")
            data, spec_path = datasets.build(name, root)
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
            runs[name] = (run_job(data, root / "run", spec=spec, run_id=f"test-{name}"), spec, data)
        return runs[name]

    return get
