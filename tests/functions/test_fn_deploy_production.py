"""deploy_production: create or blue/green update, never an older upload over
a newer one, and a busy endpoint is a retryable named error."""
from __future__ import annotations

from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber

from lambda_fixtures import ACCOUNT, REGION, ROLE_ARN, TABLE, make_run

ENDPOINT = "car-evaluation-prod"
ALARMS = ["car-prod-5xx", "car-prod-latency"]
OLDER = make_run("car-older-000000000001", started_at="2025-01-02T03:04:05.100Z")
NEWER = make_run("car-newer-000000000002", started_at="2025-01-02T03:04:05.200Z")


@pytest.fixture
def deploy(load_function, monkeypatch):
    monkeypatch.setenv("STATE_TABLE", TABLE)
    monkeypatch.setenv("BAKE_SECONDS", "900")
    monkeypatch.setenv("ROLLBACK_ALARM_NAMES", ",".join(ALARMS))
    # ENDPOINT is the default dataset's endpoint: the template's alarms guard it.
    monkeypatch.setenv("PRODUCTION_ENDPOINT_NAME", ENDPOINT)
    monkeypatch.setenv("ALARM_NAME_PREFIX", "stack-production-")
    monkeypatch.setenv("MODEL_LATENCY_ALARM_MICROSECONDS", "250000")
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("CAPTURE_DESTINATION", "s3://artifacts-bucket/capture")
    return load_function("deploy_production")


def event_for(run: dict) -> dict:
    return {
        "run": run,
        "names": {"production_endpoint": ENDPOINT, "endpoint_config": f"{run['run_id']}-config"},
        "endpoint_config_name": f"{run['run_id']}-config",
        "model_package_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{ENDPOINT}/1",
    }


def endpoint_description(status: str, config: str, pending: str | None = None) -> dict:
    now = datetime(2025, 1, 2, tzinfo=timezone.utc)
    description = {
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
    }
    if pending:
        description["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    return description


def lock_item(dynamodb) -> dict:
    return dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"production#{ENDPOINT}"}}).get("Item")


def moto_endpoint_config(run: dict) -> None:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    model = f"{run['run_id']}-model"
    sagemaker.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN, Containers=[{"Image": "xgboost"}])
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{run['run_id']}-config",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1,
                             "InstanceType": "ml.m5.large"}],
    )


def test_first_deployment_creates_the_endpoint(deploy, state_table, context):
    moto_endpoint_config(NEWER)
    result = deploy.deploy_config(state_table, boto3.client("sagemaker", region_name=REGION), event_for(NEWER), TABLE,
                                  900, ALARMS)

    assert {k: result[k] for k in ("endpoint_name", "action")} == {"endpoint_name": ENDPOINT, "action": "created"}
    described = boto3.client("sagemaker", region_name=REGION).describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointConfigName"] == f"{NEWER['run_id']}-config"
    assert lock_item(state_table)["run_id"]["S"] == NEWER["run_id"]


def test_an_existing_endpoint_gets_a_blue_green_update_with_rollback_alarms(deploy, state_table):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", endpoint_description("InService", "car-previous-config"), {"EndpointName": ENDPOINT})
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"},
            {
                "EndpointName": ENDPOINT,
                "EndpointConfigName": f"{NEWER['run_id']}-config",
                "DeploymentConfig": {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                        "TerminationWaitInSeconds": 900,
                        "MaximumExecutionTimeoutInSeconds": 4500,
                    },
                    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in ALARMS]},
                },
            },
        )
        now = datetime(2025, 1, 2, 12, 0, tzinfo=timezone.utc)
        result = deploy.deploy_config(state_table, sagemaker, event_for(NEWER), TABLE, 900, ALARMS,
                                          wait_seconds=3600, now=now)
        stub.assert_no_pending_responses()
    # The state machine waits for the new fleet and the baking period, then stops waiting.
    assert result == {"endpoint_name": ENDPOINT, "action": "updated", "wait_until": "2025-01-02T13:15:00Z"}


def test_without_alarms_there_is_no_rollback_configuration(deploy):
    config = deploy.deployment_config(600, [])
    assert "AutoRollbackConfiguration" not in config
    assert config["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 600


def test_an_older_upload_never_replaces_a_newer_one(deploy, state_table):
    """The newer run deployed first (e.g. its approver was quicker): the older
    run fails with Superseded and SageMaker is never called for it."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_endpoint", "ValidationException", f"Could not find endpoint \"{ENDPOINT}\".")
        stub.add_response("create_endpoint", {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"})
        deploy.deploy_config(state_table, sagemaker, event_for(NEWER), TABLE, 900, ALARMS)

        with pytest.raises(Exception) as raised:
            deploy.deploy_config(state_table, sagemaker, event_for(OLDER), TABLE, 900, ALARMS)
        stub.assert_no_pending_responses()
    assert type(raised.value).__name__ == "Superseded"
    assert OLDER["run_id"] in str(raised.value) and NEWER["run_id"] in str(raised.value)
    assert lock_item(state_table)["run_id"]["S"] == NEWER["run_id"]


def test_a_newer_upload_replaces_an_older_one(deploy, state_table):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_endpoint", "ValidationException", f"Could not find endpoint \"{ENDPOINT}\".")
        stub.add_response("create_endpoint", {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"})
        stub.add_response("describe_endpoint", endpoint_description("InService", f"{OLDER['run_id']}-config"))
        stub.add_response("update_endpoint", {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"})
        assert deploy.deploy_config(state_table, sagemaker, event_for(OLDER), TABLE, 900, ALARMS)["action"] == "created"
        assert deploy.deploy_config(state_table, sagemaker, event_for(NEWER), TABLE, 900, ALARMS)["action"] == "updated"
        stub.assert_no_pending_responses()
    assert lock_item(state_table)["run_id"]["S"] == NEWER["run_id"]


@pytest.mark.parametrize(
    "description, action",
    [
        (endpoint_description("Updating", "car-previous-config", pending=f"{NEWER['run_id']}-config"), "updated"),
        (endpoint_description("InService", f"{NEWER['run_id']}-config"), "updated"),
        (endpoint_description("Creating", f"{NEWER['run_id']}-config"), "created"),
    ],
)
def test_a_retry_of_the_same_run_changes_nothing(deploy, state_table, description, action):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    deploy.claim_production(state_table, TABLE, ENDPOINT, NEWER)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", description)
        assert deploy.deploy_config(state_table, sagemaker, event_for(NEWER), TABLE, 900, ALARMS)["action"] == action
        stub.assert_no_pending_responses()  # no create/update was queued, none was made


@pytest.mark.parametrize("status", ["Updating", "Creating", "SystemUpdating", "RollingBack", "Deleting"])
def test_a_busy_endpoint_is_a_retryable_named_error(deploy, state_table, status):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", endpoint_description(status, "car-previous-config", pending="someone-else-config"))
        with pytest.raises(Exception, match=status) as raised:
            deploy.deploy_config(state_table, sagemaker, event_for(NEWER), TABLE, 900, ALARMS)
    assert type(raised.value).__name__ == "ProductionEndpointBusy"


def test_an_update_refused_as_in_progress_is_busy(deploy, state_table):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", endpoint_description("InService", "car-previous-config"))
        stub.add_client_error("update_endpoint", "ValidationException", f"Cannot update in-progress endpoint \"{ENDPOINT}\".")
        with pytest.raises(Exception) as raised:
            deploy.deploy_config(state_table, sagemaker, event_for(NEWER), TABLE, 900, ALARMS)
    assert type(raised.value).__name__ == "ProductionEndpointBusy"


@pytest.mark.parametrize("status", ["Failed", "OutOfService", "UpdateRollbackFailed"])
def test_a_broken_endpoint_needs_a_person(deploy, state_table, status):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", endpoint_description(status, "car-previous-config"))
        with pytest.raises(Exception) as raised:
            deploy.deploy_config(state_table, sagemaker, event_for(NEWER), TABLE, 900, ALARMS)
        stub.assert_no_pending_responses()
    assert type(raised.value).__name__ == "ProductionEndpointUnusable"


def test_other_sagemaker_errors_propagate(deploy, state_table):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", endpoint_description("InService", "car-previous-config"))
        stub.add_client_error("update_endpoint", "ValidationException", "Could not find endpoint config \"x\".")
        with pytest.raises(Exception, match="endpoint config"):
            deploy.deploy_config(state_table, sagemaker, event_for(NEWER), TABLE, 900, ALARMS)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e["run"].pop("started_at"),
        lambda e: e["run"].update(started_at="yesterday"),
        lambda e: e.pop("model_package_arn"),
        lambda e: e["names"].update(production_endpoint="prod_endpoint"),
    ],
)
def test_bad_events_touch_nothing(deploy, state_table, context, mutate):
    event = event_for(dict(NEWER))
    event["run"] = dict(NEWER)
    mutate(event)
    with pytest.raises(Exception) as raised:
        deploy.lambda_handler(event, context)
    assert type(raised.value).__name__ == "InvalidEvent"
    assert lock_item(state_table) is None


def test_too_many_alarms_is_a_configuration_error(deploy, state_table, context, monkeypatch):
    monkeypatch.setenv("ROLLBACK_ALARM_NAMES", ",".join(f"alarm-{i}" for i in range(11)))
    with pytest.raises(Exception, match="at most 10"):
        deploy.lambda_handler(event_for(NEWER), context)


def test_another_datasets_endpoint_is_rolled_back_by_alarms_on_its_own_metrics(deploy, state_table, context):
    """A penguins update must not be rolled back by car's errors, nor go unwatched: the
    handler puts two alarms on penguins-prod's metrics and the update names them."""
    penguins = "penguins-prod"
    event = {**event_for(NEWER), "names": {"production_endpoint": penguins}}
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    alarms = ["stack-production-penguins-prod-5xx", "stack-production-penguins-prod-latency"]
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", {**endpoint_description("InService", "car-previous-config"),
                                                "EndpointName": penguins})
        stub.add_response("update_endpoint", {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{penguins}"}, {
            "EndpointName": penguins,
            "EndpointConfigName": f"{NEWER['run_id']}-config",
            "DeploymentConfig": deploy.deployment_config(900, alarms),
        })
        deploy.deploy_config(
            state_table, sagemaker, event, TABLE, 900,
            lambda endpoint: deploy.rollback_alarms(cloudwatch, endpoint, ENDPOINT, ALARMS, "stack-production-", 250000))
        stub.assert_no_pending_responses()
    described = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix="stack-production-")["MetricAlarms"]}
    assert sorted(described) == sorted(alarms)
    for alarm in described.values():
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"EndpointName": penguins, "VariantName": "AllTraffic"}
        assert alarm["Namespace"] == "AWS/SageMaker"
    errors, latency = described[alarms[0]], described[alarms[1]]
    assert (errors["MetricName"], errors["Statistic"], errors["Threshold"], errors["ComparisonOperator"]) == (
        "Invocation5XXErrors", "Sum", 1.0, "GreaterThanOrEqualToThreshold")
    assert (latency["MetricName"], latency["Statistic"], latency["Threshold"], latency["EvaluationPeriods"]) == (
        "ModelLatency", "Average", 250000.0, 2)
    # Its lock is its own: car's lock item is untouched.
    assert state_table.get_item(TableName=TABLE, Key={"pk": {"S": f"production#{penguins}"}})["Item"]["run_id"]["S"] == NEWER["run_id"]
    assert lock_item(state_table) is None


@pytest.fixture
def template_resources():
    from localmode.stack import load_template

    return load_template()["Resources"]


def test_the_dataset_alarms_match_the_templates_alarms(deploy, template_resources):
    """The run-time pair is the template's pair on another endpoint (same metric, statistic,
    period, threshold and comparison), so every dataset's update is guarded alike."""
    created = {a["MetricName"]: a for a in deploy.endpoint_alarms("penguins-prod", "p-", 500000)}
    for logical_id in ("ProductionErrorsAlarm", "ProductionLatencyAlarm"):
        props = template_resources[logical_id]["Properties"]
        alarm = created[props["MetricName"]]
        for key in ("Namespace", "Statistic", "Period", "EvaluationPeriods", "ComparisonOperator", "TreatMissingData"):
            assert alarm[key] == props[key], (logical_id, key)
        assert alarm.get("DatapointsToAlarm") == props.get("DatapointsToAlarm")
        assert [d["Name"] for d in alarm["Dimensions"]] == [d["Name"] for d in props["Dimensions"]]
    assert created["ModelLatency"]["Threshold"] == 500000.0 and created["Invocation5XXErrors"]["Threshold"] == 1.0


def test_the_default_datasets_endpoint_keeps_the_templates_alarms(deploy):
    class NoCloudWatch:
        def put_metric_alarm(self, **_):
            raise AssertionError("the template's alarms guard the default endpoint; nothing is created")

    assert deploy.rollback_alarms(NoCloudWatch(), ENDPOINT, ENDPOINT, ALARMS, "p-", 1) == ALARMS
