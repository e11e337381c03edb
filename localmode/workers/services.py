"""Service integrations that are plain API calls: forwarded to moto through
boto3, with failures named as Step Functions names them.

- Optimized integrations (`sagemaker:createEndpoint`, `sns:publish`): the
  error is `<Service>.<ErrorCode>` (SageMaker's are all
  `SageMaker.AmazonSageMakerException`), the cause the service's message with
  its status code, as the AWS console shows them.
- AWS SDK integrations (`aws-sdk:sagemaker:describeEndpoint`): the error is
  `<Service>.<Exception>` for the API's modeled exceptions and
  `<Service>.<Service>Exception` otherwise.
"""
from __future__ import annotations

import datetime
from typing import Any, Callable

import boto3
from botocore.exceptions import ClientError

from localmode.sfn import TaskFailed, TaskRequest

# Step Functions' service names in error names, by boto3 service name.
_ERROR_SERVICE = {"sagemaker": "SageMaker", "sns": "SNS", "sqs": "SQS", "dynamodb": "DynamoDb", "s3": "S3", "glue": "Glue",
                  "lambda": "Lambda"}


def _camel_to_snake(name: str) -> str:
    import re

    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _jsonable(value: Any) -> Any:
    """boto3's response as Step Functions hands it on: timestamps as ISO strings, bodies as text."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if hasattr(value, "read"):
        return value.read().decode("utf-8")
    return value


def _cause(error: ClientError, service_label: str) -> str:
    meta = error.response.get("ResponseMetadata", {})
    code = error.response.get("Error", {}).get("Code", "Unknown")
    message = error.response.get("Error", {}).get("Message", str(error))
    return (
        f"{message} (Service: {service_label}; Status Code: {meta.get('HTTPStatusCode', 400)}; "
        f"Error Code: {code}; Request ID: {meta.get('RequestId', 'local')}; Proxy: null)"
    )


def optimized_error(service: str, error: ClientError) -> TaskFailed:
    if service == "sagemaker":
        return TaskFailed("SageMaker.AmazonSageMakerException", _cause(error, "AmazonSageMaker"))
    code = error.response.get("Error", {}).get("Code", "Unknown")
    name = code if code.endswith("Exception") else f"{code}Exception"
    label = _ERROR_SERVICE.get(service, service)
    return TaskFailed(f"{label}.{name}", _cause(error, f"Amazon{label}"))


def sdk_error(service: str, client: Any, error: ClientError) -> TaskFailed:
    label = _ERROR_SERVICE.get(service, service.capitalize())
    code = error.response.get("Error", {}).get("Code", "")
    modeled = client.exceptions.from_code(code)
    name = modeled.__name__ if modeled is not ClientError else f"{label}Exception"
    if not name.endswith("Exception"):
        name += "Exception"
    return TaskFailed(f"{label}.{name}", _cause(error, label))


def authorize_integration(authorize: Callable[[str, str, dict], None], service: str, operation: str,
                          params: dict) -> None:
    """A call a service integration makes itself (local IAM's `authorize`); refused, it fails the task as
    Step Functions reports the integration's errors."""
    try:
        authorize(service, operation, params)
    except ClientError as error:
        raise optimized_error(service, error) from error


def optimized(service: str, action: str) -> Callable[[TaskRequest], Any]:
    """`arn:aws:states:::<service>:<action>` as a boto3 call to moto."""

    def handle(request: TaskRequest) -> Any:
        client = boto3.client(service)
        try:
            return _jsonable(getattr(client, _camel_to_snake(action))(**request.parameters))
        except ClientError as error:
            raise optimized_error(service, error) from error

    return handle


def aws_sdk(service: str, action: str) -> Callable[[TaskRequest], Any]:
    """`arn:aws:states:::aws-sdk:<service>:<action>` as a boto3 call to moto."""

    def handle(request: TaskRequest) -> Any:
        client = boto3.client(service)
        try:
            return _jsonable(getattr(client, _camel_to_snake(action))(**request.parameters))
        except ClientError as error:
            raise sdk_error(service, client, error) from error

    return handle
