"""One poll of something the pipeline waits for: the training job, the QA
endpoint, or the production endpoint after deploy_production.

Event: `{"kind": "training_job" | "qa_endpoint" | "production", "resource":
{...}, "run": {...}, "endpoint_config_name": ...}` where `resource` is what
recover_training (the training job a lost answer left), create_qa_endpoint
or deploy_production returned (a name and `wait_until`). Returns `resource`
plus `status` and `ready` (and, for the training job, `model_artifacts`,
null until it completed): the state machine loops while `ready` is false.
Every outcome that ends the wait other than success is an exception (its
class name is the error the state machine records):

- `WaitTimeExpired`: still not done at `wait_until`, whatever the status
  (an endpoint can sit in OutOfService or Updating indefinitely);
- `TrainingJobFailed`, `TrainingJobStopped`, `QAEndpointFailed`,
  `ProductionEndpointFailed`: SageMaker's FailureReason in the message;
- `ResourceMissing`: it was deleted while the run waited for it;
- production InService on another endpoint config than this run's:
  `Superseded` when a run that started later holds the production lock
  (`production#<endpoint>` in the state table: it deployed after this run),
  else `ProductionRolledBack` (this run still holds the lock, so the only
  thing that can have moved the endpoint off its config is the blue/green
  deployment's auto-rollback).
"""
from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Tracer

from pipeline_common.approvals import production_key
from pipeline_common.aws_errors import CLIENT_CONFIG, named_aws_errors
from pipeline_common.config import env_str
from pipeline_common.errors import InvalidEvent
from pipeline_common.names import is_sagemaker_name
from pipeline_common.sagemaker import describe_or_none
from pipeline_common.timeutil import parse_iso, utc_now

logger = Logger()
tracer = Tracer()

KINDS = ("training_job", "qa_endpoint", "production")


class WaitTimeExpired(Exception):
    """What the run waits for did not finish in the allowed time."""


class TrainingJobFailed(Exception):
    """The training job ended Failed."""


class TrainingJobStopped(Exception):
    """The training job was stopped (by a person, or by its stopping condition)."""


class QAEndpointFailed(Exception):
    """SageMaker could not create the QA endpoint."""


class ProductionEndpointFailed(Exception):
    """The production endpoint ended Failed or UpdateRollbackFailed."""


class ProductionRolledBack(Exception):
    """The production update was rolled back by its deployment guardrails."""


class Superseded(Exception):
    """A run that started later deployed to production after this run."""


class ResourceMissing(Exception):
    """What the run waits for no longer exists."""


def _expired(resource: dict, now) -> bool:
    return now >= parse_iso(resource["wait_until"])


def _reason(description: dict) -> str:
    return description.get("FailureReason") or "SageMaker gave no FailureReason"


def check_training_job(sagemaker, resource: dict, now) -> dict:
    name = resource["training_job_name"]
    description = describe_or_none(sagemaker.describe_training_job, TrainingJobName=name)
    if description is None:
        raise ResourceMissing(f"training job {name} no longer exists")
    status = description.get("TrainingJobStatus")
    if status == "Completed":
        artifacts = (description.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        return {**resource, "status": status, "ready": True, "model_artifacts": artifacts}
    if status == "Failed":
        raise TrainingJobFailed(f"training job {name} failed: {_reason(description)}")
    if status == "Stopped":
        raise TrainingJobStopped(
            f"training job {name} was stopped ({description.get('SecondaryStatus', 'Stopped')}): "
            f"{description.get('FailureReason') or 'stopped by a person or by its stopping condition'}"
        )
    if _expired(resource, now):
        raise WaitTimeExpired(f"training job {name} was still {status} at {resource['wait_until']}, beyond its "
                              "stopping condition and the margin for starting and uploading")
    # The key is always there: the state machine's ResultSelector names it.
    return {**resource, "status": status, "ready": False, "model_artifacts": None}


def check_qa_endpoint(sagemaker, resource: dict, now) -> dict:
    name = resource["endpoint_name"]
    description = describe_or_none(sagemaker.describe_endpoint, EndpointName=name)
    if description is None:
        raise ResourceMissing(f"QA endpoint {name} no longer exists (deleted outside the pipeline?)")
    status = description.get("EndpointStatus")
    if status == "InService":
        return {**resource, "status": status, "ready": True}
    if status == "Failed":
        raise QAEndpointFailed(f"QA endpoint {name} failed: {_reason(description)}")
    if _expired(resource, now):
        raise WaitTimeExpired(f"QA endpoint {name} was still {status} at {resource['wait_until']} "
                              "(EndpointWaitSeconds after it was created)")
    return {**resource, "status": status, "ready": False}


def production_holder(dynamodb, table: str, endpoint_name: str) -> dict:
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": production_key(endpoint_name)}},
                             ConsistentRead=True).get("Item", {})
    return {"run_id": item.get("run_id", {}).get("S"), "started_at": item.get("started_at", {}).get("S")}


def check_production(sagemaker, dynamodb, table: str, resource: dict, run: dict, config_name: str, now) -> dict:
    name = resource["endpoint_name"]
    description = describe_or_none(sagemaker.describe_endpoint, EndpointName=name)
    if description is None:
        raise ResourceMissing(f"production endpoint {name} no longer exists (deleted while this run deployed to it)")
    status = description.get("EndpointStatus")
    current = description.get("EndpointConfigName")
    pending = (description.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
    if status == "InService" and current == config_name:
        return {**resource, "status": status, "ready": True}
    if status in ("Failed", "UpdateRollbackFailed"):
        raise ProductionEndpointFailed(f"production endpoint {name} is {status}: {_reason(description)}")
    if status == "InService" or config_name not in (current, pending):
        holder = production_holder(dynamodb, table, name)
        if holder["run_id"] and holder["run_id"] != run["run_id"]:
            raise Superseded(
                f"production endpoint {name} is {status} on config {pending or current}: run {holder['run_id']} "
                f"(started {holder['started_at']}) started after this run and deployed to it, so this run's "
                f"config {config_name} is not what serves"
            )
        if status == "InService":
            raise ProductionRolledBack(
                f"production endpoint {name} is back on config {current} instead of this run's {config_name}; this "
                f"run still holds the production lock, so the blue/green update was rolled back "
                f"({description.get('FailureReason') or 'a rollback alarm fired during the baking period'}); "
                "the previous model is still serving"
            )
    if _expired(resource, now):
        raise WaitTimeExpired(f"production endpoint {name} was still {status} at {resource['wait_until']} "
                              "(EndpointWaitSeconds, plus BakeSeconds for an update, after the deployment started)")
    return {**resource, "status": status, "ready": False}


def check_status(sagemaker, dynamodb, table: str | None, event: dict, now=None) -> dict:
    now = now or utc_now()
    try:
        kind, resource = event["kind"], dict(event["resource"])
        if kind not in KINDS:
            raise KeyError(f"kind must be one of {KINDS}")
        parse_iso(resource["wait_until"])
        name = resource["training_job_name" if kind == "training_job" else "endpoint_name"]
        if not is_sagemaker_name(name):
            raise ValueError(f"{name!r} is not a SageMaker name")
        if kind == "production":
            run, config_name = event["run"], event["endpoint_config_name"]
            run["run_id"]
    except (TypeError, KeyError, ValueError) as error:
        raise InvalidEvent(f"the event needs kind, resource (a name and wait_until), and for production run and "
                           f"endpoint_config_name ({error})") from None
    if kind == "training_job":
        result = check_training_job(sagemaker, resource, now)
    elif kind == "qa_endpoint":
        result = check_qa_endpoint(sagemaker, resource, now)
    else:
        if not table:
            raise InvalidEvent("production checks need STATE_TABLE")
        result = check_production(sagemaker, dynamodb, table, resource, run, config_name, now)
    logger.info("status", extra={"kind": kind, "resource_name": name, "status": result["status"]})
    return result


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    return check_status(
        boto3.client("sagemaker", config=CLIENT_CONFIG),
        boto3.client("dynamodb", config=CLIENT_CONFIG),
        env_str("STATE_TABLE"),
        event,
    )
