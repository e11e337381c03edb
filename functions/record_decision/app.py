"""Records the person's decision on the run's registered model version.

- `{"registry", "approval"}` after RequestApproval succeeded: the version
  becomes Approved, with who-approved-when (and the reason, if one was
  typed) as its ApprovalDescription.
- `{"registry", "failure", "approval_timeout_seconds"}` on the failure path:
  a version still PendingManualApproval becomes Rejected with the reason.
  The reviewer's rejection carries their reason; an approval window that ran
  out says so (a version nobody approved is never deployable, and a rollback
  only ever goes to an Approved version); any other failure before a
  decision says where the run failed. A version already Approved stays so
  (the person approved it; it failed to deploy, or a newer run superseded it).

Only the run's own version is touched (`registry.kind` "registered"); a
rollback's target is left as it is.
"""
from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Tracer

from pipeline_common.aws_errors import CLIENT_CONFIG, named_aws_errors
from pipeline_common.errors import InvalidEvent
from pipeline_common.registry import APPROVED, MAX_APPROVAL_DESCRIPTION, PENDING, REJECTED, one_line

logger = Logger()
tracer = Tracer()

REJECTED_BY_REVIEWER = "ApprovalRejected"
WINDOW_ENDED = "States.Timeout"


class DecisionConflict(Exception):
    """The version was already decided otherwise (e.g. rejected in SageMaker Studio meanwhile)."""


def approval_description(approval: dict) -> str:
    reason = (approval or {}).get("reason") or ""
    text = f"Approved on the approval page at {(approval or {}).get('decided_at') or 'an unknown time'}"
    return one_line(f"{text}: {reason}" if reason else text + ".", MAX_APPROVAL_DESCRIPTION)


def rejection_description(failure: dict, approval_timeout_seconds) -> str:
    state, error, cause = failure.get("state"), failure.get("error"), failure.get("cause") or ""
    if error == REJECTED_BY_REVIEWER:
        text = f"Rejected by the reviewer: {cause}" if cause else "Rejected by the reviewer."
    elif error == WINDOW_ENDED and state in ("RequestApproval", None):
        text = (f"No decision within the approval window ({approval_timeout_seconds} seconds): "
                "the run ended without deploying it.")
    else:
        text = f"Not deployed: the run failed in {state} with {error} before a decision. {cause}"
    return one_line(text, MAX_APPROVAL_DESCRIPTION)


def _set(sagemaker, arn: str, status: str, description: str) -> None:
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=description)


def record_decision(sagemaker, event: dict) -> dict:
    registry = event.get("registry") if isinstance(event, dict) else None
    if not isinstance(registry, dict) or not isinstance(registry.get("model_package_arn"), str):
        raise InvalidEvent("the event needs registry.model_package_arn")
    arn = registry["model_package_arn"]
    if registry.get("kind") != "registered":
        return {**registry, "action": "unchanged"}
    current = sagemaker.describe_model_package(ModelPackageName=arn).get("ModelApprovalStatus")
    if "failure" in event:
        failure = event["failure"] if isinstance(event["failure"], dict) else {}
        if current != PENDING:
            logger.info("decided already; left as it is", extra={"model_package_arn": arn, "status": current})
            return {**registry, "status": current, "action": "unchanged"}
        description = rejection_description(failure, event.get("approval_timeout_seconds"))
        _set(sagemaker, arn, REJECTED, description)
        logger.info("model package rejected", extra={"model_package_arn": arn, "error": failure.get("error")})
        return {**registry, "status": REJECTED, "action": "rejected", "description": description}
    if not isinstance(event.get("approval"), dict):
        raise InvalidEvent("the event needs approval (what the approval page sent) or failure")
    if current == APPROVED:
        return {**registry, "status": APPROVED, "action": "unchanged"}
    if current != PENDING:
        raise DecisionConflict(f"model package {arn} is {current}; the approval of this run cannot change that")
    description = approval_description(event["approval"])
    _set(sagemaker, arn, APPROVED, description)
    logger.info("model package approved", extra={"model_package_arn": arn})
    return {**registry, "status": APPROVED, "action": "approved", "description": description}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    return record_decision(boto3.client("sagemaker", config=CLIENT_CONFIG), event)
