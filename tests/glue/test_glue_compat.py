"""What Glue 4.0 needs that local runs would not notice: Python 3.10, Java 8
bytecode, one jar with MLeap's op registries intact, Glue-style arguments,
and S3 writes that leave nothing behind on failure."""
from __future__ import annotations

import ast
import glob
import json
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from localmode import REPO_ROOT

JOB_SCRIPT = REPO_ROOT / "glue" / "preprocess.py"
GLUE_JAR = REPO_ROOT / "build" / "jars" / "spark" / "mleap-glue-deps.jar"
CLI_JAR = REPO_ROOT / "build" / "jars" / "runtime" / "mleap-runtime-cli-1.0.0.jar"
JAVA_8_MAJOR = 52


def test_job_script_is_python_3_10_syntax():
    ast.parse(JOB_SCRIPT.read_text(encoding="utf-8"), feature_version=(3, 10))


def _python_310() -> str | None:
    found = shutil.which("python3.10")
    candidates = ([found] if found else []) + sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.10.*/bin/python3.10")))
    for candidate in candidates:
        probe = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.startswith("Python 3.10"):
            return candidate
    return None


def test_job_script_compiles_and_imports_without_work_on_python_3_10(tmp_path):
    python = _python_310()
    if python is None:
        pytest.skip("no Python 3.10 interpreter on this machine (the grammar check above still ran)")
    # Import only the stdlib parts: pyspark is not installed for 3.10 here, and importing must not need it.
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('p', sys.argv[1]); "
            "m = sys.modules['p'] = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "m.validate_spec(m.load_spec(sys.argv[2])); print(m.split_counts({'a': 69}))")
    done = subprocess.run([python, "-c", code, str(JOB_SCRIPT), str(REPO_ROOT / "datasets" / "car.json")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'a': {'test': 10, 'validation': 10, 'train': 49}}"


def _class_majors(jar: Path) -> set[int]:
    with zipfile.ZipFile(jar) as archive:
        return {int.from_bytes(archive.read(n)[6:8], "big") for n in archive.namelist()
                if n.endswith(".class") and not n.startswith("META-INF/versions/") and n != "module-info.class"}


@pytest.mark.parametrize("jar", [GLUE_JAR, CLI_JAR], ids=["glue-extra-jar", "runtime-cli"])
def test_jars_are_java_8_bytecode(jar):
    assert jar.is_file(), "run `make setup`"
    assert max(_class_majors(jar)) <= JAVA_8_MAJOR


def test_glue_jar_is_self_contained_without_spark_and_with_merged_registries():
    with zipfile.ZipFile(GLUE_JAR) as archive:
        names = set(archive.namelist())
        reference = archive.read("reference.conf").decode("utf-8")
    assert "ml/combust/mleap/spark/SimpleSparkSerializer.class" in names
    # Spark, Scala and Hadoop come from the cluster (MLeap's own helpers live in org/apache/spark/.../mleap).
    assert not [n for n in names if n.startswith(("scala/", "org/apache/hadoop/"))]
    assert not {"org/apache/spark/SparkContext.class", "org/apache/spark/sql/Dataset.class",
                "org/apache/spark/ml/Pipeline.class", "org/apache/spark/ml/linalg/Vector.class"} & names
    # Spark puts protobuf 2.5 first on the classpath; MLeap's 3.x copy (and its config) are relocated.
    assert not [n for n in names if n.startswith(("com/google/protobuf/", "com/typesafe/config/"))]
    # Every MLeap module's op registry survived the merge (Spark side and runtime side).
    assert "ml.combust.mleap.spark.registry.builtin-ops" in reference
    assert "ml.combust.mleap.registry.builtin-ops" in reference
    assert "StringIndexerOp" in reference and "OneHotEncoderOp" in reference


def test_arguments_without_glue_use_the_same_names(job):
    options = job.parse_options(["--input", "/d/car.csv", "--output", "/o/run", "--run_id", "r1", "--seed", "7",
                                 "--JOB_NAME", "ignored-glue-argument", "x"])
    assert (options.input, options.output, options.run_id, options.seed) == ("/d/car.csv", "/o/run", "r1", 7)
    assert options.spec["label"]["name"] == "class"


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
    monkeypatch.setattr(job, "_build", lambda spark, options, store: store.put_file("x", "y"))
    options = job.JobOptions(input="s3://artifacts/in.csv", output="s3://artifacts/runs/r2/", run_id="r2",
                             spec=json.loads((REPO_ROOT / "datasets" / "car.json").read_text()))
    with pytest.raises(OSError, match="disk full"):
        job.run(None, options)
    assert _keys(s3) == []
