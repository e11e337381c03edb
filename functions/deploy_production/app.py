"""Creates or updates the production endpoint with an approved model package
version (pipeline_common.registry): the run's own after its approval, or an
earlier one for a rollback.

Only an Approved version of the endpoint's own package group is deployed,
and only while its model files still exist (a rollback to a version whose
files expired fails here, before production is touched). Production runs
exactly what the version specifies: its model is created from the version's
containers (or, if a model of that name exists, it must be the same), and
its endpoint config adds data capture (production only; the QA endpoint
captures nothing) to `capture/` of the artifacts bucket, encrypted with the
stack key, sampling CAPTURE_SAMPLING_PERCENTAGE percent of the requests.

Production updates are ordered and mutually exclusive: a conditional write on
one DynamoDB item per production endpoint lets a run deploy only if no run
that started later has claimed the endpoint (else `Superseded`), and
SageMaker refuses an update while another is in progress
(`ProductionEndpointBusy`, which the state machine retries). Updates use
blue/green deployment guardrails with a baking period and alarm rollback.

Then the model files are retagged (pipeline_common.models): the deployed
model's and the serving model's become `production` (never expire), and a
model that was production before but is neither any more becomes
`superseded` (expires SupersededModelRetentionDays later). The serving model
stays production through the baking period and after a rollback; a model
replaced by a successful update stays production until the next deployment
starts, the rollback window.

Each dataset has its own production endpoint (pipeline_common.datasets), and
each endpoint its own rollback alarms: the default dataset's endpoint uses
the template's two alarms (ROLLBACK_ALARM_NAMES); any other endpoint gets
the same two alarms on its own metrics, created here before its first
deployment (PutMetricAlarm, which replaces an alarm of the same name) and
named `<ALARM_NAME_PREFIX><endpoint>-5xx` / `-latency`. An alarm watching
another endpoint would roll back an update for that endpoint's errors and
miss this one's.
"""
from __future__ import annotations

import json
from datetime import timedelta

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from pipeline_common.approvals import production_key
from pipeline_common.aws_errors import CLIENT_CONFIG, named_aws_errors
from pipeline_common.config import env_int, env_list, env_str
from pipeline_common.models import is_model_file, mark_production, mark_superseded
from pipeline_common.errors import ConfigurationError, InvalidEvent
from pipeline_common.names import digest, is_sagemaker_name, sagemaker_base
from pipeline_common.registry import comparable_containers, deployable_package
from pipeline_common.sagemaker import describe_or_none, ensure_created
from pipeline_common.timeutil import epoch_micros, iso, parse_iso, utc_now

logger = Logger()
tracer = Tracer()

IN_PROGRESS = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}
_MAX_ALARMS = 10  # AutoRollbackConfiguration accepts 1..10 alarms


class Superseded(Exception):
    """A run that started later already claimed this production endpoint."""


class ProductionEndpointBusy(Exception):
    """The production endpoint is changing; retry later."""


class ProductionEndpointUnusable(Exception):
    """The production endpoint is in a state no update can fix (needs a person)."""


class ModelConflict(Exception):
    """A model of the production name exists with another definition."""


VARIANT_NAME = "AllTraffic"


def production_names(group: str, version: int, config: dict) -> tuple[str, str]:
    """The production model's name (one per version) and its endpoint config's (one per version and
    configuration: a changed instance type or capture setting gets a new config, never a changed one)."""
    base = sagemaker_base(f"{group}-v{version}")
    return f"{base}-model", f"{base}-{digest(json.dumps(config, sort_keys=True))}-config"


def capture_config(destination: str, kms_key: str, percentage: int) -> dict | None:
    """Data capture of the production endpoint, in SageMaker's capture file format
    (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html)."""
    if percentage <= 0:
        return None
    config = {
        "EnableCapture": True,
        "InitialSamplingPercentage": percentage,
        "DestinationS3Uri": destination,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        # Readable records: CSV and JSON bodies are stored as text, anything else base64.
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]},
    }
    if kms_key:
        config["KmsKeyId"] = kms_key
    return config


# How SageMaker may refuse DataCaptureConfig in an account that cannot use it: AWS's data-capture page says
# Model Monitor "is no longer open to new customers", and which error a new account gets is not documented.
CAPTURE_REFUSALS = ("ValidationException", "AccessDeniedException")
CAPTURE_ON = "on: requests and responses are captured"


def ensure_production_model(sagemaker, package: dict, role_arn: str, instance_type: str,
                            instance_count: int, capture: dict | None) -> tuple[str, str, str]:
    """The model and endpoint config that run exactly this version, and what became of data capture.
    When SageMaker refuses the config with capture, the same config without capture is created instead:
    production is served, and the run says it is not captured. Returns (model, config, capture note)."""
    try:
        model_name, config_name = _ensure_production_model(sagemaker, package, role_arn, instance_type,
                                                           instance_count, capture)
        return model_name, config_name, CAPTURE_ON if capture else "off (CaptureSamplingPercentage is 0)"
    except ClientError as error:
        if not capture or error.response.get("Error", {}).get("Code") not in CAPTURE_REFUSALS:
            raise
        refusal = f"{error.response['Error']['Code']}: {error.response['Error'].get('Message', '')}"
    model_name, config_name = _ensure_production_model(sagemaker, package, role_arn, instance_type, instance_count,
                                                       None)
    logger.warning("SageMaker refused data capture: deployed without it", extra={"refusal": refusal})
    return model_name, config_name, f"off: SageMaker refused the capture config ({refusal[:300]})"


def _ensure_production_model(sagemaker, package: dict, role_arn: str, instance_type: str,
                             instance_count: int, capture: dict | None) -> tuple[str, str]:
    containers = [{k: v for k, v in c.items() if k in ("Image", "ModelDataUrl", "Environment") and v}
                  for c in package["InferenceSpecification"]["Containers"]]
    variants = [{"VariantName": VARIANT_NAME, "InstanceType": instance_type, "InitialInstanceCount": instance_count,
                 "InitialVariantWeight": 1.0}]
    model_name, config_name = production_names(
        package["ModelPackageGroupName"], package["ModelPackageVersion"], {"variants": variants, "capture": capture})
    existing, created = ensure_created(
        sagemaker.describe_model, sagemaker.create_model, {"ModelName": model_name},
        {"ModelName": model_name, "ExecutionRoleArn": role_arn, "Containers": containers,
         "InferenceExecutionConfig": {"Mode": "Serial"}},
    )
    if not created and (comparable_containers(existing.get("Containers") or []) != comparable_containers(containers)
                        or existing.get("ExecutionRoleArn") != role_arn):
        raise ModelConflict(f"model {model_name} exists but is not what {package['ModelPackageArn']} specifies")
    request = {"EndpointConfigName": config_name, "ProductionVariants": [{**v, "ModelName": model_name} for v in variants]}
    if capture:
        request["DataCaptureConfig"] = capture
    existing, created = ensure_created(sagemaker.describe_endpoint_config, sagemaker.create_endpoint_config,
                                       {"EndpointConfigName": config_name}, request)
    if not created and [v.get("ModelName") for v in existing.get("ProductionVariants", [])] != [model_name]:
        raise ModelConflict(f"endpoint config {config_name} exists but does not serve model {model_name}")
    return model_name, config_name


def claim_production(dynamodb, table: str, endpoint_name: str, run: dict, now=None) -> None:
    """Record this run as the newest allowed to deploy `endpoint_name`, unless a
    later-started run already is. Repeating it for the same run is harmless."""
    started = parse_iso(run["started_at"])
    try:
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": production_key(endpoint_name)}},
            UpdateExpression="SET run_id = :run, started_at = :started, started_at_us = :us, claimed_at = :now",
            ConditionExpression="attribute_not_exists(pk) OR run_id = :run OR started_at_us < :us",
            ExpressionAttributeValues={
                ":run": {"S": run["run_id"]},
                ":started": {"S": run["started_at"]},
                ":us": {"N": str(epoch_micros(started))},
                ":now": {"S": iso(now or utc_now())},
            },
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        holder = dynamodb.get_item(
            TableName=table, Key={"pk": {"S": production_key(endpoint_name)}}, ConsistentRead=True
        ).get("Item", {})
        raise Superseded(
            f"run {run['run_id']} (started {run['started_at']}) will not replace production endpoint {endpoint_name}: "
            f"run {holder.get('run_id', {}).get('S', '?')} (started {holder.get('started_at', {}).get('S', '?')}) "
            "is newer and already claimed it"
        ) from None


# How long the green fleet may take to provision before the bake: SageMaker stops (and rolls back) a
# deployment that runs longer than MaximumExecutionTimeoutInSeconds in all.
PROVISIONING_ALLOWANCE_SECONDS = 3600
# botocore's range for MaximumExecutionTimeoutInSeconds.
EXECUTION_TIMEOUT_RANGE = (600, 28800)


def deployment_config(bake_seconds: int, alarm_names: list[str]) -> dict:
    """All at once: "Once the green fleet starts receiving traffic, the baking period begins ... If no alarms
    trip during the baking period, SageMaker AI terminates the old fleet" (deployment-guardrails-blue-green-
    all-at-once.html), and the only wait that page sets is TerminationWaitInSeconds: the bake. WaitIntervalInSeconds
    is between traffic-shifting steps (ALL_AT_ONCE has one) but botocore requires it. The execution timeout
    "should be larger than the total waiting time" (botocore), so it covers provisioning and the bake."""
    low, high = EXECUTION_TIMEOUT_RANGE
    config = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            "TerminationWaitInSeconds": bake_seconds,
            "MaximumExecutionTimeoutInSeconds": min(high, max(low, bake_seconds + PROVISIONING_ALLOWANCE_SECONDS)),
        }
    }
    if alarm_names:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarm_names]}
    return config


def _pending_config(description: dict) -> str | None:
    return (description.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")


def deploy(sagemaker, endpoint_name: str, config_name: str, bake_seconds: int, alarm_names: list[str]) -> str:
    description = describe_or_none(sagemaker.describe_endpoint, EndpointName=endpoint_name)
    if description is None:
        sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)
        return "created"
    status = description.get("EndpointStatus")
    if status == "Creating" and description.get("EndpointConfigName") == config_name:
        return "created"  # our own earlier attempt
    if status in ("Updating", "SystemUpdating") and _pending_config(description) == config_name:
        return "updated"  # our own earlier attempt
    if status == "InService" and description.get("EndpointConfigName") == config_name:
        return "updated"  # already serving this run's config (a retry after success)
    if status in IN_PROGRESS:
        raise ProductionEndpointBusy(f"production endpoint {endpoint_name} is {status}; try again when it is InService")
    if status != "InService":
        raise ProductionEndpointUnusable(
            f"production endpoint {endpoint_name} is {status}; it cannot be updated until someone repairs or deletes it"
        )
    try:
        sagemaker.update_endpoint(
            EndpointName=endpoint_name,
            EndpointConfigName=config_name,
            DeploymentConfig=deployment_config(bake_seconds, alarm_names),
        )
    except ClientError as error:
        message = str(error).lower()
        if error.response.get("Error", {}).get("Code") == "ValidationException" and ("in-progress" in message or "in progress" in message):
            raise ProductionEndpointBusy(f"production endpoint {endpoint_name} started changing; try again later") from None
        raise
    return "updated"


def endpoint_alarms(endpoint_name: str, prefix: str, latency_microseconds: int) -> list[dict]:
    """The PutMetricAlarm requests for an endpoint's rollback alarms: the
    template's ProductionErrorsAlarm and ProductionLatencyAlarm, on this endpoint."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": "AllTraffic"}]
    common = {"Namespace": "AWS/SageMaker", "Dimensions": dimensions, "Period": 60, "TreatMissingData": "notBreaching"}
    return [
        {**common, "AlarmName": f"{prefix}{endpoint_name}-5xx", "MetricName": "Invocation5XXErrors",
         "AlarmDescription": f"The production endpoint {endpoint_name} answered with 5xx errors.",
         "Statistic": "Sum", "EvaluationPeriods": 1, "Threshold": 1.0,
         "ComparisonOperator": "GreaterThanOrEqualToThreshold"},
        {**common, "AlarmName": f"{prefix}{endpoint_name}-latency", "MetricName": "ModelLatency",
         "AlarmDescription": f"The production endpoint {endpoint_name} is slower than {latency_microseconds} "
                             "microseconds on average.",
         "Statistic": "Average", "EvaluationPeriods": 2, "DatapointsToAlarm": 2,
         "Threshold": float(latency_microseconds), "ComparisonOperator": "GreaterThanThreshold"},
    ]


def rollback_alarms(cloudwatch, endpoint_name: str, default_endpoint: str, default_alarms: list[str], prefix: str,
                    latency_microseconds: int) -> list[str]:
    """The alarm names that roll an update of `endpoint_name` back (creating them for a dataset endpoint)."""
    if endpoint_name == default_endpoint:
        return default_alarms
    names = []
    for request in endpoint_alarms(endpoint_name, prefix, latency_microseconds):
        cloudwatch.put_metric_alarm(**request)
        names.append(request["AlarmName"])
    return names


def deploy_config(dynamodb, sagemaker, event: dict, table: str, bake_seconds: int, alarm_names,
                  wait_seconds: int = 3600, now=None) -> dict:
    """Claim production for `event["run"]` and deploy `event["endpoint_config_name"]` to
    `event["names"]["production_endpoint"]` (create, or blue/green update).
    `alarm_names`: the rollback alarms, or a function from the endpoint name to them."""
    try:
        run = event["run"]
        endpoint_name = event["names"]["production_endpoint"]
        config_name = event["endpoint_config_name"]
        if not isinstance(run["run_id"], str) or not run["run_id"]:
            raise KeyError("run.run_id")
        parse_iso(run["started_at"])
    except (TypeError, KeyError, ValueError) as error:
        raise InvalidEvent(
            f"the event needs run.run_id, run.started_at (ISO-8601), names.production_endpoint and endpoint_config_name ({error})"
        ) from None
    if not is_sagemaker_name(endpoint_name) or not is_sagemaker_name(config_name):
        raise InvalidEvent("names.production_endpoint and endpoint_config_name must be valid SageMaker names")
    claim_production(dynamodb, table, endpoint_name, run)
    alarms = alarm_names(endpoint_name) if callable(alarm_names) else alarm_names
    action = deploy(sagemaker, endpoint_name, config_name, bake_seconds, alarms)
    logger.info("production deployment started", extra={"endpoint_name": endpoint_name, "action": action, "run_id": run["run_id"]})
    # How long the state machine waits for InService: an update also bakes before it completes.
    limit = wait_seconds + (bake_seconds if action == "updated" else 0)
    return {"endpoint_name": endpoint_name, "action": action, "wait_until": iso((now or utc_now()) + timedelta(seconds=limit))}


def deploy_production(dynamodb, sagemaker, s3, event: dict, table: str, bake_seconds: int, alarm_names,
                      role_arn: str, instance_type: str = "ml.m5.large", instance_count: int = 1,
                      capture: dict | None = None, wait_seconds: int = 3600, now=None) -> dict:
    """Deploy the Approved model package version `event["model_package_arn"]`: checked, then built, then deployed."""
    try:
        run = event["run"]
        endpoint_name = event["names"]["production_endpoint"]
        package_arn = event["model_package_arn"]
        if not isinstance(run["run_id"], str) or not run["run_id"] or not isinstance(package_arn, str):
            raise KeyError("run.run_id / model_package_arn")
        parse_iso(run["started_at"])
    except (TypeError, KeyError, ValueError) as error:
        raise InvalidEvent(
            "the event needs run.run_id, run.started_at (ISO-8601), names.production_endpoint and "
            f"model_package_arn ({error})"
        ) from None
    if not is_sagemaker_name(endpoint_name):
        raise InvalidEvent("names.production_endpoint must be a valid SageMaker name")
    package = deployable_package(sagemaker, s3, package_arn, endpoint_name)
    model_name, config_name, data_capture = ensure_production_model(sagemaker, package, role_arn, instance_type,
                                                                    instance_count, capture)
    result = deploy_config(dynamodb, sagemaker, {"run": run, "names": {"production_endpoint": endpoint_name},
                                                 "endpoint_config_name": config_name},
                           table, bake_seconds, alarm_names, wait_seconds, now)
    logger.info("deploying model package version", extra={"model_package_arn": package_arn, "endpoint_config_name": config_name})
    return {**result, "endpoint_config_name": config_name, "model_name": model_name, "model_package_arn": package_arn,
            "model_package_version": package.get("ModelPackageVersion"), "data_capture": data_capture}


def model_files(sagemaker, config_name: str) -> set[str]:
    """The S3 model files the endpoint config's models load."""
    config = describe_or_none(sagemaker.describe_endpoint_config, EndpointConfigName=config_name)
    files = set()
    for variant in (config or {}).get("ProductionVariants", []):
        model = describe_or_none(sagemaker.describe_model, ModelName=variant["ModelName"]) or {}
        containers = model.get("Containers") or ([model["PrimaryContainer"]] if model.get("PrimaryContainer") else [])
        files |= {c["ModelDataUrl"] for c in containers if c.get("ModelDataUrl")}
    return {uri for uri in files if is_model_file(uri)}


def retain_production_models(s3, sagemaker, dynamodb, table: str, endpoint_name: str, config_name: str,
                             run_id: str, now=None) -> dict:
    """Tag the deployed and the serving model files production and supersede the
    production files neither uses. Run by the run that holds the production claim."""
    description = describe_or_none(sagemaker.describe_endpoint, EndpointName=endpoint_name) or {}
    keep = model_files(sagemaker, config_name)
    serving = description.get("EndpointConfigName")
    if serving and serving != config_name:
        keep |= model_files(sagemaker, serving)
    key = {"pk": {"S": production_key(endpoint_name)}}
    item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item", {})
    if item.get("run_id", {}).get("S") != run_id:
        logger.info("a newer run holds production; it retags the models", extra={"run_id": run_id})
        return {"production": [], "superseded": []}
    previous = set(item.get("production_models", {}).get("SS", []))
    for uri in sorted(keep):
        mark_production(s3, uri)
    when = iso(now or utc_now())
    superseded = [uri for uri in sorted(previous - keep) if mark_superseded(s3, uri, when)]
    # Recorded last: a retry after a partial pass supersedes the same files again, harmlessly.
    values = {":run": {"S": run_id}}
    if keep:
        values[":keep"] = {"SS": sorted(keep)}
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET production_models = :keep" if keep else "REMOVE production_models",
        ConditionExpression="run_id = :run",
        ExpressionAttributeValues=values,
    )
    logger.info("model files retagged", extra={"production": sorted(keep), "superseded": superseded})
    return {"production": sorted(keep), "superseded": superseded}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    alarms = env_list("ROLLBACK_ALARM_NAMES")
    if len(alarms) > _MAX_ALARMS:
        raise ConfigurationError(f"ROLLBACK_ALARM_NAMES lists {len(alarms)} alarms; SageMaker accepts at most {_MAX_ALARMS}")
    dynamodb = boto3.client("dynamodb", config=CLIENT_CONFIG)
    sagemaker = boto3.client("sagemaker", config=CLIENT_CONFIG)
    cloudwatch = boto3.client("cloudwatch", config=CLIENT_CONFIG)
    s3 = boto3.client("s3", config=CLIENT_CONFIG)
    table = env_str("STATE_TABLE")
    default_endpoint = env_str("PRODUCTION_ENDPOINT_NAME")
    prefix = env_str("ALARM_NAME_PREFIX")
    latency = env_int("MODEL_LATENCY_ALARM_MICROSECONDS", 500000, minimum=1)
    result = deploy_production(
        dynamodb,
        sagemaker,
        s3,
        event,
        table=table,
        bake_seconds=env_int("BAKE_SECONDS", 600, minimum=0, maximum=3600),
        alarm_names=lambda endpoint: rollback_alarms(cloudwatch, endpoint, default_endpoint, alarms, prefix, latency),
        role_arn=env_str("SAGEMAKER_ROLE_ARN"),
        instance_type=env_str("ENDPOINT_INSTANCE_TYPE", "ml.m5.large"),
        instance_count=env_int("ENDPOINT_INSTANCE_COUNT", 1, minimum=1),
        capture=capture_config(env_str("CAPTURE_DESTINATION"), env_str("CAPTURE_KMS_KEY_ID", ""),
                               env_int("CAPTURE_SAMPLING_PERCENTAGE", 100, minimum=0, maximum=100)),
        wait_seconds=env_int("ENDPOINT_WAIT_SECONDS", 3600, minimum=60),
    )
    retain_production_models(s3, sagemaker, dynamodb, table, result["endpoint_name"], result["endpoint_config_name"],
                             event["run"]["run_id"])
    return result
