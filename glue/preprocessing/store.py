"""Where a run's outputs go, written so that nothing half-written looks like success: locally, into
a temporary sibling directory renamed into place at the end; on S3, Spark writes the data, boto3 the
model files built in a local temp dir, and manifest.json is written last; a failed run deletes what
it wrote under its run prefix. Spark's _SUCCESS markers are disabled (preprocessing.job): the
manifest is the only success marker."""
from __future__ import annotations

import json
import shutil
import tempfile
import urllib.parse
import uuid
from pathlib import Path


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urllib.parse.urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def s3_client():
    import boto3

    return boto3.client("s3")


class LocalRunStore:
    """Builds the run in a hidden sibling directory and renames it into place on commit."""

    _RUN_ENTRIES = {"data", "model", "manifest.json"}

    def __init__(self, output: str):
        self.final = Path(output).expanduser().resolve()
        self.staging: Path | None = None

    def begin(self) -> None:
        if self.final.exists():
            entries = {p.name for p in self.final.iterdir()}
            if not entries <= self._RUN_ENTRIES:
                raise FileExistsError(
                    f"{self.final} exists and holds more than a previous run ({sorted(entries - self._RUN_ENTRIES)}); "
                    "choose an empty or new output directory")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.partial-", dir=self.final.parent))

    def spark_uri(self, relative: str) -> str:
        return (self.staging / relative).as_uri()

    def uri(self, relative: str) -> str:
        return str(self.final / relative) + ("/" if relative.endswith("/") else "")

    def put_file(self, relative: str, local_path: str) -> None:
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path, target)

    def put_json(self, relative: str, document: dict) -> None:
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    def commit(self, manifest: dict) -> None:
        # Hadoop's local file system leaves .crc checksum files next to every part file.
        for crc in self.staging.rglob("*.crc"):
            crc.unlink()
        self.put_json("manifest.json", manifest)
        if self.final.exists():
            previous = self.final.with_name(f".{self.final.name}.previous-{uuid.uuid4().hex[:8]}")
            self.final.rename(previous)
            self.staging.rename(self.final)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            self.staging.rename(self.final)
        self.staging = None

    def abort(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


class S3RunStore:
    """Writes under s3://bucket/runs/<id>/; manifest.json last; abort deletes this run's keys."""

    _RUN_KEYS = ("manifest.json", "data/", "model/")

    def __init__(self, output: str, client=None):
        bucket, key = split_s3(output)
        self.bucket = bucket
        self.prefix = key if key.endswith("/") or not key else key + "/"
        self.client = client or s3_client()

    def begin(self) -> None:
        # A retried Glue attempt may find a killed attempt's leftovers: start clean, manifest first.
        self._delete_run_keys()

    def spark_uri(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{relative}"

    uri = spark_uri

    def put_file(self, relative: str, local_path: str) -> None:
        self.client.upload_file(local_path, self.bucket, self.prefix + relative)

    def put_json(self, relative: str, document: dict) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + relative,
                               Body=(json.dumps(document, indent=2) + "\n").encode("utf-8"),
                               ContentType="application/json")

    def commit(self, manifest: dict) -> None:
        self.put_json("manifest.json", manifest)

    def abort(self) -> None:
        self._delete_run_keys()

    def _delete_run_keys(self) -> None:
        for run_key in self._RUN_KEYS:
            if run_key.endswith("/"):
                keys = []
                for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + run_key):
                    keys.extend(obj["Key"] for obj in page.get("Contents", []))
            else:
                keys = [self.prefix + run_key]
            for start in range(0, len(keys), 1000):
                self.client.delete_objects(Bucket=self.bucket,
                                           Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})


def make_store(output: str):
    return S3RunStore(output) if output.startswith("s3://") else LocalRunStore(output)
