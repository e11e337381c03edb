"""How SageMaker reports 'no such resource' and 'already exists': both are
ValidationExceptions told apart only by their message."""
from __future__ import annotations

from botocore.exceptions import ClientError


# DescribeEndpoint says "Could not find endpoint ..."; DescribeTrainingJob says
# "Requested resource not found." (both ValidationException, not ResourceNotFound:
# https://github.com/aws/aws-sdk/issues/165); the model registry's describes say
# "... does not exist" (moto 5.2.5: "ModelPackageGroup <arn> does not exist.",
# "Model package <arn> not found").
_NOT_FOUND_MESSAGES = ("Could not find", "Requested resource not found", "does not exist", " not found")


def is_not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ValidationException" and any(
        text in str(error) for text in _NOT_FOUND_MESSAGES
    )


def is_already_exists(error: ClientError) -> bool:
    return "already exist" in str(error)


def describe_or_none(describe, **kwargs) -> dict | None:
    """Call a SageMaker Describe* operation; None when the resource does not exist."""
    try:
        return describe(**kwargs)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def ensure_created(describe, create, describe_kwargs: dict, create_kwargs: dict) -> tuple[dict | None, bool]:
    """Create a resource unless it exists. Returns (existing description or
    None, created). A concurrent creator winning the race counts as existing."""
    existing = describe_or_none(describe, **describe_kwargs)
    if existing is not None:
        return existing, False
    try:
        create(**create_kwargs)
        return None, True
    except ClientError as error:
        if not is_already_exists(error):
            raise
    existing = describe_or_none(describe, **describe_kwargs)
    if existing is None:
        raise RuntimeError(f"SageMaker said the resource exists but cannot describe it: {describe_kwargs}")
    return existing, False
