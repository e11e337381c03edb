"""recover_training's decisions one by one: whether a training job of this
run's name is this run's, how long to wait for it, how long to back off before
a retry, and what a failure says.

A wrong "this is our job" makes the run deploy a model trained on someone
else's data; a wrong "not ours" fails a run whose job is running. A wrong
backoff or attempt count retries too early or too often. Each test drives
`recover_training` with botocore's Stubber on a real SageMaker client (a
plain object where Stubber's output validation would refuse the answer), and
checks the answer the state machine gets or the error the run fails with.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from botocore.stub import Stubber

from lambda_fixtures import ACCOUNT, REGION, ROLE_ARN, make_run, stubbed_client

NAME = "car-0123456789ab-train"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
TRAIN = "s3://artifacts/runs/car/data/train/"
VALIDATION = "s3://artifacts/runs/car/data/validation/"
OUTPUT = "s3://artifacts/runs/car/training/"
NOT_FOUND = ("ValidationException", "Requested resource not found.")


@pytest.fixture
def recover(load_function):
    return load_function("recover_training")


@pytest.fixture
def sagemaker():
    with stubbed_client("sagemaker") as pair:
        yield pair


def s3_channel(name: str, uri: str) -> dict:
    return {"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}}, "ContentType": "text/csv"}


def request(**changes) -> dict:
    """The CreateTrainingJob request prepare_training plans (the fields that matter here)."""
    base = {
        "TrainingJobName": NAME,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE_ARN,
        "InputDataConfig": [s3_channel("train", TRAIN), s3_channel("validation", VALIDATION)],
        "OutputDataConfig": {"S3OutputPath": OUTPUT},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    return {**base, **changes}


def described(job: dict, created: datetime = NOW) -> dict:
    return {**job, "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{job['TrainingJobName']}",
            "TrainingJobStatus": "InProgress", "SecondaryStatus": "Training", "CreationTime": created,
            "ModelArtifacts": {"S3ModelArtifacts": ""}}


def sdk_cause(code: str, message: str, status: int = 400) -> str:
    # The AWS SDK for Java's exception text, as Step Functions gives it in the Cause (see test_fn_sagemaker_steps).
    return (f"{message} (Service: AmazonSageMaker; Status Code: {status}; Error Code: {code}; "
            "Request ID: 5f2d3c1a-0b1e-4c3a-9a57-1d2e3f4a5b6c; Proxy: null)")


THROTTLED = sdk_cause("ThrottlingException", "Rate exceeded")


def state(job: dict, cause=THROTTLED, previous: dict | None = None, error: dict | None = None) -> dict:
    caught = error if error is not None else {"Error": "SageMaker.AmazonSageMakerException", "Cause": cause}
    event = {"run": make_run(), "plan": {"training": job}, "training_error": caught}
    if previous is not None:
        event["training"] = previous
    return event


def until(created: datetime, seconds: int, recover) -> str:
    return (created + timedelta(seconds=seconds + recover.WAIT_MARGIN_SECONDS)).isoformat().replace("+00:00", "Z")


class Floor:
    """A random source whose every draw is the lowest value allowed."""

    def uniform(self, low, high):
        return low


class Ceiling:
    def uniform(self, low, high):
        return high


# ------------------------------------------------------------------ is the job this run's?

@pytest.mark.parametrize("field, other", [
    ("RoleArn", {"RoleArn": f"arn:aws:iam::{ACCOUNT}:role/someone-else"}),
    ("TrainingImage", {"AlgorithmSpecification": {"TrainingImage": IMAGE.replace("1.7-1", "1.5-1"),
                                                  "TrainingInputMode": "File"}}),
    ("S3OutputPath", {"OutputDataConfig": {"S3OutputPath": "s3://other/training/"}}),
    ("Inputs", {"InputDataConfig": [s3_channel("train", "s3://other/train/"), s3_channel("validation", VALIDATION)]}),
    ("Inputs", {"InputDataConfig": [s3_channel("train", TRAIN)]}),
])
def test_a_job_differing_in_any_identifying_field_is_not_this_runs(recover, sagemaker, field, other):
    client, stub = sagemaker
    stub.add_response("describe_training_job", described(request(**other)), {"TrainingJobName": NAME})
    with pytest.raises(recover.TrainingJobConflict) as raised:
        recover.recover_training(client, state(request(), sdk_cause("ResourceInUse", "already exists")))
    assert f"'{field}': " in str(raised.value)


def test_the_conflict_says_what_the_existing_job_and_this_run_use(recover, sagemaker):
    """The failure email quotes this text: both sides, field by field, including a channel that is not on S3."""
    client, stub = sagemaker
    file_system = {"ChannelName": "extra", "DataSource": {"FileSystemDataSource": {
        "FileSystemId": "fs-0123456789abcdef0", "FileSystemAccessMode": "ro", "FileSystemType": "EFS",
        "DirectoryPath": "/data"}}}
    existing = request(InputDataConfig=[s3_channel("train", TRAIN), file_system],
                       OutputDataConfig={"S3OutputPath": "s3://other/training/"})
    stub.add_response("describe_training_job", described(existing), {"TrainingJobName": NAME})
    with pytest.raises(recover.TrainingJobConflict) as raised:
        recover.recover_training(client, state(request(), sdk_cause("ResourceInUse", "already exists")))
    theirs = {"RoleArn": ROLE_ARN, "TrainingImage": IMAGE, "S3OutputPath": "s3://other/training/",
              "Inputs": ["", TRAIN]}
    ours = {"RoleArn": ROLE_ARN, "TrainingImage": IMAGE, "S3OutputPath": OUTPUT, "Inputs": [TRAIN, VALIDATION]}
    assert str(raised.value) == (
        f"training job {NAME} already exists with other settings ({theirs}), so it is not this run's ({ours}); "
        "SageMaker never reuses a training job name: start the run under a new name")


def test_the_same_channels_in_another_order_are_the_same_job(recover, sagemaker):
    client, stub = sagemaker
    job = request(InputDataConfig=[s3_channel("validation", VALIDATION), s3_channel("train", TRAIN)])
    stub.add_response("describe_training_job", described(job), {"TrainingJobName": NAME})
    assert recover.recover_training(client, state(request()))["action"] == "wait"


def test_a_channel_without_an_s3_source_does_not_break_the_comparison(recover, sagemaker):
    client, stub = sagemaker
    file_system = {"ChannelName": "extra", "DataSource": {"FileSystemDataSource": {
        "FileSystemId": "fs-0123456789abcdef0", "FileSystemAccessMode": "ro", "FileSystemType": "EFS",
        "DirectoryPath": "/data"}}}
    job = request(InputDataConfig=[s3_channel("train", TRAIN), file_system])
    stub.add_response("describe_training_job", described(job), {"TrainingJobName": NAME})
    assert recover.recover_training(client, state(job))["action"] == "wait"


# ------------------------------------------------------------------ how long to wait for it

def test_the_wait_follows_the_existing_jobs_own_stopping_condition(recover, sagemaker):
    """The job ends by its own limit, whatever this run's plan says now."""
    client, stub = sagemaker
    job = request(StoppingCondition={"MaxRuntimeInSeconds": 7200})
    stub.add_response("describe_training_job", described(job), {"TrainingJobName": NAME})
    result = recover.recover_training(client, state(request()))
    assert result["wait_until"] == until(NOW, 7200, recover)


def test_without_a_stopping_condition_in_the_description_the_plans_is_used(recover):
    class Describes:
        def describe_training_job(self, **_):
            return {k: v for k, v in described(request()).items() if k != "StoppingCondition"}

    result = recover.recover_training(Describes(), state(request(StoppingCondition={"MaxRuntimeInSeconds": 1800})))
    assert result["wait_until"] == until(NOW, 1800, recover)


def test_without_any_limit_the_wait_is_the_margin_alone(recover):
    assert recover.wait_until(NOW, {}) == until(NOW, 0, recover)


# ------------------------------------------------------------------ retries

def test_full_jitter_may_retry_at_once(recover, sagemaker):
    """Full jitter draws from [0, cap]: the lowest draw is no wait at all, not one second."""
    client, stub = sagemaker
    stub.add_client_error("describe_training_job", *NOT_FOUND)
    result = recover.recover_training(client, state(request()), rng=Floor())
    assert (result["action"], result["retry_in_seconds"]) == ("retry", 0)


def test_the_backoff_draws_from_a_real_random_source(recover):
    waits = [recover.backoff_seconds(3, random.Random(seed)) for seed in range(50)]
    assert all(0 <= wait <= 40 for wait in waits) and len(set(waits)) > 5


def test_a_wait_answer_before_the_failure_counts_no_attempt(recover, sagemaker):
    """After a `wait` (attempts 0) the next failure is the first retry, under the first cap."""
    client, stub = sagemaker
    stub.add_client_error("describe_training_job", *NOT_FOUND)
    previous = {"action": "wait", "attempts": 0, "training_job_name": NAME}
    result = recover.recover_training(client, state(request(), previous=previous), rng=Ceiling())
    assert (result["attempts"], result["retry_in_seconds"]) == (1, 10)


def test_a_throttled_look_for_the_job_answers_in_full(recover, sagemaker):
    client, stub = sagemaker
    stub.add_client_error("describe_training_job", "ThrottlingException", "Rate exceeded")
    result = recover.recover_training(client, state(request()), rng=Ceiling())
    assert result == {"action": "retry", "attempts": 1, "training_job_name": NAME, "wait_until": None,
                      "retry_in_seconds": 10}


def test_a_look_for_the_job_throttled_past_the_last_attempt_fails_as_throttled(recover, sagemaker):
    client, stub = sagemaker
    stub.add_client_error("describe_training_job", "ThrottlingException", "Rate exceeded")
    last = {"action": "retry", "attempts": recover.MAX_RETRIES, "training_job_name": NAME}
    with pytest.raises(Exception) as raised:
        recover.recover_training(client, state(request(), previous=last))
    assert type(raised.value).__name__ == "ServiceThrottled"
    assert "DescribeTrainingJob" in str(raised.value)


# ------------------------------------------------------------------ what a failure says

@pytest.mark.parametrize("error", [{"Error": "SageMaker.AmazonSageMakerException"},
                                   {"Error": "SageMaker.AmazonSageMakerException", "Cause": ""},
                                   {"Error": "SageMaker.AmazonSageMakerException", "Cause": None}])
def test_a_failure_without_a_cause_fails_saying_so(recover, sagemaker, error):
    client, stub = sagemaker
    stub.add_client_error("describe_training_job", *NOT_FOUND)
    with pytest.raises(Exception) as raised:
        recover.recover_training(client, state(request(), error=error))
    assert type(raised.value).__name__ == "RequestRejected"
    assert str(raised.value) == ("An error occurred (Unknown) when calling the CreateTrainingJob operation: "
                                 "Step Functions gave no cause")


def test_a_malformed_event_says_what_is_missing(recover):
    with pytest.raises(recover.InvalidEvent, match="needs plan.training and training_error"):
        recover.recover_training(None, {"plan": {}})


def test_a_bad_training_job_name_is_quoted(recover):
    with pytest.raises(recover.InvalidEvent, match=r"'bad name!' is not a training job name"):
        recover.recover_training(None, state(request(TrainingJobName="bad name!")))


# ------------------------------------------------------------------ the documented limits
# Module constants are out of mutmut's reach; docs/architecture.md and the module say: up to 5 more attempts,
# waiting up to 10, 20, 40, 80, 160 s (full jitter), never more than 300 s.

def test_the_sixth_throttled_failure_fails_the_run(recover, sagemaker):
    client, stub = sagemaker
    stub.add_client_error("describe_training_job", *NOT_FOUND)
    stub.add_client_error("describe_training_job", *NOT_FOUND)
    fifth = recover.recover_training(client, state(request(), previous={"action": "retry", "attempts": 4,
                                                                        "training_job_name": NAME}), rng=Ceiling())
    assert (fifth["action"], fifth["attempts"], fifth["retry_in_seconds"]) == ("retry", 5, 160)
    with pytest.raises(Exception) as raised:
        recover.recover_training(client, state(request(), previous=fifth))
    assert type(raised.value).__name__ == "ServiceThrottled"


def test_no_backoff_exceeds_five_minutes(recover):
    assert [recover.backoff_seconds(n, Ceiling()) for n in range(5, 9)] == [160, 300, 300, 300]
