"""The model files an endpoint loads are never left to expire: create_model
keeps copies under models/ tagged candidate, deploy_production tags the
deployed and the serving model production and supersedes the rest, with AWS
(S3, SageMaker, DynamoDB) behind moto and the real handler code."""
from __future__ import annotations

from datetime import datetime, timezone

import boto3
import pytest

from lambda_fixtures import ARTIFACTS, REGION, ROLE_ARN, TABLE, make_run

ENDPOINT = "car-evaluation"
PARTS = ("preprocess", "xgboost", "postprocess")
RUNS = {name: make_run(f"car-{name}-000000000001", started_at=f"2025-01-0{i + 1}T00:00:00.000Z")
        for i, name in enumerate(("a", "b", "c", "d"))}


@pytest.fixture
def deploy(load_function, monkeypatch):
    monkeypatch.setenv("STATE_TABLE", TABLE)
    monkeypatch.setenv("BAKE_SECONDS", "0")
    monkeypatch.setenv("ROLLBACK_ALARM_NAMES", "")
    monkeypatch.setenv("PRODUCTION_ENDPOINT_NAME", "car-evaluation")
    monkeypatch.setenv("ALARM_NAME_PREFIX", "stack-production-")
    return load_function("deploy_production")


@pytest.fixture
def s3(s3):
    # The artifacts bucket is versioned (template.yaml).
    s3.put_bucket_versioning(Bucket=ARTIFACTS, VersioningConfiguration={"Status": "Enabled"})
    return s3


def files_of(run: dict) -> list[str]:
    return [f"s3://{ARTIFACTS}/models/{run['run_id']}/{part}/model.tar.gz" for part in PARTS]


def stored_model(s3, run: dict) -> str:
    """What create_model leaves: the copies tagged candidate, the model and its endpoint config."""
    for uri in files_of(run):
        key = uri[len(f"s3://{ARTIFACTS}/"):]
        s3.put_object(Bucket=ARTIFACTS, Key=key, Body=uri.encode(), Tagging="model-state=candidate",
                      Metadata={"source": uri.replace("models/", "runs/")})
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    model = f"{run['run_id']}-model"
    sagemaker.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN,
                           Containers=[{"Image": "image", "ModelDataUrl": uri} for uri in files_of(run)])
    config = f"{run['run_id']}-config"
    sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    return config


def serve(config: str) -> None:
    """The endpoint serving `config` (moto has no UpdateEndpoint: recreate it)."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    if sagemaker.list_endpoints()["Endpoints"]:
        sagemaker.delete_endpoint(EndpointName=ENDPOINT)
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config)


def state_of(s3, run: dict) -> set[str]:
    states = set()
    for uri in files_of(run):
        tags = s3.get_object_tagging(Bucket=ARTIFACTS, Key=uri[len(f"s3://{ARTIFACTS}/"):])["TagSet"]
        states |= {tag["Value"] for tag in tags if tag["Key"] == "model-state"}
    return states


def deploy_run(deploy, s3, state_table, name: str, when: str) -> dict:
    run = RUNS[name]
    deploy.claim_production(state_table, TABLE, ENDPOINT, run)
    return deploy.retain_production_models(s3, boto3.client("sagemaker", region_name=REGION), state_table, TABLE,
                                           ENDPOINT, f"{run['run_id']}-config", run["run_id"],
                                           now=datetime.fromisoformat(when).replace(tzinfo=timezone.utc))


def test_production_keeps_its_model_and_replaced_models_get_a_window(deploy, s3, state_table):
    configs = {name: stored_model(s3, run) for name, run in RUNS.items()}

    # A: the first deployment creates the endpoint with A.
    serve(configs["a"])
    deploy_run(deploy, s3, state_table, "a", "2025-02-01T00:00:00")
    assert state_of(s3, RUNS["a"]) == {"production"}
    assert state_of(s3, RUNS["b"]) == {"candidate"}

    # B: the blue/green update starts while A serves; a rollback would need A's files.
    result = deploy_run(deploy, s3, state_table, "b", "2025-03-01T00:00:00")
    assert state_of(s3, RUNS["a"]) == state_of(s3, RUNS["b"]) == {"production"}
    assert result["superseded"] == []

    # The update succeeded (B serves); C starts: A is superseded now, and only now.
    serve(configs["b"])
    result = deploy_run(deploy, s3, state_table, "c", "2025-04-01T00:00:00")
    assert result["superseded"] == sorted(files_of(RUNS["a"]))
    assert state_of(s3, RUNS["a"]) == {"superseded"}
    assert state_of(s3, RUNS["b"]) == state_of(s3, RUNS["c"]) == {"production"}
    # Superseding wrote a new version, so lifecycle days count from the supersession.
    key = files_of(RUNS["a"])[0][len(f"s3://{ARTIFACTS}/"):]
    assert len(s3.list_object_versions(Bucket=ARTIFACTS, Prefix=key)["Versions"]) == 2
    head = s3.head_object(Bucket=ARTIFACTS, Key=key)
    assert head["Metadata"]["superseded-at"] == "2025-04-01T00:00:00Z"
    assert head["Metadata"]["source"].startswith(f"s3://{ARTIFACTS}/runs/")
    assert s3.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read() == files_of(RUNS["a"])[0].encode()

    # C rolled back (B still serves); D starts: C is superseded, B stays production.
    result = deploy_run(deploy, s3, state_table, "d", "2025-05-01T00:00:00")
    assert result["superseded"] == sorted(files_of(RUNS["c"]))
    assert state_of(s3, RUNS["b"]) == state_of(s3, RUNS["d"]) == {"production"}
    assert state_of(s3, RUNS["a"]) == state_of(s3, RUNS["c"]) == {"superseded"}


def test_an_older_run_never_retags_what_a_newer_one_deployed(deploy, s3, state_table):
    for run in RUNS.values():
        stored_model(s3, run)
    serve(f"{RUNS['a']['run_id']}-config")
    deploy_run(deploy, s3, state_table, "b", "2025-03-01T00:00:00")
    # A retry of run A's deployment, after B claimed production: nothing changes.
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    result = deploy.retain_production_models(s3, sagemaker, state_table, TABLE, ENDPOINT,
                                             f"{RUNS['a']['run_id']}-config", RUNS["a"]["run_id"])
    assert result == {"production": [], "superseded": []}
    assert state_of(s3, RUNS["b"]) == {"production"}


def test_the_handler_tags_the_first_deployment(deploy, s3, state_table, context, monkeypatch):
    """Through the handler, from a registered Approved version of run a's model."""
    from localmode.aws import model_registry_installed

    run = RUNS["a"]
    stored_model(s3, run)
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("CAPTURE_DESTINATION", f"s3://{ARTIFACTS}/capture")
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with model_registry_installed():
        sagemaker.create_model_package_group(ModelPackageGroupName=ENDPOINT)
        containers = sagemaker.describe_model(ModelName=f"{run['run_id']}-model")["Containers"]
        arn = sagemaker.create_model_package(
            ModelPackageGroupName=ENDPOINT, ModelApprovalStatus="Approved",
            InferenceSpecification={"Containers": [{k: c[k] for k in ("Image", "ModelDataUrl", "Environment") if k in c}
                                                   for c in containers]})["ModelPackageArn"]
        event = {"run": run, "names": {"production_endpoint": ENDPOINT}, "model_package_arn": arn}
        result = deploy.lambda_handler(event, context)
    assert (result["endpoint_name"], result["action"], result["model_package_version"]) == (ENDPOINT, "created", 1)
    # wait_until: when the state machine stops waiting for the endpoint (EndpointWaitSeconds after the deployment).
    assert result["wait_until"].endswith("Z")
    assert state_of(s3, run) == {"production"}
    item = state_table.get_item(TableName=TABLE, Key={"pk": {"S": f"production#{ENDPOINT}"}})["Item"]
    assert sorted(item["production_models"]["SS"]) == sorted(files_of(run))


def test_files_outside_models_are_never_retagged(deploy, s3, state_table):
    """A model that loads run files directly (made before models/ existed) is left alone."""
    run = RUNS["a"]
    s3.put_object(Bucket=ARTIFACTS, Key=f"runs/{run['run_id']}/model.tar.gz", Body=b"x")
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model(ModelName="old-model", ExecutionRoleArn=ROLE_ARN, Containers=[
        {"Image": "image", "ModelDataUrl": f"s3://{ARTIFACTS}/runs/{run['run_id']}/model.tar.gz"}])
    sagemaker.create_endpoint_config(EndpointConfigName=f"{run['run_id']}-config", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "old-model", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    serve(f"{run['run_id']}-config")
    assert deploy_run(deploy, s3, state_table, "a", "2025-02-01T00:00:00") == {"production": [], "superseded": []}
    assert s3.get_object_tagging(Bucket=ARTIFACTS, Key=f"runs/{run['run_id']}/model.tar.gz")["TagSet"] == []
