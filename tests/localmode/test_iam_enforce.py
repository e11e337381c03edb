"""Local IAM on real boto3 calls to moto: who is calling, what AWS answers a denied call with, and where the
denial is recorded. The policies are template.yaml's, resolved as the local stack resolves them.

AWS's denial message: https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html
"""
from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from localmode import aws
from localmode.iam.enforce import Enforcer, acting_as, as_harness
from localmode.iam.policies import StackIam
from localmode.stack import LocalStack


@pytest.fixture
def local(tmp_path):
    with aws.local_aws():
        stack = LocalStack.from_file(parameter_overrides={"NotificationEmail": "you@example.com"})
        resources = aws.create_resources(stack, [])
        iam = StackIam(stack)
        enforcer = Enforcer(iam, stack.region, stack.account)
        with enforcer.installed():
            yield stack, iam, enforcer, resources


def test_a_call_outside_the_roles_grants_fails_with_awss_error_and_is_recorded(local):
    stack, iam, enforcer, resources = local
    qa = iam.function_principal("qa_test")
    with acting_as(qa, "RunQATests"):
        s3 = boto3.client("s3")
        with pytest.raises(ClientError) as raised:
            s3.get_object(Bucket=resources.artifacts_bucket, Key="deps/datasets/car.json")
    error = raised.value.response["Error"]
    resource = f"arn:aws:s3:::{resources.artifacts_bucket}/deps/datasets/car.json"
    assert error["Code"] == "AccessDenied" and raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Message"] == (f"User: {qa.session_arn} is not authorized to perform: s3:GetObject on resource: {resource} "
                                "because no identity-based policy allows the s3:GetObject action")
    [denial] = enforcer.denials
    assert (denial["principal"], denial["role"], denial["action"], denial["resource"], denial["state"]) == (
        "function qa_test", "QATestRole", "s3:GetObject", resource, "RunQATests")


def test_the_session_is_the_functions_name_and_the_role_its_physical_name(local):
    stack, iam, _, _ = local
    qa = iam.function_principal("qa_test")
    assert qa.session_arn == f"arn:aws:sts::{stack.account}:assumed-role/local-qatest-role/local-qa-test"


def test_each_service_answers_with_its_own_code_and_the_clients_modeled_class(local):
    stack, iam, _, resources = local
    with acting_as(iam.function_principal("qa_test")):
        sns, sagemaker, s3 = boto3.client("sns"), boto3.client("sagemaker"), boto3.client("s3")
        with pytest.raises(sns.exceptions.AuthorizationErrorException):
            sns.publish(TopicArn=resources.topic_arn, Message="not QA's to send")
        with pytest.raises(ClientError) as sagemaker_error:
            sagemaker.delete_endpoint(EndpointName="car-evaluation")
        with pytest.raises(ClientError) as head_error:
            s3.head_object(Bucket=resources.input_bucket, Key="input/car.data")
    # SageMaker's AccessDeniedException comes with status 400 (as quoted in aws/aws-cdk#26012).
    assert sagemaker_error.value.response["Error"]["Code"] == "AccessDeniedException"
    assert sagemaker_error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "sagemaker:DeleteEndpoint on resource: arn:aws:sagemaker:us-east-1:123456789012:endpoint/car-evaluation" in \
        sagemaker_error.value.response["Error"]["Message"]
    # A HEAD answer has no body: botocore reports the status alone.
    assert head_error.value.response["Error"] == {"Code": "403", "Message": "Forbidden"}


def test_a_missing_object_is_404_only_to_a_caller_that_may_list_the_bucket(local):
    # GetObject's "Permissions": without s3:ListBucket, S3 answers a missing key with 403 AccessDenied.
    _, iam, _, resources = local
    key = "runs/car-1/qa/report.json"
    with acting_as(iam.function_principal("qa_test")):  # ListTestSplit: s3:ListBucket for runs/*
        with pytest.raises(ClientError) as may_list:
            boto3.client("s3").get_object(Bucket=resources.artifacts_bucket, Key=key)
    with acting_as(iam.function_principal("request_approval")):  # reads runs/* but may not list
        with pytest.raises(ClientError) as may_not_list:
            boto3.client("s3").get_object(Bucket=resources.artifacts_bucket, Key=key)
    assert may_list.value.response["Error"]["Code"] == "NoSuchKey"
    assert may_not_list.value.response["Error"]["Code"] == "AccessDenied"
    assert "s3:ListBucket" in may_not_list.value.response["Error"]["Message"]


def test_a_transfer_on_pool_threads_is_checked_as_the_principal_that_made_the_client(local, tmp_path):
    _, iam, enforcer, resources = local
    boto3.client("s3").put_object(Bucket=resources.input_bucket, Key="elsewhere/car.data", Body=b"x")
    with acting_as(iam.glue_job_principal()):
        s3 = boto3.client("s3")
    # s3transfer downloads on its own threads, which act as nobody: the client's maker is the caller.
    with pytest.raises(ClientError):
        s3.download_file(resources.input_bucket, "elsewhere/car.data", str(tmp_path / "car.data"))
    assert {d["principal"] for d in enforcer.denials} == {"Glue job PreprocessJob"}


def test_the_harness_is_counted_not_checked(local):
    _, iam, enforcer, resources = local
    boto3.client("s3").list_objects_v2(Bucket=resources.artifacts_bucket)
    with acting_as(iam.function_principal("qa_test")), as_harness():
        boto3.client("sagemaker").list_endpoints()
    assert enforcer.denials == []
    assert enforcer.unchecked_calls["s3:ListObjectsV2"] == 1 and enforcer.unchecked_calls["sagemaker:ListEndpoints"] == 1
