"""Local workers without Spark: training (XGBoost on moto S3), the plain
service integrations, fault injection, and the report's history reading."""
from __future__ import annotations

import datetime
import io
import json
import tarfile

import boto3
import numpy as np
import pytest
import xgboost as xgb

from localmode import aws, faults, sfn
from localmode.report import HistoryTracker, failure_of
from localmode.stack import LocalStack
from localmode.workers import services
from localmode.workers.training import TrainingWorker

ROLE = "arn:aws:iam::123456789012:role/local-sage-maker-execution-role"


@pytest.fixture
def moto_aws():
    with aws.local_aws():
        boto3.client("s3").create_bucket(Bucket="art")
        yield


def put_channel(name: str, rows: np.ndarray) -> str:
    text = "\n".join(",".join(str(int(v)) if i == 0 else f"{v:g}" for i, v in enumerate(row)) for row in rows) + "\n"
    # Two parts and an empty one, as Spark writes them.
    half = len(text.splitlines()) // 2
    lines = text.splitlines(keepends=True)
    s3 = boto3.client("s3")
    s3.put_object(Bucket="art", Key=f"run/data/{name}/part-00000.csv", Body="".join(lines[:half]).encode())
    s3.put_object(Bucket="art", Key=f"run/data/{name}/part-00001.csv", Body="".join(lines[half:]).encode())
    s3.put_object(Bucket="art", Key=f"run/data/{name}/part-00002.csv", Body=b"")
    return f"s3://art/run/data/{name}/"


def separable(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    features = np.eye(3)[labels] + rng.normal(0, 0.05, (n, 3))
    return np.column_stack([labels, features])


def training_request(channels: dict[str, str], **hyper) -> sfn.TaskRequest:
    hyperparameters = {"objective": "multi:softmax", "num_class": "3", "num_round": "50",
                       "early_stopping_rounds": "5", "eval_metric": "merror", "eta": "0.3", "max_depth": "3", **hyper}
    return sfn.TaskRequest(
        state_name="TrainXGBoost", resource="arn:aws:states:::sagemaker:createTrainingJob.sync",
        parameters={
            "TrainingJobName": "run-1-train",
            "RoleArn": ROLE,
            "HyperParameters": hyperparameters,
            "InputDataConfig": [
                {"ChannelName": n, "ContentType": "text/csv",
                 "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}
                for n, uri in channels.items()
            ],
            "OutputDataConfig": {"S3OutputPath": "s3://art/run/training/"},
        },
        execution_arn="arn", execution_name="run-1", state_machine_arn="sm",
    )


def test_training_writes_the_built_in_algorithms_artifact(moto_aws, tmp_path):
    channels = {"train": put_channel("train", separable(300, 1)), "validation": put_channel("validation", separable(60, 2))}
    worker = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)

    described = worker(training_request(channels))

    assert described["TrainingJobStatus"] == "Completed"
    artifact = described["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == "s3://art/run/training/run-1-train/output/model.tar.gz"
    body = boto3.client("s3").get_object(Bucket="art", Key=artifact[len("s3://art/"):])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == ["xgboost-model"]
        (tmp_path / "model").write_bytes(tar.extractfile("xgboost-model").read())
    booster = xgb.Booster()
    booster.load_model(str(tmp_path / "model"))
    test = separable(50, 3)
    predictions = booster.predict(xgb.DMatrix(test[:, 1:]))
    assert (predictions == test[:, 0]).mean() > 0.95
    metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert set(metrics) == {"train:merror", "validation:merror"} and metrics["validation:merror"] < 0.05
    assert not list(tmp_path.glob("training-*"))  # scratch removed


def test_training_without_data_fails_like_a_training_job(moto_aws, tmp_path):
    worker = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)
    request = training_request({"validation": put_channel("validation", separable(20, 2))})

    with pytest.raises(sfn.TaskFailed) as raised:
        worker(request)

    assert raised.value.error == "States.TaskFailed"
    cause = json.loads(raised.value.cause)
    assert cause["TrainingJobStatus"] == "Failed"
    assert cause["FailureReason"] == "ClientError: the train channel is required"


@pytest.mark.parametrize(
    "role, message",
    [
        (None, "Value null at 'roleArn' failed to satisfy constraint: Member must not be null"),
        ("$.plan.training.RoleArn", "Could not assume role $.plan.training.RoleArn."),
        ("arn:aws:iam::123456789012:role/local-state-machine-role", "Could not assume role arn:aws:iam::123456789012:role/local-state-machine-role."),
    ],
)
def test_training_refuses_a_role_sagemaker_could_not_assume(moto_aws, tmp_path, role, message):
    # CreateTrainingJob refuses the request itself (ValidationException): no job is created, and Step Functions
    # names the error as for every SageMaker optimized integration.
    worker = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)
    request = training_request({"train": put_channel("train", separable(30, 1))})
    request.parameters.pop("RoleArn")
    if role is not None:
        request.parameters["RoleArn"] = role

    with pytest.raises(sfn.TaskFailed) as raised:
        worker(request)

    assert raised.value.error == "SageMaker.AmazonSageMakerException"
    assert message in raised.value.cause and "Error Code: ValidationException" in raised.value.cause
    assert worker.jobs == [] and not boto3.client("s3").list_objects_v2(Bucket="art", Prefix="run/training/").get("Contents")


def test_the_local_stack_names_its_sagemaker_execution_role():
    stack = LocalStack.from_file()
    role = stack.role_assumable_by("sagemaker.amazonaws.com")
    assert role == stack.get_att("SageMakerExecutionRole", "Arn") == ROLE
    # What PrepareTraining plans with and what local training accepts are the same role.
    assert stack.function_environment("PrepareTrainingFunction")["SAGEMAKER_ROLE_ARN"] == role
    with pytest.raises(KeyError, match="roles lambda.amazonaws.com may assume"):
        stack.role_assumable_by("lambda.amazonaws.com")


def test_service_errors_are_named_as_step_functions_names_them(moto_aws):
    create = services.optimized("sagemaker", "createEndpoint")
    describe = services.aws_sdk("sagemaker", "describeEndpoint")
    request = sfn.TaskRequest("S", "x", {"EndpointName": "nope", "EndpointConfigName": "nope"}, "a", "e", "sm")

    with pytest.raises(sfn.TaskFailed) as created:
        create(request)
    assert created.value.error == "SageMaker.AmazonSageMakerException"
    assert "Could not find endpoint configuration" in created.value.cause and "Status Code: 400" in created.value.cause

    with pytest.raises(sfn.TaskFailed) as described:
        describe(sfn.TaskRequest("S", "x", {"EndpointName": "nope"}, "a", "e", "sm"))
    assert described.value.error == "SageMaker.SageMakerException"


def test_faults_parse_and_refuse_unknown_states():
    states = {"TrainXGBoost": "arn:aws:states:::sagemaker:createTrainingJob.sync", "RunQATests": "arn:aws:states:::lambda:invoke"}
    parsed = faults.Faults.parse(["TrainXGBoost, rollback"], states)
    assert parsed.states == {"TrainXGBoost"} and parsed.rollback
    with pytest.raises(ValueError, match="unknown fault 'Train'.*RunQATests, TrainXGBoost"):
        faults.Faults.parse("Train", states)
    assert not faults.Faults.parse("", states)


@pytest.mark.parametrize(
    "resource, error",
    [("arn:aws:states:::lambda:invoke", "InjectedFault"),
     ("arn:aws:states:::glue:startJobRun.sync", "States.TaskFailed"),
     ("arn:aws:states:::sagemaker:createEndpoint", "SageMaker.AmazonSageMakerException"),
     ("arn:aws:states:::aws-sdk:sagemaker:describeEndpoint", "SageMaker.SageMakerException"),
     ("arn:aws:states:::sns:publish", "SNS.InternalErrorException")],
)
def test_injected_failures_look_like_the_service(resource, error):
    failure = faults.failure_for("State", resource)
    assert failure.error == error
    assert "LOCAL_FAULTS=State" in failure.cause


def _event(kind: str, seconds: float, **details) -> dict:
    return {"type": kind, "timestamp": datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
            + datetime.timedelta(seconds=seconds), **details}


def test_history_becomes_state_records_and_the_failure():
    lines: list[str] = []
    tracker = HistoryTracker(on_line=lines.append)
    failure = {"state": "TrainXGBoost", "error": "States.TaskFailed", "cause": json.dumps({"FailureReason": "AlgorithmError: boom"})}
    tracker.feed([
        _event("ExecutionStarted", 0),
        _event("TaskStateEntered", 1, stateEnteredEventDetails={"name": "TrainXGBoost", "input": "{}"}),
        _event("TaskScheduled", 1), _event("TaskFailed", 2, taskFailedEventDetails={"error": "SageMaker.ThrottlingException", "cause": "slow down"}),
        _event("TaskScheduled", 3), _event("TaskFailed", 4, taskFailedEventDetails={"error": "States.TaskFailed", "cause": failure["cause"]}),
        _event("TaskStateExited", 4, stateExitedEventDetails={"name": "TrainXGBoost", "output": "{}"}),
        _event("FailStateEntered", 5, stateEnteredEventDetails={"name": "Failed", "input": json.dumps({"failure": failure})}),
        _event("ExecutionFailed", 5, executionFailedEventDetails={"error": "States.TaskFailed"}),
    ])

    [train, fail] = [r.to_json() for r in tracker.records]
    assert (train["outcome"], train["attempts"], train["seconds"]) == ("failed", 2, 3.0)
    assert train["message"] == "AlgorithmError: boom"
    assert fail["outcome"] == "failed"
    assert failure_of(tracker, {"status": "FAILED"})["message"] == "AlgorithmError: boom"
    assert lines[-1].endswith("TrainXGBoost FAILED in 3.0s: States.TaskFailed: AlgorithmError: boom")
