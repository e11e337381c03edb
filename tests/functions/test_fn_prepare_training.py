"""prepare_training: the manifest decides the plan; the plan is a valid CreateTrainingJob request."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from lambda_fixtures import ARTIFACTS, REGION, ROLE_ARN, make_manifest, make_run, put

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture
def prepare(load_function, monkeypatch):
    for name, value in {
        "SAGEMAKER_ROLE_ARN": ROLE_ARN,
        "XGBOOST_IMAGE_URI": XGBOOST_IMAGE,
        "PRODUCTION_ENDPOINT_NAME": "car-evaluation-prod",
        "TRAINING_INSTANCE_TYPE": "ml.m5.xlarge",
        "POLL_SECONDS": "15",
        "APPROVAL_TIMEOUT_SECONDS": "3600",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("USE_SPOT_TRAINING", raising=False)
    return load_function("prepare_training")


def assert_valid(operation: str, params: dict) -> None:
    model = boto3.client("sagemaker", region_name=REGION).meta.service_model
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def test_plan_from_the_manifest(prepare, stored_run, context):
    run, manifest = stored_run["run"], stored_run["manifest"]
    plan = prepare.lambda_handler({"run": run}, context)

    assert plan["manifest_uri"] == f"s3://{ARTIFACTS}/runs/{run['run_id']}/manifest.json"
    assert plan["poll_seconds"] == 15 and plan["approval_timeout_seconds"] == 3600
    names = plan["names"]
    assert names["production_endpoint"] == "car-evaluation-prod"
    assert {names["training_job"], names["model"], names["endpoint_config"], names["qa_endpoint"]} == {
        f"{run['run_id']}-train", f"{run['run_id']}-model", f"{run['run_id']}-config", f"{run['run_id']}-qa"
    }

    training = plan["training"]
    assert_valid("CreateTrainingJob", training)
    assert training["TrainingJobName"] == names["training_job"]
    assert training["AlgorithmSpecification"]["TrainingImage"] == XGBOOST_IMAGE
    hyper = training["HyperParameters"]
    assert all(isinstance(v, str) for v in hyper.values())
    assert hyper["objective"] == "multi:softmax"
    assert hyper["num_class"] == str(len(manifest["label_values"]))
    assert hyper["eval_metric"] == "merror"
    assert int(hyper["early_stopping_rounds"]) > 0 and int(hyper["num_round"]) > 0
    channels = {c["ChannelName"]: c for c in training["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3Uri"] == manifest["uris"]["train"]
    assert channels["validation"]["DataSource"]["S3DataSource"]["S3Uri"] == manifest["uris"]["validation"]
    assert all(c["ContentType"] == "text/csv" for c in channels.values())
    assert training["OutputDataConfig"]["S3OutputPath"] == manifest["uris"]["training_output"]
    assert training["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert training["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in training["StoppingCondition"]
    json.dumps(plan)  # crosses the Step Functions boundary as JSON


def test_spot_training_adds_max_wait(prepare, stored_run, context, monkeypatch):
    monkeypatch.setenv("USE_SPOT_TRAINING", "true")
    monkeypatch.setenv("TRAINING_MAX_RUNTIME_SECONDS", "1800")
    training = prepare.lambda_handler({"run": stored_run["run"]}, context)["training"]
    assert_valid("CreateTrainingJob", training)
    assert training["EnableManagedSpotTraining"] is True
    assert training["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600}


def test_spot_wait_shorter_than_runtime_is_a_configuration_error(prepare, stored_run, context, monkeypatch):
    monkeypatch.setenv("USE_SPOT_TRAINING", "true")
    monkeypatch.setenv("TRAINING_MAX_RUNTIME_SECONDS", "1800")
    monkeypatch.setenv("SPOT_MAX_WAIT_SECONDS", "600")
    with pytest.raises(Exception, match="SPOT_MAX_WAIT_SECONDS") as raised:
        prepare.lambda_handler({"run": stored_run["run"]}, context)
    assert type(raised.value).__name__ == "ConfigurationError"


def test_the_plan_never_hard_codes_the_dataset(prepare, s3, dataset_spec, context):
    """A three-class dataset with other columns gives num_class 3."""
    spec = {
        "name": "toy",
        "features": [{"name": "colour", "values": ["red", "blue"]}],
        "label": {"name": "kind", "values": ["a", "b", "c"]},
    }
    run = make_run("toy-run-1")
    put(s3, run["run_prefix"] + "manifest.json", make_manifest(spec, run))
    plan = prepare.lambda_handler({"run": run}, context)
    assert plan["training"]["HyperParameters"]["num_class"] == "3"


def test_console_execution_names_become_valid_sagemaker_names(prepare, s3, dataset_spec, context):
    run = make_run("My_Manual_Run_2025.01.02_with_a_rather_long_name_indeed")
    put(s3, run["run_prefix"] + "manifest.json", make_manifest(dataset_spec, run))
    names = prepare.lambda_handler({"run": run}, context)["names"]
    for key in ("training_job", "model", "endpoint_config", "qa_endpoint"):
        assert len(names[key]) <= 63
        assert_valid("CreateModel", {"ModelName": names[key], "ExecutionRoleArn": ROLE_ARN})
    assert names["training_job"].startswith("my-manual-run")


def test_missing_manifest_is_manifest_missing(prepare, s3, context):
    with pytest.raises(Exception, match="no manifest at s3://") as raised:
        prepare.lambda_handler({"run": make_run()}, context)
    assert type(raised.value).__name__ == "ManifestMissing"


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda m: m.update(num_class=5), "num_class"),
        (lambda m: m.update(label_values=["only-one"], num_class=1), "label_values"),
        (lambda m: m["rows"].update(train=0), "rows.train"),
        (lambda m: m["rows"].update(test=0), "rows.test"),
        (lambda m: m["uris"].pop("training_output"), "uris.training_output"),
        (lambda m: m["uris"].update(train="/local/path"), "uris.train"),
        (lambda m: m.update(run_id="another-run"), "run_id"),
        (lambda m: m.pop("spec"), "spec.features"),
    ],
)
def test_invalid_manifest_names_the_field(prepare, stored_run, s3, context, mutate, field):
    manifest = json.loads(json.dumps(stored_run["manifest"]))
    mutate(manifest)
    put(s3, stored_run["manifest_uri"], manifest)
    with pytest.raises(Exception) as raised:
        prepare.lambda_handler({"run": stored_run["run"]}, context)
    assert type(raised.value).__name__ == "ManifestInvalid"
    assert field in str(raised.value)


def test_manifest_that_is_not_json_is_invalid(prepare, stored_run, s3, context):
    put(s3, stored_run["manifest_uri"], b"\xff\xfe not json")
    with pytest.raises(Exception, match="not valid JSON") as raised:
        prepare.lambda_handler({"run": stored_run["run"]}, context)
    assert type(raised.value).__name__ == "ManifestInvalid"


@pytest.mark.parametrize("event", [{}, {"run": None}, {"run": {"run_id": "x"}}, {"run": {"run_id": "x", "run_prefix": "/tmp/"}}])
def test_bad_events_are_invalid_event(prepare, s3, context, event):
    with pytest.raises(Exception) as raised:
        prepare.lambda_handler(event, context)
    assert type(raised.value).__name__ == "InvalidEvent"


def test_invalid_production_endpoint_name_is_a_configuration_error(prepare, stored_run, context, monkeypatch):
    monkeypatch.setenv("PRODUCTION_ENDPOINT_NAME", "prod_endpoint")
    with pytest.raises(Exception, match="PRODUCTION_ENDPOINT_NAME"):
        prepare.lambda_handler({"run": stored_run["run"]}, context)


@pytest.mark.parametrize("listed, expected", [([], "ManifestMissing"), (True, "ClientError")])
def test_a_403_for_the_manifest_is_told_apart_by_listing(prepare, listed, expected):
    """With a prefix-conditioned ListBucket grant, S3 may answer a missing key with
    403: the loader then asks ListBucket whether the manifest is there."""
    run = make_run()
    key = f"runs/{run['run_id']}/manifest.json"
    s3 = boto3.client("s3", region_name=REGION)
    with Stubber(s3) as stub:
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", http_status_code=403)
        contents = [{"Key": key, "Size": 10}] if listed else []
        stub.add_response("list_objects_v2", {"Contents": contents, "KeyCount": len(contents)},
                          {"Bucket": ARTIFACTS, "Prefix": key, "MaxKeys": 1})
        with pytest.raises(Exception) as raised:
            prepare.prepare_training(s3, run, {}, "prod", 30, 3600)
        stub.assert_no_pending_responses()
    assert type(raised.value).__name__ == expected
