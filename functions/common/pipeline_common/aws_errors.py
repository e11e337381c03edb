"""AWS errors under names a Step Functions Retry can tell apart.

Step Functions cannot tell a throttled SageMaker call from a refused one:
its optimized SageMaker integrations report every unmodeled SageMaker error
(ThrottlingException, AccessDeniedException, ValidationException) as
`SageMaker.AmazonSageMakerException`, and its AWS SDK integrations as
`SageMaker.SageMakerException`, with the real code only inside the Cause
text. So the pipeline calls SageMaker from Lambdas, where botocore has the
error code, and a handler decorated with `named_aws_errors` fails with one of
the exception classes below; the class name is the error name the state
machine sees. Only `ServiceThrottled` and `ServiceUnavailable` are retried by
the state machine; the others fail the run at once.

What counts as throttled or transient is botocore's own standard retry
mode's judgement (`botocore.retries.standard`), not a list kept here.

Where the state machine calls SageMaker itself (TrainXGBoost's
`createTrainingJob.sync`), `client_error_from_cause` reads the code back out
of the Cause Step Functions gives, so the same judgement applies.
"""
from __future__ import annotations

import functools
import re

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker, TransientRetryableChecker


class ServiceThrottled(Exception):
    """AWS kept throttling the call after the client's own retries (retryable)."""


class ServiceUnavailable(Exception):
    """AWS answered with a server error or the connection failed (retryable)."""


class QuotaExceeded(Exception):
    """An account quota (service limit) is too low for the request (needs a person)."""


class AccessDenied(Exception):
    """The function's role may not make the call (needs a person)."""


class RequestRejected(Exception):
    """AWS refused the request as invalid or conflicting (needs a person)."""


# The error names the state machine's Retry lists for Lambda tasks.
RETRYABLE = (ServiceThrottled.__name__, ServiceUnavailable.__name__)

_ACCESS_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
                        "NotAuthorized", "AuthorizationError", "AuthorizationErrorException"}
_QUOTA_CODES = {"ResourceLimitExceeded", "ServiceQuotaExceededException"}
_NOT_AUTHORIZED = re.compile(r"\bis not authorized to perform\b")

# The AWS SDK for Java's exception text, which Step Functions' SageMaker integration gives as the Cause:
# "<message> (Service: AmazonSageMaker; Status Code: 400; Error Code: ResourceLimitExceeded; Request ID: <id>)"
# (the shape AWS shows in https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-query-history.html),
# newer SDK versions adding "; Proxy: null" before the parenthesis closes.
_SDK_CAUSE = re.compile(r"^(?P<message>.*?)\s*\(Service: [^;()]+; Status Code: (?P<status>\d+); "
                        r"Error Code: (?P<code>[^;()]+); Request ID: [^;()]*(?:; [^()]*)?\)\s*$", re.S)

# Standard retry mode: throttling and transient errors are retried inside the
# function first (with backoff), the state machine's Retry only covers longer outages.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4})


class _Status:
    def __init__(self, status_code):
        self.status_code = status_code


def _retry_context(error: Exception) -> RetryContext:
    if isinstance(error, ClientError):
        status = (error.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return RetryContext(attempt_number=1, parsed_response=error.response,
                            http_response=_Status(status) if status is not None else None)
    return RetryContext(attempt_number=1, caught_exception=error)


def error_code(error: Exception) -> str | None:
    if isinstance(error, ClientError):
        return (error.response.get("Error") or {}).get("Code")
    return None


def client_error_from_cause(cause, operation: str) -> ClientError | None:
    """The ClientError botocore would have raised for the error a Step Functions Cause describes
    (None when the text is not an AWS SDK error's)."""
    match = _SDK_CAUSE.match(cause.strip()) if isinstance(cause, str) else None
    if match is None:
        return None
    return ClientError({"Error": {"Code": match.group("code").strip(), "Message": match.group("message").strip()},
                        "ResponseMetadata": {"HTTPStatusCode": int(match.group("status"))}}, operation)


def classify(error: Exception) -> Exception:
    """The named exception for a botocore error (its message is botocore's own text)."""
    context = _retry_context(error)
    message = str(error)
    if ThrottledRetryableChecker().is_retryable(context):
        return ServiceThrottled(message)
    if TransientRetryableChecker().is_retryable(context):
        return ServiceUnavailable(message)
    code = error_code(error)
    if code in _QUOTA_CODES:
        return QuotaExceeded(message)
    if code in _ACCESS_DENIED_CODES or _NOT_AUTHORIZED.search(message):
        return AccessDenied(message)
    return RequestRejected(message)


def named_aws_errors(handler):
    """Re-raise botocore errors escaping `handler` under the names above."""

    @functools.wraps(handler)
    def wrapper(event, context):
        try:
            return handler(event, context)
        except (ClientError, BotoCoreError) as error:
            raise classify(error) from error

    return wrapper
