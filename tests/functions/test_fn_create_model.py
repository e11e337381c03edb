"""create_model and create_endpoint_config: the three-container pipeline model,
its endpoint config, and retries that never create a second one."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from lambda_fixtures import ARTIFACTS, REGION, ROLE_ARN, put

SPARKML_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-sparkml-serving:3.3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture
def create_model(load_function, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("SPARKML_IMAGE_URI", SPARKML_IMAGE)
    monkeypatch.setenv("XGBOOST_IMAGE_URI", XGBOOST_IMAGE)
    return load_function("create_model")


@pytest.fixture
def create_config(load_function, monkeypatch):
    monkeypatch.setenv("ENDPOINT_INSTANCE_TYPE", "ml.c5.large")
    monkeypatch.setenv("ENDPOINT_INSTANCE_COUNT", "2")
    return load_function("create_endpoint_config")


def model_event(stored_run) -> dict:
    run = stored_run["run"]
    return {
        "run": run,
        "names": {"model": f"{run['run_id']}-model", "endpoint_config": f"{run['run_id']}-config"},
        "manifest_uri": stored_run["manifest_uri"],
        "model_artifacts": run["run_prefix"] + f"training/{run['run_id']}-train/output/model.tar.gz",
    }


def test_pipeline_model_has_three_containers_in_order(create_model, stored_run, context):
    event = model_event(stored_run)
    manifest = stored_run["manifest"]
    result = create_model.lambda_handler(event, context)

    assert result == {"model_name": event["names"]["model"]}
    described = boto3.client("sagemaker", region_name=REGION).describe_model(ModelName=result["model_name"])
    pre, xgb, post = described["Containers"]
    assert (pre["Image"], xgb["Image"], post["Image"]) == (SPARKML_IMAGE, XGBOOST_IMAGE, SPARKML_IMAGE)
    # The model loads copies kept under models/<run>/, which runs/'s expiry does not reach.
    run_id = event["run"]["run_id"]
    assert [c["ModelDataUrl"] for c in (pre, xgb, post)] == [
        f"s3://{ARTIFACTS}/models/{run_id}/{part}/model.tar.gz" for part in ("preprocess", "xgboost", "postprocess")
    ]
    # The schema env holds the schema documents themselves.
    assert json.loads(pre["Environment"]["SAGEMAKER_SPARKML_SCHEMA"])["input"] == [
        {"name": name, "type": "string"} for name in manifest["feature_names"]
    ]
    assert pre["Environment"]["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"] == "text/csv"
    assert json.loads(post["Environment"]["SAGEMAKER_SPARKML_SCHEMA"])["input"] == [{"name": "label", "type": "double"}]
    assert described["ExecutionRoleArn"] == ROLE_ARN


def test_a_schema_too_long_for_the_environment_leaves_it_to_the_requests(create_model, stored_run, s3, context):
    """CreateModel refuses an environment value over 1024 characters (botocore's SageMaker model,
    EnvironmentValue max 1024), and SparkML Serving takes a request's own schema when its environment
    has none (ServingController.retrieveAndVerifySchema): a 100-feature preprocess container gets no
    SAGEMAKER_SPARKML_SCHEMA, and keeps the CSV answer XGBoost reads."""
    schema = {"input": [{"name": f"c{i}", "type": "string"} for i in range(1, 101)],
              "output": {"name": "features", "type": "double", "struct": "vector"}}
    put(s3, stored_run["manifest"]["uris"]["preprocess_schema"], schema)
    result = create_model.lambda_handler(model_event(stored_run), context)
    pre, _, post = boto3.client("sagemaker", region_name=REGION).describe_model(
        ModelName=result["model_name"])["Containers"]
    assert pre["Environment"] == {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}
    assert json.loads(post["Environment"]["SAGEMAKER_SPARKML_SCHEMA"])["input"] == [{"name": "label", "type": "double"}]


def test_a_retry_does_not_create_a_second_model(create_model, stored_run):
    """Against a stubbed SageMaker (moto accepts duplicates silently; AWS does not):
    the second attempt describes the existing model and creates nothing."""
    event = model_event(stored_run)
    s3 = boto3.client("s3", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_model", "ValidationException", "Could not find model \"x\".")
        stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x"},
                          {"ModelName": event["names"]["model"], "ExecutionRoleArn": ROLE_ARN, "Containers": ANY,
                           "InferenceExecutionConfig": {"Mode": "Serial"}})
        create_model.create_model(s3, sagemaker, event, ROLE_ARN, SPARKML_IMAGE, XGBOOST_IMAGE)
        stub.assert_no_pending_responses()

    containers = create_model.pipeline_containers(
        create_model.kept_model_files(s3, event["run"]["run_id"], stored_run["manifest"], event["model_artifacts"], ARTIFACTS),
        create_model.schema_env_value(s3, stored_run["manifest"]["uris"]["preprocess_schema"]),
        create_model.schema_env_value(s3, stored_run["manifest"]["uris"]["postprocess_schema"]),
        SPARKML_IMAGE, XGBOOST_IMAGE,
    )
    existing = {"ModelName": event["names"]["model"], "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x",
                "ExecutionRoleArn": ROLE_ARN, "Containers": containers, "CreationTime": "2025-01-01T00:00:00Z"}
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_model", existing, {"ModelName": event["names"]["model"]})
        assert create_model.create_model(s3, sagemaker, event, ROLE_ARN, SPARKML_IMAGE, XGBOOST_IMAGE) == {
            "model_name": event["names"]["model"]
        }
        stub.assert_no_pending_responses()  # no create_model call was queued, none was made


def test_losing_a_creation_race_is_not_an_error(create_model, stored_run):
    event = model_event(stored_run)
    s3 = boto3.client("s3", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    manifest = stored_run["manifest"]
    containers = create_model.pipeline_containers(
        create_model.kept_model_files(s3, event["run"]["run_id"], manifest, event["model_artifacts"], ARTIFACTS),
        create_model.schema_env_value(s3, manifest["uris"]["preprocess_schema"]),
        create_model.schema_env_value(s3, manifest["uris"]["postprocess_schema"]),
        SPARKML_IMAGE, XGBOOST_IMAGE,
    )
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_model", "ValidationException", "Could not find model \"x\".")
        stub.add_client_error("create_model", "ValidationException", "Cannot create already existing model \"x\".")
        stub.add_response("describe_model", {"ModelName": "x", "ModelArn": "arn:aws:sagemaker:us-east-1:1:model/x",
                                             "ExecutionRoleArn": ROLE_ARN, "Containers": containers,
                                             "CreationTime": "2025-01-01T00:00:00Z"})
        create_model.create_model(s3, sagemaker, event, ROLE_ARN, SPARKML_IMAGE, XGBOOST_IMAGE)
        stub.assert_no_pending_responses()


def test_an_existing_different_model_is_a_conflict(create_model, stored_run, context):
    event = model_event(stored_run)
    create_model.lambda_handler(event, context)
    other = {**event, "model_artifacts": event["model_artifacts"].replace("model.tar.gz", "other.tar.gz")}
    # Another file for the same run's model is refused, not copied over the one the model loads.
    with pytest.raises(Exception, match="already holds a copy") as raised:
        create_model.lambda_handler(other, context)
    assert type(raised.value).__name__ == "ModelConflict"


def test_model_files_are_copied_tagged_as_candidates(create_model, stored_run, s3, context):
    event = model_event(stored_run)
    create_model.lambda_handler(event, context)
    described = boto3.client("sagemaker", region_name=REGION).describe_model(ModelName=event["names"]["model"])
    sources = [stored_run["manifest"]["uris"]["preprocess_model"], event["model_artifacts"],
               stored_run["manifest"]["uris"]["postprocess_model"]]
    for container, source in zip(described["Containers"], sources):
        bucket, key = container["ModelDataUrl"][len("s3://"):].split("/", 1)
        source_bucket, source_key = source[len("s3://"):].split("/", 1)
        copied = s3.get_object(Bucket=bucket, Key=key)
        assert copied["Body"].read() == s3.get_object(Bucket=source_bucket, Key=source_key)["Body"].read()
        assert copied["Metadata"] == {"source": source}
        assert s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == [{"Key": "model-state", "Value": "candidate"}]


def test_a_missing_model_file_is_manifest_invalid(create_model, stored_run, s3, context):
    event = model_event(stored_run)
    bucket, key = event["model_artifacts"][len("s3://"):].split("/", 1)
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(Exception, match="missing") as raised:
        create_model.lambda_handler(event, context)
    assert type(raised.value).__name__ == "ManifestInvalid"
    assert boto3.client("sagemaker", region_name=REGION).list_models()["Models"] == []


def test_same_event_twice_with_moto_keeps_one_model(create_model, stored_run, context):
    event = model_event(stored_run)
    create_model.lambda_handler(event, context)
    create_model.lambda_handler(event, context)
    models = boto3.client("sagemaker", region_name=REGION).list_models()["Models"]
    assert [m["ModelName"] for m in models] == [event["names"]["model"]]


@pytest.mark.parametrize(
    "schema, problem",
    [
        (b"{not json", "not valid JSON"),
        ({"input": "features"}, "'input' list"),
    ],
)
def test_unusable_schema_is_manifest_invalid(create_model, stored_run, s3, context, schema, problem):
    put(s3, stored_run["manifest"]["uris"]["preprocess_schema"], schema)
    with pytest.raises(Exception, match=problem) as raised:
        create_model.lambda_handler(model_event(stored_run), context)
    assert type(raised.value).__name__ == "ManifestInvalid"
    assert boto3.client("sagemaker", region_name=REGION).list_models()["Models"] == []


def test_missing_schema_object_is_manifest_invalid(create_model, stored_run, s3, context):
    bucket, key = stored_run["manifest"]["uris"]["postprocess_schema"][5:].split("/", 1)
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(Exception, match="no such object") as raised:
        create_model.lambda_handler(model_event(stored_run), context)
    assert type(raised.value).__name__ == "ManifestInvalid"


@pytest.mark.parametrize("drop", ["run", "names", "manifest_uri", "model_artifacts"])
def test_bad_events_are_invalid_event(create_model, stored_run, context, drop):
    event = model_event(stored_run)
    event.pop(drop)
    with pytest.raises(Exception) as raised:
        create_model.lambda_handler(event, context)
    assert type(raised.value).__name__ == "InvalidEvent"


def test_sagemaker_errors_propagate(create_model, stored_run):
    event = model_event(stored_run)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_model", "ThrottlingException", "Rate exceeded")
        with pytest.raises(Exception, match="ThrottlingException"):
            create_model.create_model(boto3.client("s3", region_name=REGION), sagemaker, event, ROLE_ARN,
                                      SPARKML_IMAGE, XGBOOST_IMAGE)


# ---------------------------------------------------------------- endpoint config

def test_endpoint_config_has_one_all_traffic_variant(create_model, create_config, stored_run, context):
    event = model_event(stored_run)
    model_name = create_model.lambda_handler(event, context)["model_name"]
    config_event = {"run": event["run"], "names": event["names"], "model_name": model_name}
    result = create_config.lambda_handler(config_event, context)

    assert result == {"endpoint_config_name": event["names"]["endpoint_config"]}
    described = boto3.client("sagemaker", region_name=REGION).describe_endpoint_config(
        EndpointConfigName=result["endpoint_config_name"]
    )
    [variant] = described["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["ModelName"] == model_name
    assert variant["InstanceType"] == "ml.c5.large"
    assert variant["InitialInstanceCount"] == 2

    # A retry returns the same config.
    assert create_config.lambda_handler(config_event, context) == result


def test_endpoint_config_retry_with_stubbed_sagemaker_creates_nothing(create_config):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    variants = create_config.production_variants("m", "ml.m5.large", 1)
    existing = {"EndpointConfigName": "c", "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:1:endpoint-config/c",
                "ProductionVariants": variants, "CreationTime": "2025-01-01T00:00:00Z"}
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint_config", existing)
        assert create_config.ensure_endpoint_config(sagemaker, "c", variants) is False
        stub.assert_no_pending_responses()


def test_endpoint_config_conflict(create_config, context, aws):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    for name in ("model-a", "model-b"):
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE_ARN, Containers=[{"Image": XGBOOST_IMAGE}])
    event = {"names": {"endpoint_config": "c"}, "model_name": "model-a"}
    create_config.lambda_handler(event, context)
    with pytest.raises(Exception) as raised:
        create_config.lambda_handler({**event, "model_name": "model-b"}, context)
    assert type(raised.value).__name__ == "EndpointConfigConflict"


def test_endpoint_config_bad_event(create_config, context, aws):
    with pytest.raises(Exception) as raised:
        create_config.lambda_handler({"names": {}}, context)
    assert type(raised.value).__name__ == "InvalidEvent"


@pytest.mark.parametrize("kind, parts", [
    ("regression", ("preprocess", "xgboost")),
    ("binary", ("preprocess", "xgboost", "postprocess")),
])
def test_containers_follow_the_problem_type(create_model, s3, context, kind, parts):
    """Regression: preprocess -> XGBoost, whose CSV answer is the number (no postprocess in the
    manifest); classification keeps the third container that turns the answer into the label."""
    from lambda_fixtures import contract_manifest, make_run

    run = make_run(f"{kind}-model-run")
    manifest = contract_manifest(kind, run)
    preprocess_schema = {"input": [{"name": n, "type": "double" if t == "numeric" else "string"}
                                   for n, t in manifest["feature_types"].items()],
                         "output": {"name": "features", "type": "double", "struct": "vector"}}
    put(s3, manifest["uris"]["preprocess_schema"], preprocess_schema)
    if kind != "regression":
        put(s3, manifest["uris"]["postprocess_schema"],
            {"input": [{"name": "probability", "type": "double"}], "output": {"name": "predicted_label", "type": "string"}})
        put(s3, manifest["uris"]["postprocess_model"], b"post")
    put(s3, manifest["uris"]["preprocess_model"], b"pre")
    artifacts = run["run_prefix"] + f"training/{run['run_id']}-train/output/model.tar.gz"
    put(s3, artifacts, b"trees")
    put(s3, run["run_prefix"] + "manifest.json", manifest)
    event = {"run": run, "names": {"model": f"{run['run_id']}-model"}, "manifest_uri": run["run_prefix"] + "manifest.json",
             "model_artifacts": artifacts}

    create_model.lambda_handler(event, context)
    described = boto3.client("sagemaker", region_name=REGION).describe_model(ModelName=event["names"]["model"])
    containers = described["Containers"]
    assert [c["ModelDataUrl"] for c in containers] == [
        f"s3://{ARTIFACTS}/models/{run['run_id']}/{part}/model.tar.gz" for part in parts]
    assert [c["Image"] for c in containers] == [SPARKML_IMAGE, XGBOOST_IMAGE, SPARKML_IMAGE][:len(parts)]
    assert json.loads(containers[0]["Environment"]["SAGEMAKER_SPARKML_SCHEMA"]) == preprocess_schema
    # Only the kept files exist under models/ (no postprocess copy for regression).
    kept = s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=f"models/{run['run_id']}/")["Contents"]
    assert sorted(item["Key"].split("/")[2] for item in kept) == sorted(parts)
