"""pipeline_common.aws_errors: the names the state machine retries on.

Only ServiceThrottled and ServiceUnavailable are retried; QuotaExceeded and
AccessDenied fail the run at once with an email that says what a person must
do. mutmut cannot reach the module-level code lists and patterns that decide
this (`_QUOTA_CODES`, `_ACCESS_DENIED_CODES`, `_NOT_AUTHORIZED`, `_SDK_CAUSE`),
so they are checked here against independent encodings: the error codes
botocore's service models declare, botocore's standard retry mode, and the
Cause text of AWS's SDK for Java as Step Functions reports it.
"""
from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from lambda_fixtures import REGION
from pipeline_common import aws_errors


def raised_by(service: str, method: str, params: dict, code: str, message: str, status: int = 400) -> Exception:
    """The ClientError botocore raises for this answer (its real parsing, through Stubber)."""
    client = boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stub:
        stub.add_client_error(method, code, message, http_status_code=status)
        try:
            getattr(client, method)(**params)
        except Exception as error:  # noqa: BLE001 - the point is what botocore raises
            return error
    raise AssertionError("the stub did not raise")


def modeled_errors(service: str) -> set[str]:
    """The error codes botocore's model of `service` declares."""
    model = boto3.session.Session().client(service, region_name=REGION).meta.service_model
    return {shape.error_code for shape in model.error_shapes}


DESCRIBE_JOB = ("sagemaker", "describe_training_job", {"TrainingJobName": "x-train"})
PUBLISH = ("sns", "publish", {"TopicArn": f"arn:aws:sns:{REGION}:123456789012:t", "Message": "m"})
START = ("stepfunctions", "start_execution", {"stateMachineArn": f"arn:aws:states:{REGION}:123456789012:stateMachine:m"})
GLUE_RUN = ("glue", "get_job_run", {"JobName": "preprocess", "RunId": "jr_1"})
GET_OBJECT = ("s3", "get_object", {"Bucket": "b", "Key": "k"})


@pytest.mark.parametrize("call, code", [
    # SageMaker's own quota error (botocore's sagemaker model: ResourceLimitExceeded).
    (DESCRIBE_JOB, "ResourceLimitExceeded"),
    # The quota error most other services model (here Step Functions'; botocore's stepfunctions model).
    (START, "ServiceQuotaExceededException"),
])
def test_a_quota_error_is_not_retried(call, code):
    assert code in modeled_errors(call[0])
    error = raised_by(*call, code, "The account-level service limit is 0 Instances")
    assert type(aws_errors.classify(error)) is aws_errors.QuotaExceeded


@pytest.mark.parametrize("call, code, status", [
    # SNS, which sends the approval and failure emails, models its denial as AuthorizationError.
    (PUBLISH, "AuthorizationError", 403),
    (GLUE_RUN, "AccessDeniedException", 400),
    # S3's REST errors are not modeled; its denial is "AccessDenied" with 403
    # (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList).
    (GET_OBJECT, "AccessDenied", 403),
])
def test_a_denied_call_of_a_service_the_pipeline_uses_is_access_denied(call, code, status):
    service = call[0]
    if service != "s3":
        assert code in modeled_errors(service)
    error = raised_by(*call, code, "User: arn:aws:sts::123456789012:assumed-role/r/f is not allowed")
    assert type(aws_errors.classify(error)) is aws_errors.AccessDenied


def test_another_code_saying_is_not_authorized_to_perform_is_access_denied():
    """Some services deny with a ValidationException or their own code; IAM's wording is what tells."""
    error = raised_by(*DESCRIBE_JOB, "ValidationException", "User: arn:aws:sts::123456789012:assumed-role/r/f is not "
                      "authorized to perform: iam:PassRole on resource: arn:aws:iam::123456789012:role/x")
    assert type(aws_errors.classify(error)) is aws_errors.AccessDenied


def test_not_authorized_wording_alone_is_not_a_denial():
    error = raised_by(*DESCRIBE_JOB, "ValidationException", "The caller is not authorized for this algorithm version.")
    assert type(aws_errors.classify(error)) is aws_errors.RequestRejected


@pytest.mark.parametrize("code, status, name", [
    # botocore's standard retry mode (botocore/retries/standard.py): these codes are transient whatever the status,
    ("RequestTimeout", 400, "ServiceUnavailable"),
    # these statuses whatever the code,
    ("SomethingBroke", 502, "ServiceUnavailable"),
    ("SomethingBroke", 504, "ServiceUnavailable"),
    # these codes are throttling (S3's SlowDown, DynamoDB's ProvisionedThroughputExceededException),
    ("SlowDown", 503, "ServiceThrottled"),
    ("ProvisionedThroughputExceededException", 400, "ServiceThrottled"),
    # and a 4xx that is none of them is for a person.
    ("SomethingWrong", 400, "RequestRejected"),
    ("SomethingWrong", 404, "RequestRejected"),
])
def test_what_is_retried_is_botocores_standard_retry_judgement(code, status, name):
    error = raised_by(*DESCRIBE_JOB, code, "m", status)
    named = aws_errors.classify(error)
    assert type(named).__name__ == name
    assert (name in aws_errors.RETRYABLE) == (name in ("ServiceThrottled", "ServiceUnavailable"))


def test_only_throttling_and_server_errors_are_retryable_names():
    assert set(aws_errors.RETRYABLE) == {"ServiceThrottled", "ServiceUnavailable"}


@pytest.mark.parametrize("cause, code, status", [
    # A .sync integration's Cause as Step Functions records it
    # (https://github.com/serverless-operations/serverless-step-functions/issues/385).
    ("User: arn:aws:sts::123456789012:assumed-role/StatesRole/x is not authorized to perform: sagemaker:"
     "CreateTrainingJob (Service: AWSStepFunctions; Status Code: 400; Error Code: AccessDeniedException; "
     "Request ID: 0b9c; Proxy: null)", "AccessDeniedException", 400),
    # Older SDK versions end at the request id; whitespace around the text is not part of it.
    ("  Rate exceeded (Service: AmazonSageMaker; Status Code: 400; Error Code: ThrottlingException; "
     "Request ID: 1a2b)\n", "ThrottlingException", 400),
    # An empty request id still has the SDK's shape.
    ("Internal error (Service: AmazonSageMaker; Status Code: 503; Error Code: ServiceUnavailable; Request ID: )",
     "ServiceUnavailable", 503),
])
def test_an_sdk_cause_is_read_back_whatever_the_service_and_sdk_version(cause, code, status):
    error = aws_errors.client_error_from_cause(cause, "CreateTrainingJob")
    assert error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert str(error).startswith(f"An error occurred ({code}) when calling the CreateTrainingJob operation: ")


@pytest.mark.parametrize("cause", [
    # Not the SDK's parenthesis: no status, no request id, or text after it.
    "Rate exceeded (Service: AmazonSageMaker; Error Code: ThrottlingException; Request ID: x)",
    "Rate exceeded (Service: AmazonSageMaker; Status Code: 400; Error Code: ThrottlingException)",
    "Rate exceeded (Service: AmazonSageMaker; Status Code: 400; Error Code: ThrottlingException; Request ID: x) later",
    "Rate exceeded (Service: AmazonSageMaker; Status Code: abc; Error Code: ThrottlingException; Request ID: x)",
])
def test_text_that_only_looks_like_an_sdk_cause_is_not_read_as_one(cause):
    assert aws_errors.client_error_from_cause(cause, "CreateTrainingJob") is None
