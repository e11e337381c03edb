"""pipeline_common.sagemaker: SageMaker answers both "no such resource" and "already
exists" with a ValidationException told apart only by its message (moto's encoding:
moto/sagemaker/exceptions.py, 'Could not find model "<arn>".'). create_model and
create_endpoint_config rely on these helpers to be idempotent without ever taking an
unrelated error for "absent" (which would create a second resource) or a lost race for
"created" (which would skip the check that the existing model is the same one)."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from lambda_fixtures import ACCOUNT, REGION, stubbed_client
from pipeline_common.sagemaker import describe_or_none, ensure_created, is_not_found

NAME = "car-0123456789ab-model"
ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{NAME}"
NOT_FOUND = f'Could not find model "{ARN}".'
EXISTS = f'Cannot create already existing model "{ARN}".'
DESCRIPTION = {"ModelName": NAME, "ModelArn": ARN, "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
               "CreationTime": "2024-05-01T10:00:00Z"}
CREATE = {"ModelName": NAME, "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
          "Containers": [{"Image": "123.dkr.ecr.us-east-1.amazonaws.com/x:1"}]}


@pytest.fixture
def sagemaker():
    with stubbed_client("sagemaker") as pair:
        yield pair


def test_an_error_without_an_error_block_is_not_taken_for_not_found():
    # botocore's ClientError tolerates a response without "Error"; so must the check, rather
    # than hide the original error behind an AttributeError.
    assert is_not_found(ClientError({}, "DescribeModel")) is False


def test_another_validation_error_from_describe_is_raised_not_read_as_absent(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_model", "ValidationException",
                             "1 validation error detected: Value at 'modelName' failed to satisfy constraint",
                             expected_params={"ModelName": NAME})
    with pytest.raises(ClientError, match="failed to satisfy constraint"):
        describe_or_none(client.describe_model, ModelName=NAME)


def test_could_not_find_in_another_error_is_not_read_as_absent(sagemaker):
    # A throttled describe whose message happens to mention a missing thing is still an error.
    client, stubber = sagemaker
    stubber.add_client_error("describe_model", "ThrottlingException", "Could not find capacity; rate exceeded",
                             expected_params={"ModelName": NAME})
    with pytest.raises(ClientError, match="rate exceeded"):
        describe_or_none(client.describe_model, ModelName=NAME)


def test_a_missing_resource_is_none(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_model", "ValidationException", NOT_FOUND, expected_params={"ModelName": NAME})
    assert describe_or_none(client.describe_model, ModelName=NAME) is None


def test_a_lost_creation_race_reports_the_winner_as_existing(sagemaker):
    # Another invocation created the model between our describe and create: the caller must
    # compare that model with its own (created=False), not assume it made it.
    client, stubber = sagemaker
    stubber.add_client_error("describe_model", "ValidationException", NOT_FOUND, expected_params={"ModelName": NAME})
    stubber.add_client_error("create_model", "ValidationException", EXISTS, expected_params=CREATE)
    stubber.add_response("describe_model", DESCRIPTION, expected_params={"ModelName": NAME})
    existing, created = ensure_created(client.describe_model, client.create_model, {"ModelName": NAME}, CREATE)
    assert created is False
    assert existing["ModelArn"] == ARN


def test_exists_but_cannot_be_described_names_the_resource(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_model", "ValidationException", NOT_FOUND, expected_params={"ModelName": NAME})
    stubber.add_client_error("create_model", "ValidationException", EXISTS, expected_params=CREATE)
    stubber.add_client_error("describe_model", "ValidationException", NOT_FOUND, expected_params={"ModelName": NAME})
    with pytest.raises(RuntimeError, match=f"exists but cannot describe it: .*{NAME}"):
        ensure_created(client.describe_model, client.create_model, {"ModelName": NAME}, CREATE)
