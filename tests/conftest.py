"""Fixtures every suite shares. Tests never reach real AWS: credentials are
fake and every AWS call goes to moto, botocore's Stubber, or a local server."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Puts functions/common (the Lambda layer: pipeline_common, dataset_spec) and glue/ (the Glue job's
# package, preprocessing) on sys.path, as AWS does, so tests import them by their names.
import localmode  # noqa: E402,F401

# Set before any test module creates a boto3 client.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def car_data() -> Path:
    """The real car.data: $CAR_DATA if set (CI), else the verified download."""
    from localmode import data

    return data.resolve()


@pytest.fixture(scope="session")
def dataset_spec() -> dict:
    from localmode import data

    return data.load_spec()


@pytest.fixture(scope="session")
def spark():
    """The one local SparkSession of a test run (Spark allows one per process)."""
    from localmode import glue_local

    session = glue_local.build_spark_session(app_name="tests")
    yield session
    session.stop()
