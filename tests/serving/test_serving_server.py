"""The local sagemaker-runtime through boto3's real client: the endpoint URL comes from
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, the control plane and S3 are moto."""
from __future__ import annotations

import io
import statistics
import tarfile
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from localmode.serving.latency import http_load
from localmode.serving.server import MotoEndpointResolver, start_server

pytestmark = pytest.mark.spark

REGION = "us-east-1"
BUCKET = "artifacts"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
SPARKML_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-sparkml-serving:3.3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def tar_directory(directory: Path) -> bytes:
    """model.tar.gz with the directory's entries at the top level, as SageMaker expects."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in sorted(directory.iterdir()):
            tar.add(entry, arcname=entry.name)
    return buffer.getvalue()


class LocalAccount:
    """moto's SageMaker and S3 with the run's three model archives uploaded."""

    def __init__(self, artifacts):
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        self.environments = artifacts.environments()
        self.uris = {}
        for name, directory in (("preprocess", artifacts.preprocess_dir), ("xgboost", artifacts.xgboost_dir),
                                ("postprocess", artifacts.postprocess_dir)):
            key = f"runs/r1/{name}/model.tar.gz"
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=tar_directory(directory))
            self.uris[name] = f"s3://{BUCKET}/{key}"

    def create_model(self, name: str, stages=("preprocess", "xgboost", "postprocess")) -> None:
        images = {"preprocess": SPARKML_IMAGE, "xgboost": XGBOOST_IMAGE, "postprocess": SPARKML_IMAGE}
        environments = dict(zip(("preprocess", "xgboost", "postprocess"), self.environments))
        self.sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, Containers=[
            {"Image": images[s], "ModelDataUrl": self.uris[s], **({"Environment": environments[s]} if environments[s] else {})}
            for s in stages])

    def create_endpoint(self, name: str, model: str, config: str) -> None:
        self.sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        self.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)


@pytest.fixture
def served(serving_artifacts, monkeypatch):
    """(account, runtime client, resolver) with the server running; freshness 0 so changes show at once."""
    with mock_aws():
        account = LocalAccount(serving_artifacts)
        resolver = MotoEndpointResolver(account.sagemaker, account.s3, freshness_seconds=0)
        server, url = start_server(resolver)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
        try:
            yield account, boto3.client("sagemaker-runtime", region_name=REGION), resolver
        finally:
            server.stop()
    assert not resolver.cache_dir.exists()


def test_boto3_gets_a_label_for_raw_csv_rows(served, serving_artifacts):
    account, runtime, _ = served
    account.create_model("model-1")
    account.create_endpoint("qa", "model-1", "config-1")
    labels = serving_artifacts.manifest["label_values"]
    correct = 0
    for row in serving_artifacts.test_rows[:40]:
        response = runtime.invoke_endpoint(EndpointName="qa", ContentType="text/csv", Body=",".join(row[:-1]))
        answer = response["Body"].read().decode()
        assert answer in labels
        assert response["ContentType"] == "text/csv"
        assert response["InvokedProductionVariant"] == "AllTraffic"
        correct += answer == row[-1]
    assert correct >= 36
    as_lines = runtime.invoke_endpoint(EndpointName="qa", ContentType="text/csv", Accept="application/jsonlines",
                                       Body=serving_artifacts.test_lines[0])
    assert as_lines["ContentType"] == "application/jsonlines"


def test_an_unknown_endpoint_is_a_validation_error(served):
    _, runtime, _ = served
    with pytest.raises(runtime.exceptions.ValidationError, match="Endpoint nope of account 123456789012 not found"):
        runtime.invoke_endpoint(EndpointName="nope", ContentType="text/csv", Body=b"a,b")


def test_a_container_error_is_a_model_error_with_the_original_status_and_message(served, serving_artifacts):
    account, runtime, _ = served
    account.create_model("model-1")
    account.create_endpoint("qa", "model-1", "config-1")
    short_row = ",".join(serving_artifacts.test_rows[0][:4])
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(EndpointName="qa", ContentType="text/csv", Body=short_row)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400 and error["OriginalMessage"] == "4"
    assert error["Error"]["Message"].startswith('Received client error (400) from container-1 with message "4". See ')
    assert error["LogStreamArn"].endswith("log-group:/aws/sagemaker/Endpoints/qa")
    assert "has 4 field(s) but the schema expects 6" in error["ResponseMetadata"]["HTTPHeaders"]["x-local-diagnosis"]


def test_an_endpoint_switched_to_a_new_config_serves_the_new_model_and_a_deleted_one_stops(served, serving_artifacts):
    account, runtime, _ = served
    row = serving_artifacts.test_lines[0]
    account.create_model("model-1")
    account.create_endpoint("prod", "model-1", "config-1")
    first = runtime.invoke_endpoint(EndpointName="prod", ContentType="text/csv", Body=row)["Body"].read().decode()
    assert first in serving_artifacts.manifest["label_values"]

    # A model without the postprocess container answers the class index: visibly another model.
    account.create_model("model-2", stages=("preprocess", "xgboost"))
    account.sagemaker.create_endpoint_config(EndpointConfigName="config-2", ProductionVariants=[
        {"VariantName": "Blue", "ModelName": "model-2", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    account.sagemaker.delete_endpoint(EndpointName="prod")
    account.sagemaker.create_endpoint(EndpointName="prod", EndpointConfigName="config-2")
    switched = runtime.invoke_endpoint(EndpointName="prod", ContentType="text/csv", Body=row)
    assert switched["Body"].read().decode() == f"{float(serving_artifacts.manifest['label_values'].index(first))}\n"
    assert switched["InvokedProductionVariant"] == "Blue"

    account.sagemaker.delete_endpoint(EndpointName="prod")
    with pytest.raises(runtime.exceptions.ValidationError):
        runtime.invoke_endpoint(EndpointName="prod", ContentType="text/csv", Body=row)


def test_a_model_that_cannot_load_is_reported_not_crashed(served, serving_artifacts):
    account, runtime, _ = served
    account.sagemaker.create_model(ModelName="odd", ExecutionRoleArn=ROLE, Containers=[
        {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own:1", "ModelDataUrl": account.uris["xgboost"]}])
    account.create_endpoint("odd", "odd", "odd-config")
    with pytest.raises(runtime.exceptions.ValidationError, match="has no local emulation"):
        runtime.invoke_endpoint(EndpointName="odd", ContentType="text/csv", Body=b"1,2")


def test_http_latency_on_loopback_is_printed(served, serving_artifacts, capsys):
    account, runtime, resolver = served
    account.create_model("model-1")
    account.create_endpoint("qa", "model-1", "config-1")
    resolver.freshness_seconds = 1.0  # as when serving: the endpoint lookup stays off the hot path
    lines = serving_artifacts.test_lines
    url = runtime.meta.endpoint_url
    bodies = [line.encode() for line in lines]
    single = http_load(url, "qa", bodies, clients=1, rounds=2)
    several = http_load(url, "qa", bodies, clients=4, rounds=2)
    for line in lines[:20]:
        runtime.invoke_endpoint(EndpointName="qa", ContentType="text/csv", Body=line)
    timings = []
    for line in lines:
        started = time.perf_counter()
        runtime.invoke_endpoint(EndpointName="qa", ContentType="text/csv", Body=line)["Body"].read()
        timings.append(time.perf_counter() - started)
    with capsys.disabled():
        print(f"\n[serving] HTTP on loopback, 1 client: p50 {single['p50_ms']:.2f} ms, p99 {single['p99_ms']:.2f} ms, "
              f"{single['rps']:.0f} req/s; 4 clients: p50 {several['p50_ms']:.2f} ms, {several['rps']:.0f} req/s")
        print(f"[serving] boto3 InvokeEndpoint on loopback: p50 {statistics.median(timings) * 1000:.2f} ms, "
              f"p99 {sorted(timings)[int(len(timings) * 0.99)] * 1000:.2f} ms over {len(timings)} calls")
    assert len(timings) == len(lines)
    assert single["failures"] == several["failures"] == 0 and several["requests"] == 8 * len(lines)
