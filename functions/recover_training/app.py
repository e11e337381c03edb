"""What a failed TrainXGBoost means: continue with the job, try again, or stop.

TrainXGBoost is Step Functions' `sagemaker:createTrainingJob.sync`, which
reports every SageMaker API error as `SageMaker.AmazonSageMakerException`:
the state machine cannot tell a throttled CreateTrainingJob from a refused
one, so it retries nothing and hands the error to this function. The Cause
is the AWS SDK's text, which keeps SageMaker's error code and HTTP status
(pipeline_common.aws_errors reads it back into the error botocore would
have raised). In this order:

- The run's training job exists: CreateTrainingJob did its work but its
  answer was lost, a retried CreateTrainingJob met the job the first one
  made (SageMaker answers ResourceInUse to its own name), or the
  integration's own DescribeTrainingJob failed. `wait`: the state machine
  polls that job (check_status) instead of creating it again. A job of that
  name with other inputs or outputs is not this run's: TrainingJobConflict.
- Throttling or a server error (botocore's standard retry mode decides
  which), with attempts left: `retry` after `retry_in_seconds`
  (exponential backoff with full jitter, as a Retry with JitterStrategy
  FULL would wait).
- Anything else, or no attempts left: the run fails at once under the
  error's name (QuotaExceeded, AccessDenied, RequestRejected,
  ServiceThrottled, ServiceUnavailable), whose message is botocore's text
  for the error: the failure email reads the quota, region or permission
  from it.

Event: the execution state (`run`, `plan.training` = the CreateTrainingJob
request, `training_error` = the caught {Error, Cause}, and `training` = this
function's previous answer when TrainXGBoost was already retried). Returns
`{"action", "attempts", "training_job_name", "wait_until",
"retry_in_seconds"}`; `wait_until` ends the wait loop: the job's stopping
condition plus a margin for starting and uploading, from its creation.
"""
from __future__ import annotations

import random
from datetime import timedelta

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import BotoCoreError, ClientError

from pipeline_common.aws_errors import (
    CLIENT_CONFIG,
    ServiceThrottled,
    ServiceUnavailable,
    classify,
    client_error_from_cause,
    named_aws_errors,
)
from pipeline_common.errors import InvalidEvent
from pipeline_common.names import is_sagemaker_name
from pipeline_common.sagemaker import describe_or_none
from pipeline_common.timeutil import iso

logger = Logger()
tracer = Tracer()

# SageMaker bills and limits training time only; starting the instance, pulling
# the image and uploading the model come on top.
WAIT_MARGIN_SECONDS = 3600
# CreateTrainingJob after throttling or a server error: up to 5 more attempts,
# waiting up to 10, 20, 40, 80, 160 s (full jitter), never more than 300 s.
MAX_RETRIES = 5
RETRY_BASE_SECONDS = 10
RETRY_MAX_SECONDS = 300
CREATE = "CreateTrainingJob"


class TrainingJobConflict(Exception):
    """A training job with this run's name exists but was started with other inputs or outputs."""


def _identity(request: dict) -> dict:
    """The parts of a CreateTrainingJob request that make a job this run's."""
    return {
        "RoleArn": request.get("RoleArn"),
        "TrainingImage": (request.get("AlgorithmSpecification") or {}).get("TrainingImage"),
        "S3OutputPath": (request.get("OutputDataConfig") or {}).get("S3OutputPath"),
        "Inputs": sorted(
            ((channel.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri", "")
            for channel in request.get("InputDataConfig") or []
        ),
    }


def wait_until(created, stopping_condition: dict) -> str:
    limit = stopping_condition.get("MaxWaitTimeInSeconds") or stopping_condition.get("MaxRuntimeInSeconds") or 0
    return iso(created + timedelta(seconds=int(limit) + WAIT_MARGIN_SECONDS))


def backoff_seconds(retry: int, rng: random.Random) -> int:
    """The wait before retry number `retry` (1-based): full jitter over an exponential cap."""
    cap = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (retry - 1))
    return round(rng.uniform(0, cap))


def _answer(action: str, attempts: int, name: str, until: str | None = None, retry_in: int | None = None) -> dict:
    # Every key, always: the state machine's ResultSelector names each one.
    return {"action": action, "attempts": attempts, "training_job_name": name, "wait_until": until,
            "retry_in_seconds": retry_in}


def _parse(state) -> tuple[dict, str, int]:
    try:
        request = state["plan"]["training"]
        name = request["TrainingJobName"]
        caught = state["training_error"]
        cause = caught.get("Cause") or ""
        previous = state.get("training") if isinstance(state.get("training"), dict) else {}
        attempts = int(previous.get("attempts") or 0) if previous.get("training_job_name") == name else 0
    except (TypeError, KeyError, AttributeError, ValueError) as error:
        raise InvalidEvent(f"the event needs plan.training and training_error ({error!r})") from None
    if not is_sagemaker_name(name):
        raise InvalidEvent(f"{name!r} is not a training job name")
    return request, cause, attempts


def recover_training(sagemaker, state, rng: random.Random | None = None) -> dict:
    request, cause, attempts = _parse(state)
    name = request["TrainingJobName"]
    rng = rng or random.Random()
    try:
        existing = describe_or_none(sagemaker.describe_training_job, TrainingJobName=name)
    except (ClientError, BotoCoreError) as error:
        # Whether the job exists is unknown: a retried CreateTrainingJob finds out (ResourceInUse brings the run back here).
        named = classify(error)
        if isinstance(named, (ServiceThrottled, ServiceUnavailable)) and attempts < MAX_RETRIES:
            return _retry(name, attempts, rng, f"DescribeTrainingJob: {error}")
        raise named from error
    if existing is not None:
        if _identity(existing) != _identity(request):
            raise TrainingJobConflict(
                f"training job {name} already exists with other settings ({_identity(existing)}), so it is not this "
                f"run's ({_identity(request)}); SageMaker never reuses a training job name: start the run under a new name"
            )
        logger.info("training job exists: waiting for it", extra={"training_job": name, "status": existing.get("TrainingJobStatus")})
        return _answer("wait", attempts, name,
                       until=wait_until(existing["CreationTime"], existing.get("StoppingCondition") or request["StoppingCondition"]))
    error = client_error_from_cause(cause, CREATE)
    if error is None:
        # Not an AWS SDK error text: nothing says a retry could help.
        error = ClientError({"Error": {"Code": "Unknown", "Message": cause or "Step Functions gave no cause"}}, CREATE)
    named = classify(error)
    if isinstance(named, (ServiceThrottled, ServiceUnavailable)) and attempts < MAX_RETRIES:
        return _retry(name, attempts, rng, str(error))
    logger.info("training cannot start", extra={"training_job": name, "error": type(named).__name__, "attempts": attempts})
    raise named from error


def _retry(name: str, attempts: int, rng: random.Random, why: str) -> dict:
    retry_in = backoff_seconds(attempts + 1, rng)
    logger.info("retrying CreateTrainingJob", extra={"training_job": name, "attempt": attempts + 1, "in_seconds": retry_in,
                                                     "reason": why})
    return _answer("retry", attempts + 1, name, retry_in=retry_in)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    return recover_training(boto3.client("sagemaker", config=CLIENT_CONFIG), event)
