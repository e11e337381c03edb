"""Deletes the run's QA endpoint (success and failure paths alike).

On the failure path it receives the whole state, where `plan.names` is absent
when the run failed before naming anything. It never deletes production.
"""
from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from pipeline_common.config import env_str
from pipeline_common.sagemaker import describe_or_none, is_not_found

logger = Logger()
tracer = Tracer()

# DeleteEndpoint is refused while these last; the state machine retries.
_NOT_DELETABLE_YET = {"Creating", "Updating", "SystemUpdating", "RollingBack"}


class QAEndpointBusy(Exception):
    """The QA endpoint is still being created or changed and cannot be deleted yet."""


def names_from(event) -> dict:
    if not isinstance(event, dict):
        return {}
    names = event.get("names")
    if not isinstance(names, dict):
        plan = event.get("plan")
        names = plan.get("names") if isinstance(plan, dict) else None
    return names if isinstance(names, dict) else {}


def cleanup(sagemaker, event, production_endpoint: str) -> dict:
    names = names_from(event)
    qa_endpoint = names.get("qa_endpoint")
    if not isinstance(qa_endpoint, str) or not qa_endpoint:
        return {"qa_endpoint": None, "action": "none_named"}
    if qa_endpoint in {production_endpoint, names.get("production_endpoint")}:
        logger.warning("refusing to delete an endpoint named like production", extra={"endpoint_name": qa_endpoint})
        return {"qa_endpoint": qa_endpoint, "action": "refused"}

    description = describe_or_none(sagemaker.describe_endpoint, EndpointName=qa_endpoint)
    status = description and description.get("EndpointStatus")
    if description is None:
        action = "absent"
    elif status == "Deleting":
        action = "already_deleting"
    elif status in _NOT_DELETABLE_YET:
        raise QAEndpointBusy(f"QA endpoint {qa_endpoint} is {status}; it can be deleted once that finishes")
    else:
        try:
            sagemaker.delete_endpoint(EndpointName=qa_endpoint)
            action = "deleted"
        except ClientError as error:
            if not is_not_found(error):
                raise
            action = "absent"  # deleted by someone else in between
    logger.info("QA endpoint cleanup", extra={"endpoint_name": qa_endpoint, "action": action})
    return {"qa_endpoint": qa_endpoint, "action": action}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return cleanup(boto3.client("sagemaker"), event, production_endpoint=env_str("PRODUCTION_ENDPOINT_NAME"))
