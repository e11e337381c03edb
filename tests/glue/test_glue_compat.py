"""What Glue 5.1 needs that local runs would not notice: Python 3.11, nothing but what Glue
provides and the job's own zip, Glue-style arguments, and S3 writes that leave nothing behind on failure."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from localmode import REPO_ROOT
from preprocessing.job import run
from preprocessing.options import JobOptions, parse_options
from preprocessing.store import S3RunStore
from scripts import deploy

JOB_SCRIPT = REPO_ROOT / "glue" / "preprocess.py"
CLI_JAR = REPO_ROOT / "build" / "jars" / "runtime" / "mleap-runtime-cli-1.0.0.jar"
JAVA_8_MAJOR = 52
# What a Glue 5.1 Spark job can import without --additional-python-modules: the standard library,
# PySpark, AWS Glue's own libraries and boto3 (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-python-libraries.html,
# "Python modules already provided in AWS Glue").
GLUE_PROVIDED = {"pyspark", "awsglue", "boto3", "botocore"}


@pytest.fixture(scope="module")
def glue_zip(tmp_path_factory) -> Path:
    """The zip make deploy uploads for the job's --extra-py-files (scripts/deploy.py builds it)."""
    return deploy.build_glue_package(tmp_path_factory.mktemp("glue-zip") / "preprocessing.zip")


def job_code(glue_zip: Path) -> dict[str, str]:
    """What runs on Glue: the script sam package uploads and every file of the job's zip."""
    with zipfile.ZipFile(glue_zip) as archive:
        files = {name: archive.read(name).decode("utf-8") for name in archive.namelist()}
    return {"preprocess.py": JOB_SCRIPT.read_text(encoding="utf-8"), **files}


def test_job_code_is_python_3_11_syntax(glue_zip):
    for name, text in job_code(glue_zip).items():
        ast.parse(text, filename=name, feature_version=(3, 11))


def test_job_code_imports_only_what_glue_provides_and_its_zip_holds(glue_zip):
    """sam package uploads the script alone, and Glue adds the --extra-py-files zip to the Python path: the job
    cannot import the repo's other modules or anything pip-installed."""
    code = job_code(glue_zip)
    shipped = {name.split("/")[0] for name in code if "/" in name}
    assert shipped == {"preprocessing", "dataset_spec"}
    imported = set()
    for text in code.values():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) - {"__future__"} <= GLUE_PROVIDED | shipped
    assert "pyspark" in imported
    # The layer's half is the standard library alone (the Lambda runtime has no PySpark).
    for name, text in code.items():
        if name.startswith("dataset_spec/"):
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    assert node.module.split(".")[0] in set(sys.stdlib_module_names) | {"__future__", "dataset_spec"}, name
                elif isinstance(node, ast.Import):
                    assert all(a.name.split(".")[0] in sys.stdlib_module_names for a in node.names), name


def test_the_zip_holds_every_module_of_the_packages(glue_zip):
    with zipfile.ZipFile(glue_zip) as archive:
        names = set(archive.namelist())
    for package in deploy.GLUE_PACKAGES:
        expected = {str(p.relative_to(package.parent)) for p in package.rglob("*.py") if "__pycache__" not in p.parts}
        assert expected and expected <= names
    # The same sources give the same bytes: an unchanged job uploads an unchanged object.
    assert deploy.build_glue_package(glue_zip.with_name("again.zip")).read_bytes() == glue_zip.read_bytes()


def _glue_like(glue_zip: Path, workdir: Path) -> dict:
    """The script alone in its directory and only the zip on PYTHONPATH, as Glue runs it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(glue_zip)
    env["PYSPARK_SUBMIT_ARGS"] = "--master local[1] --driver-memory 1g --conf spark.ui.enabled=false pyspark-shell"
    return env


@pytest.mark.spark
def test_the_entry_script_runs_the_job_with_only_its_zip_on_the_path(glue_zip, car_data, tmp_path):
    """Every module the entry script imports, at import or while it runs, comes from the zip make deploy uploads:
    the script is run as Glue runs it, in a directory of its own, with the zip as the only addition to the path."""
    script_dir = tmp_path / "script"
    script_dir.mkdir()
    script = script_dir / "preprocess.py"
    script.write_bytes(JOB_SCRIPT.read_bytes())
    env = _glue_like(glue_zip, tmp_path)
    where = subprocess.run([sys.executable, "-c", "import preprocessing.job, dataset_spec; "
                            "print(preprocessing.job.__file__); print(dataset_spec.__file__)"],
                           cwd=script_dir, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(glue_zip) + "/") for line in where.stdout.split()), where.stdout
    out = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, str(script), "--JOB_ID", "j_1", "--input", str(car_data), "--output", str(out),
         "--run_id", "zip-run", "--spec", str(REPO_ROOT / "datasets" / "car.json")],
        cwd=script_dir, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    printed = json.loads(completed.stdout.strip().splitlines()[-1])
    assert printed["manifest"] == str(out.resolve() / "manifest.json") and printed["rows"]["total"] == 1728
    assert json.loads((out / "manifest.json").read_text())["run_id"] == "zip-run"


def _class_majors(jar: Path) -> set[int]:
    with zipfile.ZipFile(jar) as archive:
        return {int.from_bytes(archive.read(n)[6:8], "big") for n in archive.namelist()
                if n.endswith(".class") and not n.startswith("META-INF/versions/") and n != "module-info.class"}


def test_runtime_cli_is_java_8_bytecode_like_the_serving_image():
    """SparkML Serving 3.3 runs MLeap 0.20.0 on a Java 8 base image: the judge must run there too."""
    assert CLI_JAR.is_file(), "run `make setup`"
    assert max(_class_majors(CLI_JAR)) <= JAVA_8_MAJOR


def test_arguments_without_glue_use_the_same_names():
    options = parse_options(["--input", "/d/car.csv", "--output", "/o/run", "--run_id", "r1", "--seed", "7",
                             "--JOB_NAME", "ignored-glue-argument", "x"])
    assert (options.input, options.output, options.run_id, options.seed) == ("/d/car.csv", "/o/run", "r1", 7)
    assert options.spec["label"] == "class"


def test_arguments_on_glue_ask_only_for_what_was_passed(monkeypatch):
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
    options = parse_options(["--JOB_ID", "j", "--input", "s3://b/in.csv", "--output", "s3://b/runs/r/",
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


def test_s3_store_writes_manifest_last_and_abort_removes_only_this_runs_keys(s3, tmp_path):
    s3.put_object(Bucket="artifacts", Key="runs/other/manifest.json", Body=b"{}")
    s3.put_object(Bucket="artifacts", Key="runs/r1/training/job/output/model.tar.gz", Body=b"x")
    # Leftovers of a killed earlier attempt of this run.
    s3.put_object(Bucket="artifacts", Key="runs/r1/manifest.json", Body=b"{}")
    s3.put_object(Bucket="artifacts", Key="runs/r1/data/train/part-0.csv", Body=b"old")
    store = S3RunStore("s3://artifacts/runs/r1", client=s3)
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


def test_a_failure_after_writing_to_s3_deletes_what_the_run_wrote(s3, monkeypatch):
    """run() on an S3 prefix, failing after the data writes: nothing of the run survives."""

    class FailingStore(S3RunStore):
        def __init__(self, output):
            super().__init__(output, client=s3)

        def put_file(self, relative, local_path):
            s3.put_object(Bucket=self.bucket, Key=self.prefix + "data/train/part-00000.csv", Body=b"1,0.0")
            raise OSError("disk full")

    monkeypatch.setattr("preprocessing.job.make_store", FailingStore)
    monkeypatch.setattr("preprocessing.job.plan_bundles", lambda spark, spec, *args: None)
    monkeypatch.setattr("preprocessing.job._build", lambda spark, options, layout, store, *plan: store.put_file("x", "y"))
    options = JobOptions(input="s3://artifacts/in.csv", output="s3://artifacts/runs/r2/", run_id="r2",
                         spec=json.loads((REPO_ROOT / "datasets" / "car.json").read_text()))
    with pytest.raises(OSError, match="disk full"):
        run(None, options)
    assert _keys(s3) == []
