"""`glue:startJobRun.sync`: the real Glue job (glue/preprocessing, the package its script
glue/preprocess.py runs on AWS) on local Spark.

The run's input object is downloaded from moto's S3 to a temporary directory,
the job writes the run layout locally (its own LocalRunStore: staged, renamed
into place), and the result is uploaded under the run prefix in moto's S3 with
manifest.json last, its URIs pointing at S3 as on AWS. A failing job is a
failed job run: `States.TaskFailed` with the JobRun (and its ErrorMessage, the
job's own message) as the cause, which is what Step Functions reports for Glue.

One SparkSession serves every run in the process (see workers/spark.py).
"""
from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import boto3

from localmode.sfn import TaskFailed, TaskRequest
from localmode.workers import s3util
from localmode.workers.services import authorize_integration
from preprocessing.job import run
from preprocessing.options import DEFAULT_SEED, JobOptions, default_spec_path, load_spec


def _epoch_ms(seconds: float) -> int:
    return int(seconds * 1000)


class GlueWorker:
    """The `glue:startJobRun.sync` handler."""

    def __init__(
        self,
        default_arguments: dict[str, str],
        spark: Callable[[], Any],
        workdir: Path,
        job_settings: dict | None = None,
        authorize: Callable[[str, str, dict], None] | None = None,
        job_role: Callable[[], Any] | None = None,
    ):
        """`authorize(service, operation, params)`: local IAM's check of a call the integration makes as the
        state machine's role; `job_role()`: the context in which calls are the job role's."""
        self.default_arguments = default_arguments
        self.authorize = authorize or (lambda service, operation, params: None)
        self.job_role = job_role or contextlib.nullcontext
        self.spark = spark
        self.workdir = Path(workdir)
        self.job_settings = job_settings or {"GlueVersion": "5.1", "WorkerType": "G.1X", "NumberOfWorkers": 2}
        self.runs: list[dict] = []

    def __call__(self, request: TaskRequest) -> dict:
        params = request.parameters
        arguments = {**self.default_arguments, **(params.get("Arguments") or {})}
        # What glue:startJobRun.sync calls as the state machine's role: StartJobRun, then GetJobRun while it
        # waits (https://docs.aws.amazon.com/step-functions/latest/dg/glue-iam.html).
        authorize_integration(self.authorize, "glue", "StartJobRun", {"JobName": params["JobName"]})
        started = time.time()
        job_run = {
            "Id": f"jr_{uuid.uuid4().hex}",
            "Attempt": 0,
            "JobName": params["JobName"],
            "StartedOn": _epoch_ms(started),
            "Arguments": params.get("Arguments") or {},
            "PredecessorRuns": [],
            **self.job_settings,
        }
        try:
            with self.job_role():
                manifest = self._run(arguments)
        except Exception as exc:
            job_run.update(self._ended(started), JobRunState="FAILED", ErrorMessage=_error_message(exc))
            self.runs.append(job_run)
            raise TaskFailed("States.TaskFailed", json.dumps(job_run)) from exc
        authorize_integration(self.authorize, "glue", "GetJobRun", {"JobName": params["JobName"], "RunId": job_run["Id"]})
        job_run.update(self._ended(started), JobRunState="SUCCEEDED")
        self.runs.append({**job_run, "manifest": manifest})
        return job_run

    @staticmethod
    def _ended(started: float) -> dict:
        ended = time.time()
        return {"CompletedOn": _epoch_ms(ended), "LastModifiedOn": _epoch_ms(ended), "ExecutionTime": int(ended - started)}

    def _run(self, arguments: dict[str, str]) -> dict:
        for name in ("--input", "--output", "--run_id"):
            if not arguments.get(name):
                raise ValueError(f"the job run has no {name} argument")
        s3 = boto3.client("s3")
        # Glue fetches the job's libraries with the job's role before the script runs
        # (https://docs.aws.amazon.com/glue/latest/dg/create-an-iam-role.html); locally they are already here.
        for library in filter(None, arguments.get("--extra-py-files", "").split(",")):
            bucket, key = s3util.split_uri(library)
            self.authorize("s3", "GetObject", {"Bucket": bucket, "Key": key})
        self.workdir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"glue-{arguments['--run_id']}-", dir=self.workdir))
        try:
            files = s3util.download(s3, arguments["--input"], scratch / "input")
            # One object: the job reads that file; a prefix: the job reads the directory.
            single = len(files) == 1 and not arguments["--input"].endswith("/")
            input_path = files[0] if single else scratch / "input"
            spec_source = arguments.get("--spec")
            if spec_source and spec_source.startswith("s3://"):
                [spec_path] = s3util.download(s3, spec_source, scratch / "spec")
                spec_source = str(spec_path)
            spec = load_spec(spec_source) if spec_source else load_spec(default_spec_path())
            local_run = scratch / "run"
            options = JobOptions(
                input=str(input_path),
                output=str(local_run),
                run_id=arguments["--run_id"],
                spec=spec,
                seed=int(arguments.get("--seed") or DEFAULT_SEED),
                spec_source=arguments.get("--spec") or "",
            )
            manifest = run(self.spark(), options)
            manifest = _to_s3_uris(manifest, local_run, arguments["--output"], str(input_path), arguments["--input"])
            s3util.upload_tree(s3, local_run, arguments["--output"], skip={"manifest.json"})
            # Last, as the job does on S3: the manifest's presence means the run's data is complete.
            bucket, prefix = s3util.split_uri(arguments["--output"])
            s3.put_object(
                Bucket=bucket,
                Key=prefix.rstrip("/") + "/manifest.json",
                Body=(json.dumps(manifest, indent=2) + "\n").encode("utf-8"),
                ContentType="application/json",
            )
            return manifest
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _to_s3_uris(document: Any, local_run: Path, run_prefix: str, local_input: str, input_uri: str) -> Any:
    """The manifest as the job writes it on S3: local paths of the run replaced by their S3 URIs."""
    root = str(local_run.resolve())
    prefix = run_prefix if run_prefix.endswith("/") else run_prefix + "/"

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, str):
            if value == local_input:
                return input_uri
            if value == root or value.startswith(root + "/"):
                return prefix + value[len(root) + 1:]
        return value

    return convert(document)


def _error_message(exc: BaseException) -> str:
    """What Glue shows as the job run's ErrorMessage: the exception's type and message."""
    text = str(exc).strip() or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
