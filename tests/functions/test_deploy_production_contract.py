"""deploy_production one decision at a time: which run may claim production (and what
a superseded run is told), which SageMaker states and errors mean "busy, retry" and
which need a person, the exact CreateModel / CreateEndpointConfig / CreateEndpoint /
UpdateEndpoint / PutMetricAlarm / DynamoDB requests, the event checks and what is
returned.

SageMaker, DynamoDB and CloudWatch are botocore's Stubber on real clients, each
request expected exactly (a Stubber with nothing queued fails any call, so "no call"
is checked too; botocore also validates every request and scripted answer against
its service model). The claim's condition expression is evaluated by moto's DynamoDB
where its meaning (which start time wins) is what is tested. API references:
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateEndpoint.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DataCaptureConfig.html
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html
"""
from __future__ import annotations

import calendar
import hashlib
import json
from datetime import datetime, timedelta, timezone

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY

from lambda_fixtures import ACCOUNT, ARTIFACTS, REGION, ROLE_ARN, TABLE, make_run, stubbed_client
from pipeline_common.errors import InvalidEvent

ENDPOINT = "car-evaluation"
KEY = {"pk": {"S": f"production#{ENDPOINT}"}}
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"
RUN = make_run("car-0123456789ab", "2025-01-02T03:04:05.678Z")
# 2025-01-02T03:04:05.678Z in microseconds since the epoch, computed without the code under test.
RUN_US = calendar.timegm((2025, 1, 2, 3, 4, 5)) * 1_000_000 + 678_000
NOW = datetime(2025, 1, 3, 12, 0, tzinfo=timezone.utc)
CONFIG = "car-0123456789ab-config"
ALARMS = ["stack-production-5xx", "stack-production-latency"]
CREATED = datetime(2025, 1, 2, tzinfo=timezone.utc)
# SageMaker's answer to a change of an endpoint that is changing, as the AWS SageMaker
# operator for Kubernetes matches it (github.com/aws/amazon-sagemaker-operator-for-k8s,
# controllers/sdkutil/clientwrapper/sagemaker_client.go: DeleteEndpointInProgressMessagePrefix).
IN_PROGRESS_MESSAGE = f'Cannot update in-progress endpoint "{ENDPOINT_ARN}".'


@pytest.fixture
def app(load_function):
    return load_function("deploy_production")


def described_endpoint(status: str, config: str = "car-previous-config", pending: str | None = None) -> dict:
    description = {"EndpointName": ENDPOINT, "EndpointArn": ENDPOINT_ARN, "EndpointConfigName": config,
                   "EndpointStatus": status, "CreationTime": CREATED, "LastModifiedTime": CREATED}
    if pending:
        description["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    return description


def not_found(stub, operation: str, message: str, params: dict) -> None:
    stub.add_client_error(operation, "ValidationException", message, expected_params=params)


# ------------------------------------------------------------------ names and capture

def test_production_names_are_the_versions_and_the_configurations_digest(app):
    config = {"variants": [{"VariantName": "AllTraffic"}], "capture": None}
    text = json.dumps(config, sort_keys=True)
    expected_digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    assert app.production_names("car-evaluation", 3, config) == (
        "car-evaluation-v3-model", f"car-evaluation-v3-{expected_digest}-config")
    # The same configuration written in another key order is the same config; another one is not.
    reordered = {"capture": None, "variants": [{"VariantName": "AllTraffic"}]}
    assert app.production_names("car-evaluation", 3, reordered) == app.production_names("car-evaluation", 3, config)
    assert app.production_names("car-evaluation", 3, {**config, "capture": {}})[1] != \
        app.production_names("car-evaluation", 3, config)[1]
    assert app.production_names("car-evaluation", 3, {**config, "capture": {}})[0] == "car-evaluation-v3-model"


def test_capture_is_off_at_zero_percent_and_on_from_one(app):
    assert app.capture_config("s3://b/capture", "key", 0) is None
    assert app.capture_config("s3://b/capture", "key", -5) is None
    assert app.capture_config("s3://b/capture", "", 1) == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 1,
        "DestinationS3Uri": "s3://b/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]},
    }


def test_capture_is_encrypted_with_the_stack_key_when_one_is_given(app):
    config = app.capture_config("s3://b/capture", "arn:aws:kms:us-east-1:123456789012:key/k", 100)
    assert config["KmsKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/k"
    assert config["InitialSamplingPercentage"] == 100


def test_capture_config_is_a_valid_DataCaptureConfig(app):
    """Every key is a member of botocore's DataCaptureConfig shape and the percentage within its bounds."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.shape_for("DataCaptureConfig")
    config = app.capture_config("s3://b/capture", "key", 100)
    assert set(config) <= set(shape.members)
    bounds = model.shape_for("SamplingPercentage").metadata
    assert bounds["min"] <= config["InitialSamplingPercentage"] <= bounds["max"]
    assert {o["CaptureMode"] for o in config["CaptureOptions"]} <= set(model.shape_for("CaptureMode").enum)


# ------------------------------------------------------------------ model and endpoint config

SCHEMA = json.dumps({"input": [], "output": {}})
PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{ENDPOINT}/3"
PACKAGE_CONTAINERS = [
    # What DescribeModelPackage returns: SageMaker adds ImageDigest; an empty Environment is no environment.
    {"Image": "sparkml:3.3", "ImageDigest": "sha256:aaa", "ModelDataUrl": f"s3://{ARTIFACTS}/models/r/pre/model.tar.gz",
     "Environment": {"SAGEMAKER_SPARKML_SCHEMA": SCHEMA}},
    {"Image": "xgboost:1.7-1", "ModelDataUrl": f"s3://{ARTIFACTS}/models/r/xgb/model.tar.gz", "Environment": {}},
    {"Image": "sparkml:3.3", "ModelDataUrl": f"s3://{ARTIFACTS}/models/r/post/model.tar.gz",
     "Environment": {"SAGEMAKER_SPARKML_SCHEMA": SCHEMA}, "ContainerHostname": "post"},
]
MODEL_CONTAINERS = [
    {"Image": "sparkml:3.3", "ModelDataUrl": f"s3://{ARTIFACTS}/models/r/pre/model.tar.gz",
     "Environment": {"SAGEMAKER_SPARKML_SCHEMA": SCHEMA}},
    {"Image": "xgboost:1.7-1", "ModelDataUrl": f"s3://{ARTIFACTS}/models/r/xgb/model.tar.gz"},
    {"Image": "sparkml:3.3", "ModelDataUrl": f"s3://{ARTIFACTS}/models/r/post/model.tar.gz",
     "Environment": {"SAGEMAKER_SPARKML_SCHEMA": SCHEMA}},
]
PACKAGE = {"ModelPackageName": ENDPOINT, "ModelPackageGroupName": ENDPOINT, "ModelPackageVersion": 3,
           "ModelPackageArn": PACKAGE_ARN, "CreationTime": CREATED, "ModelPackageStatus": "Completed",
           "ModelPackageStatusDetails": {"ValidationStatuses": []}, "ModelApprovalStatus": "Approved",
           "InferenceSpecification": {"Containers": PACKAGE_CONTAINERS, "SupportedContentTypes": ["text/csv"],
                                      "SupportedResponseMIMETypes": ["text/csv"]}}
MODEL_NAME = "car-evaluation-v3-model"
CAPTURE = {"EnableCapture": True, "InitialSamplingPercentage": 20, "DestinationS3Uri": f"s3://{ARTIFACTS}/capture",
           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
           "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]},
           "KmsKeyId": "key-arn"}


def variants(instance_type="ml.m5.large", count=1) -> list[dict]:
    return [{"VariantName": "AllTraffic", "InstanceType": instance_type, "InitialInstanceCount": count,
             "InitialVariantWeight": 1.0}]


def config_name(app, capture=None, instance_type="ml.m5.large", count=1) -> str:
    return app.production_names(ENDPOINT, 3, {"variants": variants(instance_type, count), "capture": capture})[1]


def expect_new_model(stub) -> None:
    not_found(stub, "describe_model", f'Could not find model "{MODEL_NAME}".', {"ModelName": MODEL_NAME})
    stub.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{MODEL_NAME}"}, {
        "ModelName": MODEL_NAME, "ExecutionRoleArn": ROLE_ARN, "Containers": MODEL_CONTAINERS,
        "InferenceExecutionConfig": {"Mode": "Serial"}})


def expect_new_config(stub, name: str, capture=None, instance_type="ml.m5.large", count=1) -> None:
    not_found(stub, "describe_endpoint_config", f'Could not find endpoint configuration "{name}".',
              {"EndpointConfigName": name})
    request = {"EndpointConfigName": name,
               "ProductionVariants": [{**v, "ModelName": MODEL_NAME} for v in variants(instance_type, count)]}
    if capture:
        request["DataCaptureConfig"] = capture
    stub.add_response("create_endpoint_config",
                      {"EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{name}"}, request)


def existing_model(containers=None, role=ROLE_ARN) -> dict:
    return {"ModelName": MODEL_NAME, "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{MODEL_NAME}",
            "CreationTime": CREATED, "ExecutionRoleArn": role,
            "Containers": containers if containers is not None else
            [{**c, "Mode": "SingleModel"} for c in MODEL_CONTAINERS]}


def test_a_new_version_gets_a_serial_model_of_exactly_its_containers_and_a_capturing_config(app):
    name = config_name(app, CAPTURE, "ml.c5.xlarge", 2)
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_new_model(stub)
        expect_new_config(stub, name, CAPTURE, "ml.c5.xlarge", 2)
        assert app.ensure_production_model(sagemaker, PACKAGE, ROLE_ARN, "ml.c5.xlarge", 2, CAPTURE) == (
            MODEL_NAME, name, app.CAPTURE_ON)


def test_without_capture_the_config_has_no_DataCaptureConfig(app):
    name = config_name(app)
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_new_model(stub)
        expect_new_config(stub, name)
        assert app.ensure_production_model(sagemaker, PACKAGE, ROLE_ARN, "ml.m5.large", 1, None) == (
            MODEL_NAME, name, "off (CaptureSamplingPercentage is 0)")


@pytest.mark.parametrize("code", ["ValidationException", "AccessDeniedException"])
def test_a_refused_capture_config_deploys_without_capture_and_says_why(app, code):
    """Issue 20: AWS's data-capture page says Model Monitor "is no longer open to new customers"
    (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture.html), and which error a new
    account gets is not documented. Production is still served, without capture, and the run says so."""
    capturing, plain = config_name(app, CAPTURE), config_name(app)
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_new_model(stub)
        not_found(stub, "describe_endpoint_config", f'Could not find endpoint configuration "{capturing}".',
                  {"EndpointConfigName": capturing})
        stub.add_client_error("create_endpoint_config", code, "Model Monitor is not available for this account",
                              http_status_code=400)
        stub.add_response("describe_model", existing_model(), {"ModelName": MODEL_NAME})
        expect_new_config(stub, plain)
        model, config, note = app.ensure_production_model(sagemaker, PACKAGE, ROLE_ARN, "ml.m5.large", 1, CAPTURE)
    assert (model, config) == (MODEL_NAME, plain)
    assert note == f"off: SageMaker refused the capture config ({code}: Model Monitor is not available for this account)"


def test_a_config_refused_without_capture_fails_the_deployment(app):
    """Only a capture config gets the second try: the same refusal without capture is the deployment's error."""
    name = config_name(app)
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_new_model(stub)
        not_found(stub, "describe_endpoint_config", f'Could not find endpoint configuration "{name}".',
                  {"EndpointConfigName": name})
        stub.add_client_error("create_endpoint_config", "ValidationException", "bad instance type",
                              http_status_code=400)
        with pytest.raises(ClientError, match="bad instance type"):
            app.ensure_production_model(sagemaker, PACKAGE, ROLE_ARN, "ml.m5.large", 1, None)


def expect_existing_config(stub, name: str, model: str) -> None:
    """DescribeEndpointConfig of a config that already exists and serves `model`."""
    stub.add_response("describe_endpoint_config", {
        "EndpointConfigName": name, "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{name}",
        "CreationTime": CREATED, "ProductionVariants": [{**variants()[0], "ModelName": model}]},
        {"EndpointConfigName": name})


def test_an_existing_model_of_the_same_definition_and_config_are_reused(app):
    name = config_name(app)
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("describe_model", existing_model(), {"ModelName": MODEL_NAME})
        expect_existing_config(stub, name, MODEL_NAME)
        assert app.ensure_production_model(sagemaker, PACKAGE, ROLE_ARN, "ml.m5.large", 1, None) == (
            MODEL_NAME, name, "off (CaptureSamplingPercentage is 0)")


@pytest.mark.parametrize("model", [
    existing_model([{**MODEL_CONTAINERS[0], "Image": "sparkml:3.4"}, *MODEL_CONTAINERS[1:]]),
    existing_model(MODEL_CONTAINERS[:2]),
    existing_model([]),
    existing_model(role=f"arn:aws:iam::{ACCOUNT}:role/someone-else"),
], ids=["other image", "other containers", "no containers", "other role"])
def test_an_existing_model_of_another_definition_is_a_conflict(app, model):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("describe_model", model, {"ModelName": MODEL_NAME})
        with pytest.raises(app.ModelConflict) as raised:
            app.ensure_production_model(sagemaker, PACKAGE, ROLE_ARN, "ml.m5.large", 1, None)
    assert str(raised.value) == f"model {MODEL_NAME} exists but is not what {PACKAGE_ARN} specifies"


def test_an_existing_config_serving_another_model_is_a_conflict(app):
    name = config_name(app)
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("describe_model", existing_model(), {"ModelName": MODEL_NAME})
        expect_existing_config(stub, name, "another-model")
        with pytest.raises(app.ModelConflict) as raised:
            app.ensure_production_model(sagemaker, PACKAGE, ROLE_ARN, "ml.m5.large", 1, None)
    assert str(raised.value) == f"endpoint config {name} exists but does not serve model {MODEL_NAME}"


# ------------------------------------------------------------------ the production claim

def claim_request(run=RUN, us=RUN_US, now="2025-01-03T12:00:00Z") -> dict:
    return {
        "TableName": TABLE,
        "Key": KEY,
        "UpdateExpression": "SET run_id = :run, started_at = :started, started_at_us = :us, claimed_at = :now",
        "ConditionExpression": "attribute_not_exists(pk) OR run_id = :run OR started_at_us < :us",
        "ExpressionAttributeValues": {":run": {"S": run["run_id"]}, ":started": {"S": run["started_at"]},
                                      ":us": {"N": str(us)}, ":now": {"S": now}},
    }


def test_the_claim_is_one_conditional_write_of_the_run_and_its_start_in_microseconds(app):
    with stubbed_client("dynamodb") as (dynamodb, stub):
        stub.add_response("update_item", {}, claim_request())
        assert app.claim_production(dynamodb, TABLE, ENDPOINT, RUN, now=NOW) is None


def test_a_refused_claim_reads_the_holder_consistently_and_names_it(app):
    with stubbed_client("dynamodb") as (dynamodb, stub):
        stub.add_client_error("update_item", "ConditionalCheckFailedException", "The conditional request failed",
                              expected_params=claim_request())
        stub.add_response("get_item", {"Item": {**KEY, "run_id": {"S": "car-newer-000000000002"},
                                                "started_at": {"S": "2025-01-02T04:00:00Z"}}},
                          {"TableName": TABLE, "Key": KEY, "ConsistentRead": True})
        with pytest.raises(app.Superseded) as raised:
            app.claim_production(dynamodb, TABLE, ENDPOINT, RUN, now=NOW)
    assert str(raised.value) == (
        f"run {RUN['run_id']} (started {RUN['started_at']}) will not replace production endpoint {ENDPOINT}: "
        "run car-newer-000000000002 (started 2025-01-02T04:00:00Z) is newer and already claimed it")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_holder_that_cannot_be_read_back_is_named_with_question_marks(app):
    with stubbed_client("dynamodb") as (dynamodb, stub):
        stub.add_client_error("update_item", "ConditionalCheckFailedException", "The conditional request failed")
        stub.add_response("get_item", {})
        with pytest.raises(app.Superseded) as raised:
            app.claim_production(dynamodb, TABLE, ENDPOINT, RUN, now=NOW)
    assert str(raised.value) == (
        f"run {RUN['run_id']} (started {RUN['started_at']}) will not replace production endpoint {ENDPOINT}: "
        "run ? (started ?) is newer and already claimed it")


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException",
                                  "AccessDeniedException", "ResourceNotFoundException", "TransactionConflictException"])
def test_any_other_dynamodb_error_is_raised_not_read_as_superseded(app, code):
    with stubbed_client("dynamodb") as (dynamodb, stub):
        stub.add_client_error("update_item", code, "no")
        with pytest.raises(ClientError) as raised:
            app.claim_production(dynamodb, TABLE, ENDPOINT, RUN, now=NOW)
    assert raised.value.response["Error"]["Code"] == code


def claimed(state_table, endpoint=ENDPOINT) -> dict | None:
    return state_table.get_item(TableName=TABLE, Key={"pk": {"S": f"production#{endpoint}"}}).get("Item")


def test_the_claim_records_the_run_and_its_start(app, state_table):
    app.claim_production(state_table, TABLE, ENDPOINT, RUN, now=NOW)
    assert claimed(state_table) == {**KEY, "run_id": {"S": RUN["run_id"]}, "started_at": {"S": RUN["started_at"]},
                                    "started_at_us": {"N": str(RUN_US)}, "claimed_at": {"S": "2025-01-03T12:00:00Z"}}


def test_without_now_the_claim_is_stamped_with_the_current_time(app, state_table):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    app.claim_production(state_table, TABLE, ENDPOINT, RUN)
    after = datetime.now(timezone.utc)
    stamped = datetime.fromisoformat(claimed(state_table)["claimed_at"]["S"].replace("Z", "+00:00"))
    assert before <= stamped <= after


@pytest.mark.parametrize("later, wins", [
    ("2025-01-02T03:04:05.679Z", True),   # a millisecond later: the newer run
    ("2025-01-02T03:04:05.678Z", False),  # the same start: the first claim stands
    ("2025-01-02T03:04:05.677Z", False),  # earlier: superseded
    ("2025-01-02T04:04:05.678+01:00", False),  # the same instant in another zone is the same start
])
def test_only_a_run_that_started_later_takes_production_over(app, state_table, later, wins):
    app.claim_production(state_table, TABLE, ENDPOINT, RUN, now=NOW)
    other = make_run("car-other-000000000009", later)
    if wins:
        app.claim_production(state_table, TABLE, ENDPOINT, other, now=NOW)
        assert claimed(state_table)["run_id"]["S"] == other["run_id"]
        return
    with pytest.raises(app.Superseded) as raised:
        app.claim_production(state_table, TABLE, ENDPOINT, other, now=NOW)
    assert str(raised.value) == (
        f"run {other['run_id']} (started {later}) will not replace production endpoint {ENDPOINT}: "
        f"run {RUN['run_id']} (started {RUN['started_at']}) is newer and already claimed it")
    assert claimed(state_table)["run_id"]["S"] == RUN["run_id"]


def test_the_holder_may_claim_again_and_each_endpoint_has_its_own_claim(app, state_table):
    app.claim_production(state_table, TABLE, ENDPOINT, RUN, now=NOW)
    app.claim_production(state_table, TABLE, ENDPOINT, RUN, now=NOW + timedelta(minutes=5))
    assert claimed(state_table)["claimed_at"] == {"S": "2025-01-03T12:05:00Z"}
    older = make_run("car-older-000000000001", "2024-12-31T00:00:00Z")
    app.claim_production(state_table, TABLE, "penguins-prod", older, now=NOW)
    assert claimed(state_table, "penguins-prod")["run_id"]["S"] == older["run_id"]


# ------------------------------------------------------------------ deployment config and alarms

def test_the_update_is_blue_green_all_at_once_with_a_baking_period_and_alarm_rollback(app):
    assert app.deployment_config(600, ALARMS) == {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                                  "TerminationWaitInSeconds": 600,
                              "MaximumExecutionTimeoutInSeconds": 4200},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "stack-production-5xx"},
                                                 {"AlarmName": "stack-production-latency"}]},
    }
    assert app.deployment_config(0, []) == {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                                  "TerminationWaitInSeconds": 0,
                                  "MaximumExecutionTimeoutInSeconds": 3600}}


def alarm_requests(endpoint: str, prefix: str, latency: int) -> list[dict]:
    dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}]
    return [
        {"AlarmName": f"{prefix}{endpoint}-5xx", "AlarmDescription": f"The production endpoint {endpoint} answered with 5xx errors.",
         "Namespace": "AWS/SageMaker", "MetricName": "Invocation5XXErrors", "Dimensions": dimensions, "Period": 60,
         "Statistic": "Sum", "EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
         "TreatMissingData": "notBreaching"},
        {"AlarmName": f"{prefix}{endpoint}-latency",
         "AlarmDescription": f"The production endpoint {endpoint} is slower than {latency} microseconds on average.",
         "Namespace": "AWS/SageMaker", "MetricName": "ModelLatency", "Dimensions": dimensions, "Period": 60,
         "Statistic": "Average", "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": float(latency),
         "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"},
    ]


def test_another_endpoint_gets_its_own_two_alarms_created_and_named(app):
    with stubbed_client("cloudwatch") as (cloudwatch, stub):
        for request in alarm_requests("penguins-prod", "stack-production-", 250000):
            stub.add_response("put_metric_alarm", {}, request)
        names = app.rollback_alarms(cloudwatch, "penguins-prod", ENDPOINT, ALARMS, "stack-production-", 250000)
    assert names == ["stack-production-penguins-prod-5xx", "stack-production-penguins-prod-latency"]


def test_the_default_endpoint_uses_the_templates_alarms_and_creates_none(app):
    with stubbed_client("cloudwatch") as (cloudwatch, _):
        assert app.rollback_alarms(cloudwatch, ENDPOINT, ENDPOINT, ALARMS, "stack-production-", 250000) == ALARMS


# ------------------------------------------------------------------ the endpoint's state

def test_every_endpoint_status_sagemaker_reports_is_handled(app):
    """botocore's EndpointStatus enum: each status is this run's own, busy (retried) or needs a person."""
    statuses = set(botocore.session.get_session().get_service_model("sagemaker").shape_for("EndpointStatus").enum)
    assert app.IN_PROGRESS == {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}
    assert app.IN_PROGRESS < statuses
    assert statuses - app.IN_PROGRESS == {"InService", "OutOfService", "Failed", "UpdateRollbackFailed"}


def test_a_missing_endpoint_is_created_with_the_config_and_no_deployment_config(app):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        not_found(stub, "describe_endpoint", f'Could not find endpoint "{ENDPOINT}".', {"EndpointName": ENDPOINT})
        stub.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": ENDPOINT, "EndpointConfigName": CONFIG})
        assert app.deploy(sagemaker, ENDPOINT, CONFIG, 600, ALARMS) == "created"


def test_a_serving_endpoint_gets_the_blue_green_update(app):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("describe_endpoint", described_endpoint("InService"), {"EndpointName": ENDPOINT})
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, {
            "EndpointName": ENDPOINT, "EndpointConfigName": CONFIG, "DeploymentConfig": app.deployment_config(600, ALARMS)})
        assert app.deploy(sagemaker, ENDPOINT, CONFIG, 600, ALARMS) == "updated"


@pytest.mark.parametrize("description, action", [
    (described_endpoint("Creating", CONFIG), "created"),
    (described_endpoint("Updating", pending=CONFIG), "updated"),
    # SageMaker may report its own maintenance while this run's update is pending (DescribeEndpoint).
    (described_endpoint("SystemUpdating", pending=CONFIG), "updated"),
    (described_endpoint("InService", CONFIG), "updated"),
], ids=["creating ours", "updating to ours", "system updating with ours pending", "serving ours"])
def test_this_runs_own_earlier_attempt_is_not_repeated(app, description, action):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("describe_endpoint", description, {"EndpointName": ENDPOINT})
        assert app.deploy(sagemaker, ENDPOINT, CONFIG, 600, ALARMS) == action


@pytest.mark.parametrize("description", [
    described_endpoint("Creating", "car-previous-config"),
    described_endpoint("Updating", pending="someone-else-config"),
    described_endpoint("SystemUpdating", pending="someone-else-config"),
    described_endpoint("Updating", CONFIG),  # ours serves, another update is under way: not ours to report
    described_endpoint("SystemUpdating"),
    described_endpoint("RollingBack", pending=CONFIG),  # our update is being undone: not "updated"
    described_endpoint("Deleting", CONFIG),
], ids=["creating another", "updating to another", "system updating another", "updating from ours",
        "system updating", "rolling back ours", "deleting"])
def test_a_changing_endpoint_is_busy_and_untouched(app, description):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("describe_endpoint", description, {"EndpointName": ENDPOINT})
        with pytest.raises(app.ProductionEndpointBusy) as raised:
            app.deploy(sagemaker, ENDPOINT, CONFIG, 600, ALARMS)
    status = description["EndpointStatus"]
    assert str(raised.value) == f"production endpoint {ENDPOINT} is {status}; try again when it is InService"


@pytest.mark.parametrize("status", ["Failed", "OutOfService", "UpdateRollbackFailed"])
def test_a_broken_endpoint_needs_a_person(app, status):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("describe_endpoint", described_endpoint(status, CONFIG), {"EndpointName": ENDPOINT})
        with pytest.raises(app.ProductionEndpointUnusable) as raised:
            app.deploy(sagemaker, ENDPOINT, CONFIG, 600, ALARMS)
    assert str(raised.value) == (f"production endpoint {ENDPOINT} is {status}; "
                                 "it cannot be updated until someone repairs or deletes it")


@pytest.mark.parametrize("message", [
    IN_PROGRESS_MESSAGE,
    # The same refusal worded without the hyphen is read alike.
    f'Cannot update endpoint "{ENDPOINT_ARN}": an update is in progress.',
    f'Cannot update In-Progress endpoint "{ENDPOINT_ARN}".',
], ids=["in-progress", "in progress", "capitalised"])
def test_an_update_sagemaker_refuses_as_in_progress_is_busy(app, message):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("describe_endpoint", described_endpoint("InService"), {"EndpointName": ENDPOINT})
        stub.add_client_error("update_endpoint", "ValidationException", message)
        with pytest.raises(app.ProductionEndpointBusy) as raised:
            app.deploy(sagemaker, ENDPOINT, CONFIG, 600, ALARMS)
    assert str(raised.value) == f"production endpoint {ENDPOINT} started changing; try again later"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


@pytest.mark.parametrize("code, message", [
    ("ValidationException", f'Could not find endpoint configuration "{CONFIG}".'),
    ("ThrottlingException", "Rate exceeded while an update is in progress"),
    ("ResourceLimitExceeded", "in-progress endpoint updates exceed the account limit"),
], ids=["other validation", "throttled in progress", "limit in-progress"])
def test_any_other_update_error_is_raised_as_it_is(app, code, message):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("describe_endpoint", described_endpoint("InService"), {"EndpointName": ENDPOINT})
        stub.add_client_error("update_endpoint", code, message)
        with pytest.raises(ClientError) as raised:
            app.deploy(sagemaker, ENDPOINT, CONFIG, 600, ALARMS)
    assert raised.value.response["Error"] == {"Code": code, "Message": message}


# ------------------------------------------------------------------ deploy_config

def config_event(**changes) -> dict:
    return {"run": dict(RUN), "names": {"production_endpoint": ENDPOINT}, "endpoint_config_name": CONFIG, **changes}


NEEDS = ("the event needs run.run_id, run.started_at (ISO-8601), names.production_endpoint and "
         "endpoint_config_name")


@pytest.mark.parametrize("event, detail", [
    ({"names": {"production_endpoint": ENDPOINT}, "endpoint_config_name": CONFIG}, "'run'"),
    (config_event(names={}), "'production_endpoint'"),
    (config_event(names=None), "'NoneType' object is not subscriptable"),
    ({"run": RUN, "names": {"production_endpoint": ENDPOINT}}, "'endpoint_config_name'"),
    (config_event(run={"started_at": RUN["started_at"]}), "'run_id'"),
    (config_event(run={**RUN, "run_id": ""}), "'run.run_id'"),
    (config_event(run={**RUN, "run_id": 12345}), "'run.run_id'"),
    (config_event(run={**RUN, "run_id": None}), "'run.run_id'"),
    (config_event(run={"run_id": RUN["run_id"]}), "'started_at'"),
    (config_event(run={**RUN, "started_at": "yesterday"}), "Invalid isoformat string: 'yesterday'"),
    (config_event(run={**RUN, "started_at": None}), "not a timestamp: None"),
], ids=["no run", "no endpoint", "names null", "no config", "no run id", "empty run id", "numeric run id",
        "null run id", "no start", "unreadable start", "null start"])
def test_deploy_config_refuses_an_incomplete_event_before_any_call(app, event, detail):
    with stubbed_client("dynamodb") as (dynamodb, _), stubbed_client("sagemaker") as (sagemaker, _):
        with pytest.raises(InvalidEvent) as raised:
            app.deploy_config(dynamodb, sagemaker, event, TABLE, 600, ALARMS)
    assert str(raised.value) == f"{NEEDS} ({detail})"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


@pytest.mark.parametrize("changes", [
    {"names": {"production_endpoint": "car_evaluation"}},
    {"endpoint_config_name": "car.config"},
    {"names": {"production_endpoint": 7}},
], ids=["bad endpoint", "bad config", "numeric endpoint"])
def test_deploy_config_refuses_names_sagemaker_would_refuse(app, changes):
    with stubbed_client("dynamodb") as (dynamodb, _), stubbed_client("sagemaker") as (sagemaker, _):
        with pytest.raises(InvalidEvent) as raised:
            app.deploy_config(dynamodb, sagemaker, config_event(**changes), TABLE, 600, ALARMS)
    assert str(raised.value) == "names.production_endpoint and endpoint_config_name must be valid SageMaker names"


def test_a_superseded_run_never_reaches_sagemaker(app):
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, _):
        dstub.add_client_error("update_item", "ConditionalCheckFailedException", "The conditional request failed")
        dstub.add_response("get_item", {"Item": {**KEY, "run_id": {"S": "car-newer"}, "started_at": {"S": "later"}}})
        with pytest.raises(app.Superseded):
            app.deploy_config(dynamodb, sagemaker, config_event(), TABLE, 600,
                              lambda endpoint: pytest.fail("no alarms are made for a superseded run"))


def test_a_created_endpoint_is_waited_for_without_the_baking_period(app):
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub):
        dstub.add_response("update_item", {}, claim_request(now=ANY))
        not_found(stub, "describe_endpoint", f'Could not find endpoint "{ENDPOINT}".', {"EndpointName": ENDPOINT})
        stub.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": ENDPOINT, "EndpointConfigName": CONFIG})
        result = app.deploy_config(dynamodb, sagemaker, config_event(), TABLE, 600, ALARMS, wait_seconds=1800, now=NOW)
    assert result == {"endpoint_name": ENDPOINT, "action": "created", "wait_until": "2025-01-03T12:30:00Z"}


def test_an_update_is_waited_for_with_the_baking_period_and_the_endpoints_own_alarms(app):
    asked = []

    def alarms_for(endpoint):
        asked.append(endpoint)
        return ["own-5xx"]

    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub):
        dstub.add_response("update_item", {}, claim_request(now=ANY))
        stub.add_response("describe_endpoint", described_endpoint("InService"), {"EndpointName": ENDPOINT})
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, {
            "EndpointName": ENDPOINT, "EndpointConfigName": CONFIG,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                                          "TerminationWaitInSeconds": 600,
                              "MaximumExecutionTimeoutInSeconds": 4200},
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "own-5xx"}]}}})
        result = app.deploy_config(dynamodb, sagemaker, config_event(), TABLE, 600, alarms_for, wait_seconds=1800, now=NOW)
    assert asked == [ENDPOINT]
    assert result == {"endpoint_name": ENDPOINT, "action": "updated", "wait_until": "2025-01-03T12:40:00Z"}


def test_deploy_config_waits_an_hour_from_now_by_default(app):
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub):
        dstub.add_response("update_item", {}, claim_request(now=ANY))
        stub.add_response("describe_endpoint", described_endpoint("Creating", CONFIG), {"EndpointName": ENDPOINT})
        before = datetime.now(timezone.utc).replace(microsecond=0)
        result = app.deploy_config(dynamodb, sagemaker, config_event(), TABLE, 600, ALARMS)
        after = datetime.now(timezone.utc)
    until = datetime.fromisoformat(result["wait_until"].replace("Z", "+00:00"))
    assert result["action"] == "created"
    assert before + timedelta(hours=1) <= until <= after + timedelta(hours=1)


# ------------------------------------------------------------------ deploy_production

PRODUCTION_NEEDS = ("the event needs run.run_id, run.started_at (ISO-8601), names.production_endpoint and "
                    "model_package_arn")


def production_event(**changes) -> dict:
    return {"run": dict(RUN), "names": {"production_endpoint": ENDPOINT}, "model_package_arn": PACKAGE_ARN, **changes}


@pytest.mark.parametrize("event, detail", [
    ({"names": {"production_endpoint": ENDPOINT}, "model_package_arn": PACKAGE_ARN}, "'run'"),
    (production_event(names={}), "'production_endpoint'"),
    ({"run": RUN, "names": {"production_endpoint": ENDPOINT}}, "'model_package_arn'"),
    (production_event(model_package_arn=None), "'run.run_id / model_package_arn'"),
    (production_event(model_package_arn=3), "'run.run_id / model_package_arn'"),
    (production_event(run={**RUN, "run_id": ""}), "'run.run_id / model_package_arn'"),
    (production_event(run={**RUN, "run_id": 12345}), "'run.run_id / model_package_arn'"),
    (production_event(run={"run_id": RUN["run_id"]}), "'started_at'"),
    (production_event(run={**RUN, "started_at": "soon"}), "Invalid isoformat string: 'soon'"),
    (production_event(run=None), "'NoneType' object is not subscriptable"),
], ids=["no run", "no endpoint", "no package", "null package", "numeric package", "empty run id", "numeric run id",
        "no start", "unreadable start", "null run"])
def test_deploy_production_refuses_an_incomplete_event_before_any_call(app, event, detail):
    with stubbed_client("dynamodb") as (dynamodb, _), stubbed_client("sagemaker") as (sagemaker, _), \
            stubbed_client("s3") as (s3, _):
        with pytest.raises(InvalidEvent) as raised:
            app.deploy_production(dynamodb, sagemaker, s3, event, TABLE, 600, ALARMS, ROLE_ARN)
    assert str(raised.value) == f"{PRODUCTION_NEEDS} ({detail})"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_deploy_production_refuses_an_endpoint_name_sagemaker_would_refuse(app):
    with stubbed_client("dynamodb") as (dynamodb, _), stubbed_client("sagemaker") as (sagemaker, _), \
            stubbed_client("s3") as (s3, _):
        with pytest.raises(InvalidEvent) as raised:
            app.deploy_production(dynamodb, sagemaker, s3, production_event(names={"production_endpoint": "car prod"}),
                                  TABLE, 600, ALARMS, ROLE_ARN)
    assert str(raised.value) == "names.production_endpoint must be a valid SageMaker name"


def expect_package(sagemaker_stub, s3_stub) -> None:
    sagemaker_stub.add_response("describe_model_package", PACKAGE, {"ModelPackageName": PACKAGE_ARN})
    for container in PACKAGE_CONTAINERS:
        key = container["ModelDataUrl"][len(f"s3://{ARTIFACTS}/"):]
        s3_stub.add_response("list_objects_v2", {"Contents": [{"Key": key}]},
                             {"Bucket": ARTIFACTS, "Prefix": key, "MaxKeys": 1})


def test_an_approved_version_is_built_and_deployed_with_the_defaults(app):
    """Defaults: one ml.m5.large instance, no capture, an hour's wait."""
    name = config_name(app)
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub), \
            stubbed_client("s3") as (s3, s3stub):
        expect_package(stub, s3stub)
        expect_new_model(stub)
        expect_new_config(stub, name)
        dstub.add_response("update_item", {}, claim_request(now=ANY))
        not_found(stub, "describe_endpoint", f'Could not find endpoint "{ENDPOINT}".', {"EndpointName": ENDPOINT})
        stub.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": ENDPOINT, "EndpointConfigName": name})
        result = app.deploy_production(dynamodb, sagemaker, s3, production_event(), TABLE, 600, ALARMS, ROLE_ARN,
                                       now=NOW)
    assert result == {"endpoint_name": ENDPOINT, "action": "created", "wait_until": "2025-01-03T13:00:00Z",
                      "endpoint_config_name": name, "model_name": MODEL_NAME, "model_package_arn": PACKAGE_ARN,
                      "model_package_version": 3, "data_capture": "off (CaptureSamplingPercentage is 0)"}


def test_an_approved_version_replaces_production_with_capture_and_the_given_fleet(app):
    name = config_name(app, CAPTURE, "ml.c5.xlarge", 2)
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub), \
            stubbed_client("s3") as (s3, s3stub):
        expect_package(stub, s3stub)
        expect_new_model(stub)
        expect_new_config(stub, name, CAPTURE, "ml.c5.xlarge", 2)
        dstub.add_response("update_item", {}, claim_request(now=ANY))
        stub.add_response("describe_endpoint", described_endpoint("InService"), {"EndpointName": ENDPOINT})
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, {
            "EndpointName": ENDPOINT, "EndpointConfigName": name, "DeploymentConfig": app.deployment_config(300, ALARMS)})
        result = app.deploy_production(dynamodb, sagemaker, s3, production_event(), TABLE, 300, ALARMS, ROLE_ARN,
                                       instance_type="ml.c5.xlarge", instance_count=2, capture=CAPTURE,
                                       wait_seconds=900, now=NOW)
    assert result == {"endpoint_name": ENDPOINT, "action": "updated", "wait_until": "2025-01-03T12:20:00Z",
                      "endpoint_config_name": name, "model_name": MODEL_NAME, "model_package_arn": PACKAGE_ARN,
                      "model_package_version": 3, "data_capture": app.CAPTURE_ON}


# ------------------------------------------------------------------ model files kept for production

NEW_FILES = [f"s3://{ARTIFACTS}/models/new/pre/model.tar.gz", f"s3://{ARTIFACTS}/models/new/xgb/model.tar.gz"]
OLD_FILE = f"s3://{ARTIFACTS}/models/old/model.tar.gz"
OLDER_FILE = f"s3://{ARTIFACTS}/models/older/model.tar.gz"
GONE_FILE = f"s3://{ARTIFACTS}/models/gone/model.tar.gz"


def expect_config_models(stub, config: str, models: dict) -> None:
    """DescribeEndpointConfig of `config` serving `models` (name -> DescribeModel answer, or None if gone)."""
    stub.add_response("describe_endpoint_config", {
        "EndpointConfigName": config, "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{config}",
        "CreationTime": CREATED,
        "ProductionVariants": [{"VariantName": f"v{i}", "ModelName": name} for i, name in enumerate(models)]},
        {"EndpointConfigName": config})
    for name, answer in models.items():
        if answer is None:
            not_found(stub, "describe_model", f'Could not find model "{name}".', {"ModelName": name})
        else:
            stub.add_response("describe_model", {"ModelName": name, "CreationTime": CREATED,
                                                 "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{name}",
                                                 **answer}, {"ModelName": name})

def expect_serving_the_new_model(stub) -> None:
    """The production endpoint is InService on CONFIG, which serves this run's new model."""
    stub.add_response("describe_endpoint", described_endpoint("InService", CONFIG), {"EndpointName": ENDPOINT})
    expect_config_models(stub, CONFIG, {"new-model": new_model()})


def expect_neither_endpoint_nor_config(stub) -> None:
    """Production and this run's endpoint config are both gone: nothing serves."""
    not_found(stub, "describe_endpoint", f'Could not find endpoint "{ENDPOINT}".', {"EndpointName": ENDPOINT})
    not_found(stub, "describe_endpoint_config", f'Could not find endpoint configuration "{CONFIG}".',
              {"EndpointConfigName": CONFIG})



def new_model() -> dict:
    # A container without files and a file outside models/ (a run's own file, which expires with the run) are not kept.
    return {"Containers": [{"Image": "sparkml", "ModelDataUrl": NEW_FILES[0]}, {"Image": "xgb", "ModelDataUrl": NEW_FILES[1]},
                           {"Image": "no-files"}, {"Image": "run", "ModelDataUrl": f"s3://{ARTIFACTS}/runs/r/model.tar.gz"}]}


def tag_of(s3, uri: str) -> str | None:
    tags = s3.get_object_tagging(Bucket=ARTIFACTS, Key=uri[len(f"s3://{ARTIFACTS}/"):])["TagSet"]
    return next((t["Value"] for t in tags if t["Key"] == "model-state"), None)


def holder(run_id=RUN["run_id"], models=None) -> dict:
    item = {**KEY, "run_id": {"S": run_id}}
    if models:
        item["production_models"] = {"SS": models}
    return {"Item": item}


@pytest.fixture
def model_objects(s3):
    for uri in (*NEW_FILES, OLD_FILE, OLDER_FILE):
        s3.put_object(Bucket=ARTIFACTS, Key=uri[len(f"s3://{ARTIFACTS}/"):], Body=uri.encode(),
                      Metadata={"source": "s3://runs/x"}, Tagging="model-state=candidate")
    return s3


def test_an_update_keeps_the_deployed_and_the_serving_model_and_supersedes_the_rest(app, model_objects):
    s3 = model_objects
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("describe_endpoint", described_endpoint("Updating", "old-config", pending=CONFIG),
                          {"EndpointName": ENDPOINT})
        expect_config_models(stub, CONFIG, {"new-model": new_model(), "deleted-model": None})
        expect_config_models(stub, "old-config", {"old-model": {"PrimaryContainer": {"Image": "x", "ModelDataUrl": OLD_FILE}}})
        dstub.add_response("get_item", holder(models=[OLD_FILE, OLDER_FILE, GONE_FILE]),
                           {"TableName": TABLE, "Key": KEY, "ConsistentRead": True})
        keep = sorted([*NEW_FILES, OLD_FILE])
        dstub.add_response("update_item", {}, {
            "TableName": TABLE, "Key": KEY, "UpdateExpression": "SET production_models = :keep",
            "ConditionExpression": "run_id = :run",
            "ExpressionAttributeValues": {":run": {"S": RUN["run_id"]}, ":keep": {"SS": keep}}})
        result = app.retain_production_models(s3, sagemaker, dynamodb, TABLE, ENDPOINT, CONFIG, RUN["run_id"], now=NOW)
    # The file already gone is not reported as superseded.
    assert result == {"production": keep, "superseded": [OLDER_FILE]}
    assert [tag_of(s3, uri) for uri in keep] == ["production"] * 3
    assert tag_of(s3, OLDER_FILE) == "superseded"
    head = s3.head_object(Bucket=ARTIFACTS, Key=OLDER_FILE[len(f"s3://{ARTIFACTS}/"):])
    assert head["Metadata"] == {"source": "s3://runs/x", "superseded-at": "2025-01-03T12:00:00Z"}


def test_an_endpoint_serving_this_config_is_read_once(app, model_objects):
    s3 = model_objects
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub):
        expect_serving_the_new_model(stub)
        dstub.add_response("get_item", holder(), {"TableName": TABLE, "Key": KEY, "ConsistentRead": True})
        dstub.add_response("update_item", {}, {
            "TableName": TABLE, "Key": KEY, "UpdateExpression": "SET production_models = :keep",
            "ConditionExpression": "run_id = :run",
            "ExpressionAttributeValues": {":run": {"S": RUN["run_id"]}, ":keep": {"SS": NEW_FILES}}})
        result = app.retain_production_models(s3, sagemaker, dynamodb, TABLE, ENDPOINT, CONFIG, RUN["run_id"], now=NOW)
    assert result == {"production": NEW_FILES, "superseded": []}
    assert tag_of(s3, OLD_FILE) == "candidate"


def test_nothing_to_keep_removes_the_record_and_supersedes_what_was_production(app, model_objects):
    s3 = model_objects
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub):
        expect_neither_endpoint_nor_config(stub)
        dstub.add_response("get_item", holder(models=[OLD_FILE]), {"TableName": TABLE, "Key": KEY, "ConsistentRead": True})
        dstub.add_response("update_item", {}, {
            "TableName": TABLE, "Key": KEY, "UpdateExpression": "REMOVE production_models",
            "ConditionExpression": "run_id = :run", "ExpressionAttributeValues": {":run": {"S": RUN["run_id"]}}})
        result = app.retain_production_models(s3, sagemaker, dynamodb, TABLE, ENDPOINT, CONFIG, RUN["run_id"], now=NOW)
    assert result == {"production": [], "superseded": [OLD_FILE]}
    assert tag_of(s3, OLD_FILE) == "superseded"


def test_a_run_that_no_longer_holds_production_retags_nothing(app, model_objects):
    s3 = model_objects
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub):
        expect_serving_the_new_model(stub)
        dstub.add_response("get_item", holder("car-newer-000000000002", [OLD_FILE]),
                           {"TableName": TABLE, "Key": KEY, "ConsistentRead": True})
        result = app.retain_production_models(s3, sagemaker, dynamodb, TABLE, ENDPOINT, CONFIG, RUN["run_id"], now=NOW)
    assert result == {"production": [], "superseded": []}
    assert [tag_of(s3, uri) for uri in (*NEW_FILES, OLD_FILE)] == ["candidate"] * 3


@pytest.mark.parametrize("lock", [{}, {"Item": {"pk": {"S": f"production#{ENDPOINT}"}}}])
def test_a_lock_gone_or_without_holder_retags_nothing(app, model_objects, lock):
    """The claim item deleted by hand (or left without run_id) means no run holds production: nothing is retagged."""
    s3 = model_objects
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub):
        expect_serving_the_new_model(stub)
        dstub.add_response("get_item", lock, {"TableName": TABLE, "Key": KEY, "ConsistentRead": True})
        result = app.retain_production_models(s3, sagemaker, dynamodb, TABLE, ENDPOINT, CONFIG, RUN["run_id"], now=NOW)
    assert result == {"production": [], "superseded": []}
    assert [tag_of(s3, uri) for uri in (*NEW_FILES, OLD_FILE)] == ["candidate"] * 3


def test_the_supersession_time_is_the_current_time_without_now(app, model_objects):
    s3 = model_objects
    with stubbed_client("dynamodb") as (dynamodb, dstub), stubbed_client("sagemaker") as (sagemaker, stub):
        expect_neither_endpoint_nor_config(stub)
        dstub.add_response("get_item", holder(models=[OLD_FILE]))
        dstub.add_response("update_item", {})
        before = datetime.now(timezone.utc).replace(microsecond=0)
        app.retain_production_models(s3, sagemaker, dynamodb, TABLE, ENDPOINT, CONFIG, RUN["run_id"])
        after = datetime.now(timezone.utc)
    stamp = s3.head_object(Bucket=ARTIFACTS, Key=OLD_FILE[len(f"s3://{ARTIFACTS}/"):])["Metadata"]["superseded-at"]
    assert before <= datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= after


@pytest.mark.parametrize("bake", [0, 600, 3600])
def test_the_execution_timeout_covers_the_bake_within_sagemakers_range(app, bake):
    """Issue 20: MaximumExecutionTimeoutInSeconds was unset (SageMaker's default) while the bake is
    TerminationWaitInSeconds, the only wait the all-at-once page configures
    (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green-all-at-once.html).
    The ranges and the rule "should be larger than the total waiting time" are botocore's."""
    import botocore.session

    shapes = botocore.session.get_session().get_service_model("sagemaker").shape_for("BlueGreenUpdatePolicy").members
    timeout_shape, termination_shape = shapes["MaximumExecutionTimeoutInSeconds"], shapes["TerminationWaitInSeconds"]
    assert "larger than the total waiting time" in timeout_shape.documentation
    policy = app.deployment_config(bake, ALARMS)["BlueGreenUpdatePolicy"]
    assert policy["TerminationWaitInSeconds"] == bake <= termination_shape.metadata["max"]
    timeout = policy["MaximumExecutionTimeoutInSeconds"]
    assert timeout_shape.metadata["min"] <= timeout <= timeout_shape.metadata["max"]
    assert timeout > policy["TerminationWaitInSeconds"] + policy["TrafficRoutingConfiguration"]["WaitIntervalInSeconds"]
