"""Removes what a run leaves running: its QA endpoint and, once the run is
over, a training job still in progress. Never production.

Called with
- `{"run", "names", "scope": "qa_endpoint"}`: the QA tests are done (the
  success path); only the QA endpoint goes.
- the whole execution state (the failure path; `plan.names` is absent when
  the run failed before naming anything, and `failure` holds what failed):
  the answer also carries the failure email (`notice`).
- `{"caller": "cleanup_workflow", "input": ...}` from the cleanup state
  machine, whose input is `{"run_id", "names"}` handed over by this function,
  or the EventBridge "Step Functions Execution Status Change" event of a
  pipeline execution that ended FAILED, TIMED_OUT or ABORTED (names are then
  derived from the execution name, which is the run id). A stopped or
  timed-out execution runs no Catch, so nothing settled the model version it
  registered: still PendingManualApproval, it becomes Rejected here, saying
  how the execution ended (`registry` in the answer; None when the run
  registered nothing, e.g. it ended before RegisterModel or was a rollback).

A QA endpoint that SageMaker cannot delete yet (still Creating or Updating)
is `pending`. Called by the pipeline, the function then starts the cleanup
state machine for it, which calls again every `poll_seconds` until the
endpoint is gone, however long its creation takes: a Lambda retry inside the
pipeline would be bounded, and a run must not wait for its own garbage.
"""
from __future__ import annotations

import json
import os

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from pipeline_common.aws_errors import CLIENT_CONFIG, named_aws_errors
from pipeline_common.config import env_int, env_str
from pipeline_common.datasets import dataset_from_key, production_endpoint_for
from pipeline_common.failures import failure_notice
from pipeline_common.names import resource_names
from pipeline_common.registry import (MAX_APPROVAL_DESCRIPTION, PENDING, REJECTED, find_registered,
                                      model_package_group_name, one_line)
from pipeline_common.s3 import parse_s3_uri
from pipeline_common.sagemaker import describe_or_none, is_not_found

logger = Logger()
tracer = Tracer()

# DeleteEndpoint is refused while these last.
NOT_DELETABLE_YET = {"Creating", "Updating", "SystemUpdating", "RollingBack"}
EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
WORKFLOW = "cleanup_workflow"


def run_id_from(event) -> str | None:
    if not isinstance(event, dict):
        return None
    if event.get("detail-type") == EXECUTION_STATUS_CHANGE:
        detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
        return detail.get("name") if isinstance(detail.get("name"), str) else None
    run = event.get("run")
    if isinstance(run, dict) and isinstance(run.get("run_id"), str):
        return run["run_id"]
    return event.get("run_id") if isinstance(event.get("run_id"), str) else None


def names_from(event, production_endpoint: str) -> dict:
    """The run's resource names: as the pipeline planned them, else derived from the run id."""
    if isinstance(event, dict):
        names = event.get("names")
        if not isinstance(names, dict):
            plan = event.get("plan")
            names = plan.get("names") if isinstance(plan, dict) else None
        if isinstance(names, dict) and names:
            return names
    run_id = run_id_from(event)
    return resource_names(run_id, production_endpoint) if run_id else {}


def delete_qa_endpoint(sagemaker, qa_endpoint, production_names: set[str]) -> str:
    if not isinstance(qa_endpoint, str) or not qa_endpoint:
        return "none_named"
    if qa_endpoint in production_names:
        logger.warning("refusing to delete an endpoint named like production", extra={"endpoint_name": qa_endpoint})
        return "refused"
    description = describe_or_none(sagemaker.describe_endpoint, EndpointName=qa_endpoint)
    status = description and description.get("EndpointStatus")
    if description is None:
        return "absent"
    if status == "Deleting":
        return "already_deleting"
    if status in NOT_DELETABLE_YET:
        return "pending"
    try:
        sagemaker.delete_endpoint(EndpointName=qa_endpoint)
    except ClientError as error:
        if is_not_found(error):
            return "absent"  # deleted by someone else in between
        if "Cannot update in-progress" in str(error) or "in progress" in str(error).lower():
            return "pending"  # it started changing between the describe and the delete
        raise
    return "deleted"


def stop_training_job(sagemaker, training_job) -> str:
    if not isinstance(training_job, str) or not training_job:
        return "none_named"
    description = describe_or_none(sagemaker.describe_training_job, TrainingJobName=training_job)
    if description is None:
        return "absent"
    if description.get("TrainingJobStatus") != "InProgress":
        return "not_running"
    try:
        sagemaker.stop_training_job(TrainingJobName=training_job)
    except ClientError as error:
        # It ended between the describe and the stop: nothing left to stop.
        if error.response.get("Error", {}).get("Code") == "ValidationException":
            return "not_running"
        raise
    return "stopped"


# How an execution that ran no Catch of its own ended, as its version's ApprovalDescription says it.
ENDED_WITHOUT_DECISION = {
    "ABORTED": "the execution was stopped",
    "TIMED_OUT": "the execution timed out",
    "FAILED": "the execution failed",
}


def _dataset_of_execution(detail: dict, datasets: dict) -> str | None:
    """The dataset a pipeline execution ran, from its input (start_run names it; a console start gives input_uri)."""
    try:
        execution_input = json.loads(detail.get("input") or "{}")
    except (TypeError, ValueError):
        return None
    if not isinstance(execution_input, dict) or "rollback" in execution_input:
        return None  # a rollback registers nothing
    if isinstance(execution_input.get("dataset"), str):
        return execution_input["dataset"]
    if isinstance(execution_input.get("input_uri"), str):
        try:
            _, key = parse_s3_uri(execution_input["input_uri"])
        except ValueError:
            return None
        return dataset_from_key(key, datasets["input_prefix"], datasets["default_dataset"])
    return None


def settle_ended_run(sagemaker, event, datasets: dict) -> dict | None:
    """The version an ended execution registered, Rejected if still pending. `datasets`: default_dataset,
    default_endpoint, suffix and input_prefix, as the stack's parameters set them."""
    if not (isinstance(event, dict) and event.get("detail-type") == EXECUTION_STATUS_CHANGE):
        return None
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    dataset, run_id = _dataset_of_execution(detail, datasets), run_id_from(event)
    if not dataset or not run_id:
        return None
    try:
        endpoint = production_endpoint_for(dataset, datasets["default_dataset"], datasets["default_endpoint"],
                                           datasets["suffix"])
    except ValueError:
        return None  # a name resolve_dataset refused: the run registered nothing
    group = model_package_group_name(endpoint)
    try:
        version = find_registered(sagemaker, group, run_id)
    except ClientError as error:
        if is_not_found(error):
            return None  # the dataset's group does not exist yet: nothing was registered
        raise
    if version is None:
        return None
    arn, status = version["ModelPackageArn"], version.get("ModelApprovalStatus")
    if status != PENDING:
        return {"model_package_arn": arn, "status": status, "action": "unchanged"}
    ended = ENDED_WITHOUT_DECISION.get(detail.get("status"), f"the execution ended {detail.get('status')}")
    description = one_line(f"Not deployed: {ended} before a decision.", MAX_APPROVAL_DESCRIPTION)
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=REJECTED, ApprovalDescription=description)
    logger.info("model package of an ended run rejected", extra={"model_package_arn": arn, "run_id": run_id})
    return {"model_package_arn": arn, "status": REJECTED, "action": "rejected", "description": description}


def hand_over(sfn, state_machine_arn: str, run_id: str | None, names: dict) -> str:
    """Start the cleanup state machine for a QA endpoint that cannot be deleted yet."""
    started = sfn.start_execution(stateMachineArn=state_machine_arn,
                                  input=json.dumps({"run_id": run_id, "names": names}))
    return started["executionArn"]


def cleanup(sagemaker, event, production_endpoint: str, region: str = "", sfn=None,
            cleanup_state_machine: str | None = None, poll_seconds: int = 60, datasets: dict | None = None) -> dict:
    from_workflow = isinstance(event, dict) and event.get("caller") == WORKFLOW
    if from_workflow:
        event = event.get("input")
    names = names_from(event, production_endpoint)
    scope = event.get("scope", "run") if isinstance(event, dict) else "run"
    qa_endpoint = names.get("qa_endpoint")
    action = delete_qa_endpoint(sagemaker, qa_endpoint, {production_endpoint, names.get("production_endpoint")})
    result = {"qa_endpoint": qa_endpoint, "action": action, "pending": action == "pending", "poll_seconds": poll_seconds}
    if action == "pending" and not from_workflow:
        result["handed_over_to"] = hand_over(sfn, cleanup_state_machine, run_id_from(event), names)
    if scope != "qa_endpoint":
        result["training_job"] = names.get("training_job")
        result["training_action"] = stop_training_job(sagemaker, names.get("training_job"))
    if from_workflow:
        result["registry"] = settle_ended_run(sagemaker, event, datasets or {}) if datasets else None
    logger.info("run cleanup", extra={"run_id": run_id_from(event), **result})
    failure = event.get("failure") if isinstance(event, dict) else None
    if isinstance(failure, dict):
        plan = event.get("plan") if isinstance(event.get("plan"), dict) else {}
        result["notice"] = failure_notice(
            run_id_from(event) or "?", failure, region=region,
            approval_window_seconds=plan.get("approval_timeout_seconds"),
            qa_endpoint=qa_endpoint, qa_action=action, rollback=isinstance(event.get("rollback"), dict),
        )
    return result


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    return cleanup(
        boto3.client("sagemaker", config=CLIENT_CONFIG),
        event,
        production_endpoint=env_str("PRODUCTION_ENDPOINT_NAME"),
        region=os.environ.get("AWS_REGION", ""),
        sfn=boto3.client("stepfunctions", config=CLIENT_CONFIG),
        cleanup_state_machine=env_str("CLEANUP_STATE_MACHINE_ARN"),
        poll_seconds=env_int("POLL_SECONDS", 60, minimum=1),
        datasets={"default_dataset": env_str("DEFAULT_DATASET"), "default_endpoint": env_str("PRODUCTION_ENDPOINT_NAME"),
                  "suffix": env_str("PRODUCTION_ENDPOINT_SUFFIX"), "input_prefix": env_str("INPUT_PREFIX")},
    )
