"""What Glue 5.1 needs that local runs would not notice: Python 3.11, nothing but what
Glue provides, Glue-style arguments, and S3 writes that leave nothing behind on failure."""
from __future__ import annotations

import ast
import json
import sys
import types
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from localmode import REPO_ROOT

JOB_SCRIPT = REPO_ROOT / "glue" / "preprocess.py"
CLI_JAR = REPO_ROOT / "build" / "jars" / "runtime" / "mleap-runtime-cli-1.0.0.jar"
JAVA_8_MAJOR = 52
# What a Glue 5.1 Spark job can import without --additional-python-modules: the standard library,
# PySpark, AWS Glue's own libraries and boto3 (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-python-libraries.html,
# "Python modules already provided in AWS Glue").
GLUE_PROVIDED = {"pyspark", "awsglue", "boto3", "botocore"}


def test_job_script_is_python_3_11_syntax():
    ast.parse(JOB_SCRIPT.read_text(encoding="utf-8"), feature_version=(3, 11))


def test_job_script_imports_only_what_glue_provides():
    """sam package uploads the script alone: it cannot import the repo's other modules or anything pip-installed."""
    tree = ast.parse(JOB_SCRIPT.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) - {"__future__"} <= GLUE_PROVIDED
    assert "pyspark" in imported


def _class_majors(jar: Path) -> set[int]:
    with zipfile.ZipFile(jar) as archive:
        return {int.from_bytes(archive.read(n)[6:8], "big") for n in archive.namelist()
                if n.endswith(".class") and not n.startswith("META-INF/versions/") and n != "module-info.class"}


def test_runtime_cli_is_java_8_bytecode_like_the_serving_image():
    """SparkML Serving 3.3 runs MLeap 0.20.0 on a Java 8 base image: the judge must run there too."""
    assert CLI_JAR.is_file(), "run `make setup`"
    assert max(_class_majors(CLI_JAR)) <= JAVA_8_MAJOR


def test_arguments_without_glue_use_the_same_names(job):
    options = job.parse_options(["--input", "/d/car.csv", "--output", "/o/run", "--run_id", "r1", "--seed", "7",
                                 "--JOB_NAME", "ignored-glue-argument", "x"])
    assert (options.input, options.output, options.run_id, options.seed) == ("/d/car.csv", "/o/run", "r1", 7)
    assert options.spec["label"] == "class"


def test_arguments_on_glue_ask_only_for_what_was_passed(job, monkeypatch):
    asked = []

    def get_resolved_options(args, names):
        # Glue's own parser: fails on any requested name that is absent from args.
        asked.append(list(names))
        assert args[0] == "preprocess.py"
        values = {}
        for name in names:
            assert f"--{name}" in args, f"--{name} missing"
            values[name] = args[args.index(f"--{name}") + 1]
        return values

    awsglue = types.ModuleType("awsglue")
    utils = types.ModuleType("awsglue.utils")
    utils.getResolvedOptions = get_resolved_options
    monkeypatch.setitem(sys.modules, "awsglue", awsglue)
    monkeypatch.setitem(sys.modules, "awsglue.utils", utils)
    spec = str(REPO_ROOT / "datasets" / "car.json")
    options = job.parse_options(["--JOB_ID", "j", "--input", "s3://b/in.csv", "--output", "s3://b/runs/r/",
                                 "--run_id", "r", "--spec", spec])
    assert asked == [["input", "output", "run_id", "spec"]]
    assert (options.seed, options.spec_source) == (42, spec)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="artifacts")
        yield client


def _keys(client) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket="artifacts").get("Contents", []))


def test_s3_store_writes_manifest_last_and_abort_removes_only_this_runs_keys(job, s3, tmp_path):
    s3.put_object(Bucket="artifacts", Key="runs/other/manifest.json", Body=b"{}")
    s3.put_object(Bucket="artifacts", Key="runs/r1/training/job/output/model.tar.gz", Body=b"x")
    # Leftovers of a killed earlier attempt of this run.
    s3.put_object(Bucket="artifacts", Key="runs/r1/manifest.json", Body=b"{}")
    s3.put_object(Bucket="artifacts", Key="runs/r1/data/train/part-0.csv", Body=b"old")
    store = job.S3RunStore("s3://artifacts/runs/r1", client=s3)
    store.begin()
    assert _keys(s3) == ["runs/other/manifest.json", "runs/r1/training/job/output/model.tar.gz"]

    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"tar")
    store.put_file("model/preprocess/model.tar.gz", str(model))
    store.put_json("model/preprocess/schema.json", {"input": []})
    assert store.uri("data/train/") == "s3://artifacts/runs/r1/data/train/"
    assert "runs/r1/manifest.json" not in _keys(s3)
    store.abort()
    assert _keys(s3) == ["runs/other/manifest.json", "runs/r1/training/job/output/model.tar.gz"]

    store.begin()
    store.put_json("model/preprocess/schema.json", {"input": []})
    store.commit({"run_id": "r1"})
    assert json.loads(s3.get_object(Bucket="artifacts", Key="runs/r1/manifest.json")["Body"].read()) == {"run_id": "r1"}


def test_a_failure_after_writing_to_s3_deletes_what_the_run_wrote(job, s3, monkeypatch):
    """run() on an S3 prefix, failing after the data writes: nothing of the run survives."""

    class FailingStore(job.S3RunStore):
        def __init__(self, output):
            super().__init__(output, client=s3)

        def put_file(self, relative, local_path):
            s3.put_object(Bucket=self.bucket, Key=self.prefix + "data/train/part-00000.csv", Body=b"1,0.0")
            raise OSError("disk full")

    monkeypatch.setattr(job, "make_store", FailingStore)
    monkeypatch.setattr(job, "plan_bundles", lambda spark, spec, *args: None)
    monkeypatch.setattr(job, "_build", lambda spark, options, layout, store, *plan: store.put_file("x", "y"))
    options = job.JobOptions(input="s3://artifacts/in.csv", output="s3://artifacts/runs/r2/", run_id="r2",
                             spec=json.loads((REPO_ROOT / "datasets" / "car.json").read_text()))
    with pytest.raises(OSError, match="disk full"):
        job.run(None, options)
    assert _keys(s3) == []
