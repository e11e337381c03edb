"""localmode.aws: the stack's resources in moto, the mailbox, and the local
UpdateEndpoint that the real deploy_production Lambda calls through boto3."""
from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from localmode import REPO_ROOT, aws
from localmode.stack import LocalStack

CONTAINERS = [{"Image": "xgboost:1.7-1", "ModelDataUrl": "s3://b/model.tar.gz"}]


@pytest.fixture
def moto_aws():
    with aws.local_aws() as _:
        yield


def make_config(sagemaker, name: str, instances: int = 1) -> None:
    sagemaker.create_model(ModelName=f"{name}-model", ExecutionRoleArn="arn:aws:iam::123456789012:role/r", Containers=CONTAINERS)
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"{name}-model", "InitialInstanceCount": instances,
                             "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}],
    )


DEPLOYMENT = {
    "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                              "TerminationWaitInSeconds": 600,
                              "MaximumExecutionTimeoutInSeconds": 4200},
    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors"}]},
}


def test_update_endpoint_switches_the_config(moto_aws):
    sagemaker = boto3.client("sagemaker")
    make_config(sagemaker, "old")
    make_config(sagemaker, "new", instances=2)
    sagemaker.create_endpoint(EndpointName="prod", EndpointConfigName="old")

    arn = sagemaker.update_endpoint(EndpointName="prod", EndpointConfigName="new", DeploymentConfig=DEPLOYMENT)["EndpointArn"]

    described = sagemaker.describe_endpoint(EndpointName="prod")
    assert arn == described["EndpointArn"]
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "new")
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    [update] = aws.endpoint_updates.history
    assert update == {"endpoint": "prod", "from": "old", "to": "new", "deployment_config": DEPLOYMENT, "rolled_back": False}


def test_injected_rollback_keeps_the_previous_config(moto_aws):
    sagemaker = boto3.client("sagemaker")
    make_config(sagemaker, "old")
    make_config(sagemaker, "new")
    sagemaker.create_endpoint(EndpointName="prod", EndpointConfigName="old")
    aws.endpoint_updates.rollback_next = True

    sagemaker.update_endpoint(EndpointName="prod", EndpointConfigName="new", DeploymentConfig=DEPLOYMENT)

    described = sagemaker.describe_endpoint(EndpointName="prod")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "old")
    assert "rolled back" in described["FailureReason"]
    assert aws.endpoint_updates.rollback_next is False  # one update only
    sagemaker.update_endpoint(EndpointName="prod", EndpointConfigName="new")
    assert sagemaker.describe_endpoint(EndpointName="prod")["EndpointConfigName"] == "new"


@pytest.mark.parametrize(
    "endpoint, config, message",
    [("missing", "new", "Could not find endpoint"), ("prod", "nope", "Could not find endpoint configuration"),
     ("prod", "old", "already uses")],
)
def test_update_endpoint_refuses_like_sagemaker(moto_aws, endpoint, config, message):
    sagemaker = boto3.client("sagemaker")
    make_config(sagemaker, "old")
    make_config(sagemaker, "new")
    sagemaker.create_endpoint(EndpointName="prod", EndpointConfigName="old")

    with pytest.raises(ClientError) as raised:
        sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert message in raised.value.response["Error"]["Message"]
    assert sagemaker.describe_endpoint(EndpointName="prod")["EndpointConfigName"] == "old"


def test_update_endpoint_exists_only_while_installed():
    from moto.sagemaker.responses import SageMakerResponse

    with aws.local_aws():
        assert hasattr(SageMakerResponse, "update_endpoint")
    assert not hasattr(SageMakerResponse, "update_endpoint")


def test_isolate_environment_drops_inherited_endpoints_and_profiles(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "prod-admin")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.com")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    aws.isolate_environment()
    import os

    assert "AWS_PROFILE" not in os.environ and "AWS_ENDPOINT_URL_S3" not in os.environ
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"


def test_resources_follow_the_template_and_mail_arrives(moto_aws):
    stack = LocalStack.from_file(parameter_overrides={"NotificationEmail": "you@example.com"})
    resources = aws.create_resources(stack, REPO_ROOT / "datasets" / "car.json")

    s3 = boto3.client("s3")
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {resources.input_bucket, resources.artifacts_bucket} <= buckets
    bucket, key = resources.spec_uri[5:].split("/", 1)
    assert b'"label"' in s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    table = boto3.client("dynamodb").describe_table(TableName=resources.state_table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    # The names the Lambdas are given are the names that exist.
    env = stack.function_environment("RequestApprovalFunction")
    assert env["STATE_TABLE"] == resources.state_table and env["TOPIC_ARN"] == resources.topic_arn

    boto3.client("sns").publish(TopicArn=resources.topic_arn, Subject="Approve run x", Message="Open http://a/b")
    assert aws.read_mailbox(resources.mailbox_url) == [{"subject": "Approve run x", "message": "Open http://a/b"}]
    assert aws.read_mailbox(resources.mailbox_url) == []


# --- training jobs that exist while they train --------------------------------------------

def training_request(name: str = "run-1-train") -> dict:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "xgboost:1.7-1", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "HyperParameters": {"num_round": "3"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "s3://b/train/"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://b/training/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }


def ended(status: str, **extra) -> dict:
    """What the training worker describes when its job ended (times in epoch milliseconds)."""
    return {"TrainingJobName": "run-1-train", "TrainingJobStatus": status, "SecondaryStatus": status,
            "TrainingEndTime": 1735787047000, "TrainingTimeInSeconds": 2, "BillableTimeInSeconds": 2, **extra}


def test_a_training_job_is_in_progress_until_the_worker_ends_it(moto_aws):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**training_request())
    # moto alone would say Completed at once, before anything trained.
    assert sagemaker.describe_training_job(TrainingJobName="run-1-train")["TrainingJobStatus"] == "InProgress"

    final = aws.end_training_job(ended(
        "Completed", ModelArtifacts={"S3ModelArtifacts": "s3://b/training/run-1-train/output/model.tar.gz"},
        FinalMetricDataList=[{"MetricName": "validation:merror", "Value": 0.03, "Timestamp": 1735787045000}]),
        "123456789012", aws.REGION)

    assert final["TrainingJobStatus"] == "Completed"
    described = sagemaker.describe_training_job(TrainingJobName="run-1-train")
    assert described["TrainingJobStatus"] == "Completed"
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == "s3://b/training/run-1-train/output/model.tar.gz"
    assert described["FinalMetricDataList"][0]["Value"] == 0.03
    assert described["TrainingEndTime"].timestamp() == 1735787047


def test_a_failed_job_keeps_its_reason(moto_aws):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**training_request())
    aws.end_training_job(ended("Failed", FailureReason="ClientError: channel train has no data"), "123456789012", aws.REGION)
    described = sagemaker.describe_training_job(TrainingJobName="run-1-train")
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"] == "ClientError: channel train has no data"


def test_a_training_job_name_is_used_once_as_sagemaker_insists(moto_aws):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**training_request())
    with pytest.raises(ClientError) as raised:
        sagemaker.create_training_job(**training_request())
    # SageMaker's own answer (https://github.com/aws/amazon-sagemaker-examples/pull/3108).
    assert raised.value.response["Error"]["Code"] == "ResourceInUse"
    assert "a training job with this name already exists" in str(raised.value)


def test_an_unknown_training_job_is_not_found_in_sagemakers_words(moto_aws):
    with pytest.raises(ClientError) as raised:
        boto3.client("sagemaker").describe_training_job(TrainingJobName="nope-train")
    # https://github.com/aws/aws-sdk/issues/165
    assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": "Requested resource not found."}


def test_a_job_stopped_while_it_trains_ends_stopped(moto_aws):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**training_request())
    sagemaker.stop_training_job(TrainingJobName="run-1-train")
    assert sagemaker.describe_training_job(TrainingJobName="run-1-train")["TrainingJobStatus"] == "Stopping"

    final = aws.end_training_job(ended("Completed"), "123456789012", aws.REGION)

    assert final["TrainingJobStatus"] == "Stopped"
    assert sagemaker.describe_training_job(TrainingJobName="run-1-train")["TrainingJobStatus"] == "Stopped"
    with pytest.raises(ClientError, match="the training job is in status Stopped"):
        sagemaker.stop_training_job(TrainingJobName="run-1-train")


def test_eventbridge_matching_follows_the_pattern(moto_aws):
    pattern = {"source": ["aws.states"], "detail": {"status": ["FAILED", "ABORTED"]}}
    event = {"source": "aws.states", "detail-type": "Step Functions Execution Status Change",
             "detail": {"status": "ABORTED"}, "resources": []}
    assert aws.eventbridge_delivers(pattern, event) is True
    assert aws.eventbridge_delivers(pattern, {**event, "detail": {"status": "SUCCEEDED"}}) is False


def test_a_broken_spec_is_left_out_by_name_and_position_and_the_others_still_upload(moto_aws, tmp_path):
    # One bad datasets/*.json had stopped every run, car's too, with a traceback naming no file (issue 23).
    broken = tmp_path / "houses.json"
    broken.write_text('{"name": "houses",\n "columns": [}\n', encoding="utf-8")
    nameless = tmp_path / "nameless.json"
    nameless.write_text("{}", encoding="utf-8")
    stack = LocalStack.from_file(parameter_overrides={"NotificationEmail": "you@example.com"})
    resources = aws.create_resources(stack, [REPO_ROOT / "datasets" / "car.json", broken, nameless])
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=resources.artifacts_bucket)["Contents"]]
    assert keys == ["deps/datasets/car.json"]
    assert f"{broken} is not a usable spec (Expecting value: line 2 column 14 (char 32))" in resources.skipped_specs[str(broken)]
    assert 'it has no "name"' in resources.skipped_specs[str(nameless)]
