"""prepare_training: the manifest decides the plan; the plan is a valid CreateTrainingJob request."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from lambda_fixtures import ARTIFACTS, REGION, ROLE_ARN, contract_manifest, dataset_answer, make_manifest, make_run, put

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
OUTPUT_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def prepare(load_function, monkeypatch):
    for name, value in {
        "SAGEMAKER_ROLE_ARN": ROLE_ARN,
        "OUTPUT_KMS_KEY_ARN": OUTPUT_KEY,
        "XGBOOST_IMAGE_URI": XGBOOST_IMAGE,
        "TRAINING_INSTANCE_TYPE": "ml.m5.xlarge",
        "POLL_SECONDS": "15",
        "APPROVAL_TIMEOUT_SECONDS": "3600",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("USE_SPOT_TRAINING", raising=False)
    monkeypatch.delenv("TRAINING_INSTANCE_COUNT", raising=False)
    return load_function("prepare_training")


CAR = dataset_answer("car", "car-evaluation-prod")


def event(run: dict, dataset: dict = CAR) -> dict:
    return {"run": run, "dataset": dataset}


def assert_valid(operation: str, params: dict) -> None:
    model = boto3.client("sagemaker", region_name=REGION).meta.service_model
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def test_plan_from_the_manifest(prepare, stored_run, context):
    run, manifest = stored_run["run"], stored_run["manifest"]
    plan = prepare.lambda_handler(event(run), context)

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
    # The model is encrypted with the stack's key, not the account's default S3 key.
    assert training["OutputDataConfig"] == {"S3OutputPath": manifest["uris"]["training_output"], "KmsKeyId": OUTPUT_KEY}
    assert training["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert training["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in training["StoppingCondition"]
    json.dumps(plan)  # crosses the Step Functions boundary as JSON


def test_spot_training_adds_max_wait(prepare, stored_run, context, monkeypatch):
    monkeypatch.setenv("USE_SPOT_TRAINING", "true")
    monkeypatch.setenv("TRAINING_MAX_RUNTIME_SECONDS", "1800")
    training = prepare.lambda_handler(event(stored_run["run"]), context)["training"]
    assert_valid("CreateTrainingJob", training)
    assert training["EnableManagedSpotTraining"] is True
    assert training["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600}


def test_spot_wait_shorter_than_runtime_is_a_configuration_error(prepare, stored_run, context, monkeypatch):
    monkeypatch.setenv("USE_SPOT_TRAINING", "true")
    monkeypatch.setenv("TRAINING_MAX_RUNTIME_SECONDS", "1800")
    monkeypatch.setenv("SPOT_MAX_WAIT_SECONDS", "600")
    with pytest.raises(Exception, match="SPOT_MAX_WAIT_SECONDS") as raised:
        prepare.lambda_handler(event(stored_run["run"]), context)
    assert type(raised.value).__name__ == "ConfigurationError"


def test_the_plan_never_hard_codes_the_dataset(prepare, s3, dataset_spec, context):
    """A three-class dataset with other columns gives num_class 3."""
    spec = {
        "name": "toy",
        "columns": [{"name": "colour", "type": "categorical", "values": ["red", "blue"]},
                    {"name": "kind", "type": "categorical", "values": ["a", "b", "c"]}],
        "label": "kind",
    }
    run = make_run("toy-run-1")
    put(s3, run["run_prefix"] + "manifest.json", make_manifest(spec, run))
    plan = prepare.lambda_handler(event(run, dataset_answer("toy", "toy-prod")), context)
    assert plan["training"]["HyperParameters"]["num_class"] == "3"


def test_console_execution_names_become_valid_sagemaker_names(prepare, s3, dataset_spec, context):
    run = make_run("My_Manual_Run_2025.01.02_with_a_rather_long_name_indeed")
    put(s3, run["run_prefix"] + "manifest.json", make_manifest(dataset_spec, run))
    names = prepare.lambda_handler(event(run), context)["names"]
    for key in ("training_job", "model", "endpoint_config", "qa_endpoint"):
        assert len(names[key]) <= 63
        assert_valid("CreateModel", {"ModelName": names[key], "ExecutionRoleArn": ROLE_ARN})
    assert names["training_job"].startswith("my-manual-run")


def test_missing_manifest_is_manifest_missing(prepare, s3, context):
    with pytest.raises(Exception, match="no manifest at s3://") as raised:
        prepare.lambda_handler(event(make_run()), context)
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
        (lambda m: m.pop("feature_names"), "feature_names"),
    ],
)
def test_invalid_manifest_names_the_field(prepare, stored_run, s3, context, mutate, field):
    manifest = json.loads(json.dumps(stored_run["manifest"]))
    mutate(manifest)
    put(s3, stored_run["manifest_uri"], manifest)
    with pytest.raises(Exception) as raised:
        prepare.lambda_handler(event(stored_run["run"]), context)
    assert type(raised.value).__name__ == "ManifestInvalid"
    assert field in str(raised.value)


def test_manifest_that_is_not_json_is_invalid(prepare, stored_run, s3, context):
    put(s3, stored_run["manifest_uri"], b"\xff\xfe not json")
    with pytest.raises(Exception, match="not valid JSON") as raised:
        prepare.lambda_handler(event(stored_run["run"]), context)
    assert type(raised.value).__name__ == "ManifestInvalid"


@pytest.mark.parametrize("event", [{}, {"run": None}, {"run": {"run_id": "x"}}, {"run": {"run_id": "x", "run_prefix": "/tmp/"}}])
def test_bad_events_are_invalid_event(prepare, s3, context, event):
    with pytest.raises(Exception) as raised:
        prepare.lambda_handler(event, context)
    assert type(raised.value).__name__ == "InvalidEvent"


@pytest.mark.parametrize("dataset", [None, {"name": "car"}, {"name": "Car Data", "production_endpoint": "x-prod"},
                                     {"name": "car", "production_endpoint": "prod_endpoint"}])
def test_an_event_without_a_resolved_dataset_is_invalid(prepare, stored_run, context, dataset):
    with pytest.raises(Exception, match="dataset") as raised:
        prepare.lambda_handler(event(stored_run["run"], dataset), context)
    assert type(raised.value).__name__ == "InvalidEvent"


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
            prepare.prepare_training(s3, run, {}, CAR, 30, 3600)
        stub.assert_no_pending_responses()
    assert type(raised.value).__name__ == expected


# ---------------------------------------------------------------- issue 11: the model follows the label

def put_contract_run(s3, kind: str, run_id: str, parts: int = 1, **changes) -> dict:
    run = make_run(run_id)
    manifest = contract_manifest(kind, run, **changes)
    put(s3, run["run_prefix"] + "manifest.json", manifest)
    for i in range(parts):
        put(s3, f"{manifest['uris']['train']}part-{i:05d}.csv", b"1,0,1\n")
    return {"run": run, "manifest": manifest}


@pytest.mark.parametrize("problem_type, objective, eval_metric, num_class", [
    ("multiclass", "multi:softmax", "merror", "4"),
    ("binary", "binary:logistic", "logloss", None),
    ("regression", "reg:squarederror", "rmse", None),
])
def test_objective_and_early_stopping_metric_follow_the_problem_type(prepare, s3, context, problem_type, objective,
                                                                     eval_metric, num_class):
    stored = put_contract_run(s3, problem_type, f"{problem_type}-run-1")
    dataset = dataset_answer(stored["manifest"]["dataset"], f"{stored['manifest']['dataset']}-prod")
    plan = prepare.lambda_handler(event(stored["run"], dataset), context)
    assert_valid("CreateTrainingJob", plan["training"])
    hyper = plan["training"]["HyperParameters"]
    assert hyper["objective"] == objective and hyper["eval_metric"] == eval_metric
    assert hyper.get("num_class") == num_class
    assert plan["names"]["production_endpoint"] == dataset["production_endpoint"]


@pytest.mark.parametrize("problem_type", ["multiclass", "binary", "regression"])
def test_the_local_algorithm_trains_and_stops_early_with_each_plan(prepare, s3, context, problem_type):
    """The hyperparameters pass the built-in container's rules (local mode's training worker
    enforces them: localmode/workers/xgboost_algorithm.py) and early stopping runs on the
    validation channel's eval_metric."""
    import numpy as np
    import xgboost as xgb

    from localmode.workers import xgboost_algorithm as algorithm

    stored = put_contract_run(s3, problem_type, f"{problem_type}-run-2")
    plan = prepare.lambda_handler(event(stored["run"], dataset_answer(stored["manifest"]["dataset"], "x-prod")), context)
    hyper = dict(plan["training"]["HyperParameters"], num_round="50", early_stopping_rounds="3")
    training = algorithm.training_plan(algorithm.validate_hyperparameters(hyper))
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 4))
    labels = {"multiclass": (features[:, 0] > 0).astype(int) + (features[:, 1] > 0).astype(int),
              "binary": (features[:, 0] + features[:, 1] > 0).astype(int),
              "regression": 3 * features[:, 0] + rng.normal(scale=0.1, size=300)}[problem_type]
    train, validation = xgb.DMatrix(features[:200], label=labels[:200]), xgb.DMatrix(features[200:], label=labels[200:])
    booster, history = algorithm.train(training, train, validation, nthread=1)
    assert list(history["validation"]) == [hyper["eval_metric"]]
    assert booster.num_boosted_rounds() <= 50


def test_several_instances_shard_the_train_channel_by_key(prepare, s3, context, monkeypatch):
    """ShardedByS3Key gives each instance about 1/n of the train split's files; validation stays
    whole on every instance (the container leaves out a host without validation data).
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html"""
    monkeypatch.setenv("TRAINING_INSTANCE_COUNT", "3")
    stored = put_contract_run(s3, "regression", "sharded-run-1", parts=8)
    training = prepare.lambda_handler(event(stored["run"], dataset_answer("diabetes", "diabetes-prod")), context)["training"]
    assert_valid("CreateTrainingJob", training)
    assert training["ResourceConfig"]["InstanceCount"] == 3
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in training["InputDataConfig"]}
    assert channels["train"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert channels["validation"]["S3DataDistributionType"] == "FullyReplicated"


@pytest.mark.parametrize("parts, instances, distribution", [(2, 2, "ShardedByS3Key"), (1, 1, "FullyReplicated")])
def test_never_more_instances_than_train_files(prepare, s3, context, monkeypatch, parts, instances, distribution):
    """SageMaker: "Don't choose more ML compute instances for training than available S3
    objects ... you will pay for nodes that aren't getting any training data" (API_S3DataSource).
    An empty part file counts for nothing."""
    monkeypatch.setenv("TRAINING_INSTANCE_COUNT", "4")
    stored = put_contract_run(s3, "binary", f"few-parts-{parts}", parts=parts)
    put(s3, f"{stored['manifest']['uris']['train']}part-99999.csv", b"")
    training = prepare.lambda_handler(event(stored["run"], dataset_answer("breast-cancer", "bc-prod")), context)["training"]
    assert training["ResourceConfig"]["InstanceCount"] == instances
    assert training["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == distribution


def test_one_instance_by_default_never_lists_the_train_split(prepare, stored_run, context):
    training = prepare.lambda_handler(event(stored_run["run"]), context)["training"]
    assert training["ResourceConfig"]["InstanceCount"] == 1
    assert training["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "FullyReplicated"


def test_a_manifest_of_another_dataset_is_refused(prepare, s3, context):
    stored = put_contract_run(s3, "regression", "mixed-up-run")
    with pytest.raises(Exception, match="'diabetes'.*'penguins'") as raised:
        prepare.lambda_handler(event(stored["run"], dataset_answer("penguins", "penguins-prod")), context)
    assert type(raised.value).__name__ == "ManifestInvalid"


@pytest.mark.parametrize("problem_type, change, field", [
    ("regression", {"label_values": ["a", "b"], "num_class": 2}, "label_values"),
    ("binary", {"problem_type": "multiclass"}, "problem_type"),
    ("multiclass", {"problem_type": "ordinal"}, "problem_type"),
    ("binary", {"quality_gate": {"metric": "rmse", "threshold": 1.0}}, "quality_gate.metric"),
    ("regression", {"quality_gate": {"metric": "r2", "threshold": "high"}}, "quality_gate.threshold"),
    ("multiclass", {"feature_names": []}, "feature_names"),
])
def test_contract_fields_that_do_not_fit_are_named(prepare, s3, context, problem_type, change, field):
    stored = put_contract_run(s3, problem_type, "bad-contract-run", **change)
    with pytest.raises(Exception) as raised:
        prepare.lambda_handler(event(stored["run"], dataset_answer(stored["manifest"]["dataset"], "x-prod")), context)
    assert type(raised.value).__name__ == "ManifestInvalid"
    assert field in str(raised.value)


def test_a_regression_manifest_has_no_postprocess_and_one_with_it_is_refused(prepare, s3, context):
    stored = put_contract_run(s3, "regression", "regression-post")
    manifest = json.loads(json.dumps(stored["manifest"]))
    manifest["uris"]["postprocess_model"] = manifest["uris"]["preprocess_model"]
    put(s3, stored["run"]["run_prefix"] + "manifest.json", manifest)
    with pytest.raises(Exception, match="uris.postprocess_model must be null"):
        prepare.lambda_handler(event(stored["run"], dataset_answer("diabetes", "diabetes-prod")), context)
