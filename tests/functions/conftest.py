"""Fixtures for the Lambda unit tests: the real handlers loaded by path (with
the shared layer on sys.path), moto for AWS, and a run's artifacts in S3."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

# Tracing needs an X-Ray daemon; tests run the handlers without one.
os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "pipeline-tests")
# The shared layer, importable as on Lambda (/opt/python).
_COMMON = str(Path(__file__).resolve().parents[2] / "functions" / "common")
if _COMMON not in sys.path:
    sys.path.insert(0, _COMMON)

from lambda_fixtures import ARTIFACTS, REGION, TABLE, make_manifest, make_run, put, schemas  # noqa: E402
from localmode.lambdas import LambdaContext, LocalLambdas  # noqa: E402


@pytest.fixture(scope="session")
def load_function():
    """`load_function("qa_test")` -> the module of functions/qa_test/app.py."""
    return LocalLambdas(region=REGION).module


@pytest.fixture
def aws():
    with mock_aws():
        yield


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=ARTIFACTS)
    return client


@pytest.fixture
def state_table(aws):
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


@pytest.fixture
def context():
    return LambdaContext("test-function", REGION)


@pytest.fixture
def run() -> dict:
    return make_run()


@pytest.fixture
def stored_run(s3, run, dataset_spec) -> dict:
    """A run whose Glue step finished: manifest and schemas in S3."""
    manifest = make_manifest(dataset_spec, run)
    preprocess, postprocess = schemas(dataset_spec)
    put(s3, manifest["uris"]["preprocess_schema"], preprocess)
    put(s3, manifest["uris"]["postprocess_schema"], postprocess)
    put(s3, run["run_prefix"] + "manifest.json", manifest)
    # The model files the Glue job and training wrote (create_model copies them to models/).
    for uri in (manifest["uris"]["preprocess_model"], manifest["uris"]["postprocess_model"],
                run["run_prefix"] + f"training/{run['run_id']}-train/output/model.tar.gz"):
        put(s3, uri, f"model bytes of {uri}".encode())
    return {"run": run, "manifest": manifest, "manifest_uri": run["run_prefix"] + "manifest.json"}
