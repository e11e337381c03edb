"""start_run: one execution per uploaded object, whatever EventBridge re-delivers."""
from __future__ import annotations

import json
import re
from urllib.parse import quote_plus

import boto3
import pytest
from botocore.stub import Stubber

from lambda_fixtures import ACCOUNT, REGION

DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


def s3_event(key: str, bucket: str = "input-bucket", etag: str = "9b2cf535f27731c974343645a3985328",
             sequencer: str = "0064D3901D00059242", version_id: str | None = None) -> dict:
    obj = {"key": key, "size": 51867, "etag": etag, "sequencer": sequencer}
    if version_id:
        obj["version-id"] = version_id
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": "2025-01-02T03:04:05Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "reason": "PutObject",
        },
    }


@pytest.fixture
def start_run(load_function):
    return load_function("start_run")


@pytest.fixture
def state_machine(aws, monkeypatch):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name="pipeline", definition=DEFINITION, roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    monkeypatch.setenv("INPUT_PREFIX", "input/")
    return sfn, arn


def executions(sfn, arn):
    return sfn.list_executions(stateMachineArn=arn)["executions"]


def test_upload_starts_one_execution_with_the_object_as_input(start_run, state_machine, context):
    sfn, arn = state_machine
    result = start_run.lambda_handler(s3_event("input/car.data", version_id="3HL4kqtJlcpXroDTDmJ"), context)

    assert result["action"] == "started"
    assert result["input_uri"] == "s3://input-bucket/input/car.data"
    [execution] = executions(sfn, arn)
    assert execution["name"] == result["execution_name"]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    # A file directly under the prefix is a run of the default dataset (DEFAULT_DATASET, car when unset).
    # The object's version and etag go with it: the model registry records which upload a model came from.
    assert json.loads(described["input"]) == {"input_uri": "s3://input-bucket/input/car.data", "dataset": "car",
                                              "input_version_id": "3HL4kqtJlcpXroDTDmJ",
                                              "input_etag": "9b2cf535f27731c974343645a3985328"}


def test_the_same_event_delivered_twice_starts_one_execution(start_run, state_machine, context):
    sfn, arn = state_machine
    event = s3_event("input/car.data")
    first = start_run.lambda_handler(event, context)
    second = start_run.lambda_handler(json.loads(json.dumps(event)), context)

    assert first["execution_name"] == second["execution_name"]
    assert len(executions(sfn, arn)) == 1


def test_a_new_upload_of_the_same_key_is_a_new_run(start_run, state_machine, context):
    sfn, arn = state_machine
    first = start_run.lambda_handler(s3_event("input/car.data", sequencer="0064D3901D00059242"), context)
    again = start_run.lambda_handler(s3_event("input/car.data", sequencer="0064D3901D000592FF"), context)

    assert first["execution_name"] != again["execution_name"]
    assert len(executions(sfn, arn)) == 2


def test_execution_already_exists_is_reported_as_duplicate(start_run, context, monkeypatch):
    """After the first execution ended, Step Functions refuses the name: that is the duplicate, not an error."""
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:pipeline"
    sfn = boto3.client("stepfunctions", region_name=REGION)
    with Stubber(sfn) as stub:
        stub.add_client_error("start_execution", "ExecutionAlreadyExists", "Execution Already Exists")
        result = start_run.start_run(sfn, s3_event("input/car.data"), arn, "input/")
        stub.assert_no_pending_responses()
    assert result["action"] == "duplicate"
    assert result["execution_arn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:pipeline:{result['execution_name']}"


def test_other_step_functions_errors_propagate(start_run):
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:pipeline"
    sfn = boto3.client("stepfunctions", region_name=REGION)
    with Stubber(sfn) as stub:
        stub.add_client_error("start_execution", "StateMachineDoesNotExist", "no such state machine")
        with pytest.raises(Exception, match="StateMachineDoesNotExist"):
            start_run.start_run(sfn, s3_event("input/car.data"), arn, "input/")


@pytest.mark.parametrize("key", ["other/car.data", "inputs/car.data", "input/", "input/sub/"])
def test_keys_outside_the_prefix_and_directory_markers_are_ignored(start_run, state_machine, context, key):
    sfn, arn = state_machine
    result = start_run.lambda_handler(s3_event(key), context)
    assert result["action"] == "ignored"
    assert executions(sfn, arn) == []


@pytest.mark.parametrize(
    "key",
    [
        "input/car.data",
        "input/My Data (2024) FINAL!!.csv",
        "input/" + "x" * 300 + ".csv",
        "input/日本語.csv",
        "input/....csv",
        "input/a/b/c/very_long_name_with_underscores_and.dots.in.it.csv",
    ],
)
def test_execution_names_are_valid_for_step_functions_and_sagemaker(start_run, key):
    name = start_run.execution_name(start_run.object_identity(s3_event(key)))
    assert len(name) <= 40
    # Valid SageMaker name (the stricter of the two), hence a valid execution name.
    assert re.fullmatch(r"[a-z0-9](-*[a-z0-9])*", name), name
    assert len(name + "-config") <= 63


def test_versioned_objects_are_identified_by_version(start_run):
    one = start_run.execution_name(start_run.object_identity(s3_event("input/car.data", version_id="v1")))
    two = start_run.execution_name(start_run.object_identity(s3_event("input/car.data", version_id="v2")))
    assert one != two


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        {"source": "aws.s3", "detail-type": "Object Deleted", "detail": {}},
        {"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}}},
        {"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": ""}, "object": {"key": "input/x"}}},
        {"Records": [{"s3": {}}]},
    ],
)
def test_malformed_events_raise_invalid_event(start_run, state_machine, context, event):
    sfn, arn = state_machine
    with pytest.raises(Exception) as raised:
        start_run.lambda_handler(event, context)
    assert type(raised.value).__name__ == "InvalidEvent"
    assert executions(sfn, arn) == []


# Keys with spaces, "+" and non-ASCII characters. The event carries the key in the
# form S3 documents for its notifications, URL-encoded like a form ("red flower.jpg"
# arrives as "red+flower.jpg", https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html),
# which is how AWS's Powertools reads EventBridge's detail.object.key
# (aws_lambda_powertools.utilities.data_classes.s3_event.S3EventBridgeNotificationObject.key: unquote_plus).
AWKWARD_KEY = "input/car data+v2 é (1)%.csv"


def documented_form(key: str) -> str:
    return quote_plus(key, safe="/")


@pytest.fixture
def input_bucket(aws):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="input-bucket")
    return s3


def upload(s3, key: str, body: bytes) -> str:
    return s3.put_object(Bucket="input-bucket", Key=key, Body=body)["ETag"].strip('"')


def test_an_encoded_key_starts_a_run_on_the_object_itself(start_run, state_machine, input_bucket, context):
    sfn, arn = state_machine
    etag = upload(input_bucket, AWKWARD_KEY, b"rows")
    event = s3_event(documented_form(AWKWARD_KEY), etag=etag)
    assert event["detail"]["object"]["key"] == "input/car+data%2Bv2+%C3%A9+%281%29%25.csv"
    result = start_run.lambda_handler(event, context)
    assert result["action"] == "started"
    assert result["input_uri"] == f"s3://input-bucket/{AWKWARD_KEY}"
    [execution] = executions(sfn, arn)
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"])["input_uri"] == f"s3://input-bucket/{AWKWARD_KEY}"
    assert json.loads(described["input"])["dataset"] == "car"


def test_a_key_that_arrives_as_stored_is_found_too(start_run, state_machine, input_bucket, context):
    """Should EventBridge carry the key unencoded, a "+" must not become a space."""
    key = "input/car+v2.csv"
    etag = upload(input_bucket, key, b"rows")
    result = start_run.lambda_handler(s3_event(key, etag=etag), context)
    assert result["input_uri"] == f"s3://input-bucket/{key}"


def test_when_both_readings_exist_the_events_etag_decides(start_run, state_machine, input_bucket, context):
    upload(input_bucket, "input/car v2.csv", b"the space one")
    plus = upload(input_bucket, "input/car+v2.csv", b"the plus one")
    assert start_run.lambda_handler(s3_event("input/car+v2.csv", etag=plus), context)["input_uri"] == \
        "s3://input-bucket/input/car+v2.csv"


def test_s3_uris_keep_every_character_of_the_key(load_function):
    from pipeline_common.s3 import parse_s3_uri, s3_uri

    for key in (AWKWARD_KEY, "input/what?.csv", "input/#1.csv", "input/a%20b.csv"):
        assert parse_s3_uri(s3_uri("input-bucket", key)) == ("input-bucket", key)


@pytest.mark.parametrize("key, default, dataset", [
    ("input/penguins/penguins.csv", "car", "penguins"),
    ("input/diabetes/2025/01/export.csv", "car", "diabetes"),
    ("input/export.csv", "wine", "wine"),
    # Not a usable name: the run itself fails with a message (resolve_dataset), so it is passed on as given.
    ("input/My+Data/x.csv", "car", "My Data"),
])
def test_the_key_names_the_dataset(start_run, state_machine, input_bucket, context, monkeypatch, key, default, dataset):
    sfn, arn = state_machine
    monkeypatch.setenv("DEFAULT_DATASET", default)
    result = start_run.lambda_handler(s3_event(key), context)
    assert result["dataset"] == dataset
    [execution] = executions(sfn, arn)
    assert json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])["dataset"] == dataset
