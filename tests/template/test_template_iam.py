"""Least privilege: no wildcard actions, `*` resources only where AWS offers
no resource-level permission, and each function's role holding exactly the
calls docs/architecture.md lists for it."""
from __future__ import annotations

import re

import pytest
from template_support import ACCOUNT, REGION, REPO_ROOT, iam_allows, role_statements

# Actions that have no resource-level permissions in IAM: a statement granting them must say "*".
NO_RESOURCE_LEVEL = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    "ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "states:SendTaskSuccess", "states:SendTaskFailure",
    # No resource types in the Service Authorization Reference's SageMaker table
    # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html); AWS's own
    # AmazonSageMakerModelRegistryFullAccess policy grants it on "*" as well.
    "sagemaker:ListModelPackages",
}
# Actions AWS documents on "*" for a Step Functions integration although IAM could scope them
# (https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html): the role follows the page.
DOCUMENTED_ON_STAR = {"StateMachineRole": {"sagemaker:ListTags"}}
# Lambda role -> the function folder whose "Calls:" section in docs/architecture.md it implements.
LAMBDA_ROLES = {
    "StartRunRole": "start_run", "ResolveDatasetRole": "resolve_dataset", "PrepareTrainingRole": "prepare_training", "CreateModelRole": "create_model",
    "CreateEndpointConfigRole": "create_endpoint_config", "QATestRole": "qa_test",
    "RequestApprovalRole": "request_approval", "ApprovalApiRole": "approval_api",
    "DeployProductionRole": "deploy_production", "CleanupRole": "cleanup",
    "RecoverTrainingRole": "recover_training", "CreateQAEndpointRole": "create_qa_endpoint",
    "CheckStatusRole": "check_status", "RegisterModelRole": "register_model", "RecordDecisionRole": "record_decision",
    "PrepareRollbackRole": "prepare_rollback",
}
# What every function's role has besides its documented calls: its log group, X-Ray, and
# KMS for the stack key behind its encrypted S3/DynamoDB/SNS/SQS calls.
PLUMBING = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords",
            "kms:Decrypt", "kms:GenerateDataKey"}
CONDITION_KEYS = {"iam:PassedToService"}


def policy_documents(template):
    """(where, statement) for every policy document the template writes."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        for policy in props.get("Policies", []):
            if isinstance(policy, dict) and "PolicyDocument" in policy:
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield f"{logical_id}/{policy['PolicyName']}", statement
        for key in ("PolicyDocument", "KeyPolicy"):
            if key in props:
                for statement in props[key]["Statement"]:
                    yield f"{logical_id}/{key}", statement


def as_list(value):
    return [value] if isinstance(value, (str, dict)) else list(value)


def test_no_policy_allows_a_wildcard_action(template):
    offenders = [
        (where, action)
        for where, statement in policy_documents(template) if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]) if action == "*" or action.endswith(":*") or "*" in action
    ]
    assert not offenders, offenders


def test_star_resources_only_for_actions_without_resource_level_permissions(template):
    offenders = []
    for where, statement in policy_documents(template):
        if statement["Effect"] != "Allow" or "*" not in as_list(statement.get("Resource", [])):
            continue
        if where.endswith("/KeyPolicy"):
            continue  # in a key policy "*" means this key
        extra = set(as_list(statement["Action"])) - NO_RESOURCE_LEVEL - DOCUMENTED_ON_STAR.get(where.split("/")[0], set())
        if extra:
            offenders.append((where, sorted(extra)))
    assert not offenders, offenders


def test_no_principal_outside_this_account(template):
    for where, statement in policy_documents(template):
        if statement["Effect"] == "Allow" and "Principal" in statement:
            principal = statement["Principal"]
            assert principal != "*" and principal != {"AWS": "*"}, where


def documented_calls(folder: str) -> set[str]:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    section = re.search(rf"^### {re.escape(folder)}\b.*?(?=^### |^## |\Z)", text, re.M | re.S)
    assert section, f"docs/architecture.md has no '### {folder}' section"
    calls = re.search(r"^- Calls:(.*?)(?=^- |\Z)", section.group(0), re.M | re.S)
    assert calls, f"the {folder} section lists no '- Calls:'"
    actions = set(re.findall(r"`([a-z0-9-]+:[A-Z][A-Za-z]+)`", calls.group(1)))
    return actions - CONDITION_KEYS


@pytest.mark.parametrize("role, folder", sorted(LAMBDA_ROLES.items()))
def test_function_role_grants_exactly_the_documented_calls(resolver, role, folder):
    granted = set()
    for statement in role_statements(resolver, role):
        if statement["Effect"] == "Allow":
            granted |= set(as_list(statement["Action"]))
    documented = documented_calls(folder)
    if folder == "start_run":
        documented |= {"sqs:SendMessage"}  # its asynchronous-invocation dead-letter queue
    assert documented - granted == set(), f"{role} lacks documented calls: {sorted(documented - granted)}"
    assert granted - documented - PLUMBING == set(), f"{role} grants undocumented calls: {sorted(granted - documented - PLUMBING)}"


def test_every_function_uses_its_own_role_and_log_group(functions):
    roles = {props["Properties"]["Role"]["Fn::GetAtt"][0] for props in functions.values()}
    assert len(roles) == len(functions), "two functions share a role"
    assert roles == set(LAMBDA_ROLES)


SAGEMAKER = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"


def test_cleanup_can_delete_qa_endpoints_but_never_production(resolver):
    statements = role_statements(resolver, "CleanupRole")
    production = resolver.ref("ProductionEndpointName")
    assert iam_allows(statements, "sagemaker:DeleteEndpoint", f"{SAGEMAKER}:endpoint/car-8f14e45fceea-qa")
    assert not iam_allows(statements, "sagemaker:DeleteEndpoint", f"{SAGEMAKER}:endpoint/{production}")


def test_production_endpoint_name_cannot_look_like_a_qa_endpoint(template):
    pattern = template["Parameters"]["ProductionEndpointName"]["AllowedPattern"]
    assert re.match(pattern, "car-evaluation")
    assert not re.match(pattern, "car-evaluation-qa"), "cleanup's role could then delete production"
    assert not re.match(pattern, "Car-Evaluation"), "SageMaker ARNs are lower case; IAM would not match"


def test_only_deploy_production_changes_the_production_endpoint(resolver):
    production = f"{SAGEMAKER}:endpoint/{resolver.ref('ProductionEndpointName')}"
    can_change = [
        role for role in [*LAMBDA_ROLES, "StateMachineRole", "SageMakerExecutionRole"]
        if any(iam_allows(role_statements(resolver, role), action, production)
               for action in ("sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint"))
    ]
    assert can_change == ["DeployProductionRole"]


def test_qa_test_can_invoke_qa_endpoints_and_only_read_production(resolver):
    """Champion versus challenger sends the held-out rows to production too; nothing else of production,
    and no other endpoint."""
    statements = role_statements(resolver, "QATestRole")
    production = f"{SAGEMAKER}:endpoint/{resolver.ref('ProductionEndpointName')}"
    assert iam_allows(statements, "sagemaker:InvokeEndpoint", f"{SAGEMAKER}:endpoint/car-8f14e45fceea-qa")
    assert iam_allows(statements, "sagemaker:InvokeEndpoint", production)
    assert iam_allows(statements, "sagemaker:DescribeEndpoint", production)
    assert not iam_allows(statements, "sagemaker:InvokeEndpoint", f"{SAGEMAKER}:endpoint/someone-elses-endpoint")
    for action in ("sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint", "sagemaker:CreateEndpoint"):
        assert not iam_allows(statements, action, production)


def test_sagemaker_execution_role_reads_runs_and_writes_only_training_output(resolver):
    statements = role_statements(resolver, "SageMakerExecutionRole")
    bucket = resolver.get_att("ArtifactsBucket", "Arn")
    assert iam_allows(statements, "s3:GetObject", f"{bucket}/runs/car-1/model/preprocess/model.tar.gz")
    assert iam_allows(statements, "s3:PutObject", f"{bucket}/runs/car-1/training/car-1-train/output/model.tar.gz")
    assert not iam_allows(statements, "s3:PutObject", f"{bucket}/runs/car-1/manifest.json")
    assert not iam_allows(statements, "s3:GetObject", f"{resolver.get_att('InputBucket', 'Arn')}/input/car.csv")


def test_glue_reads_only_the_input_prefix_and_writes_only_runs(resolver):
    statements = role_statements(resolver, "GlueJobRole")
    prefix = resolver.ref("InputPrefix")
    assert iam_allows(statements, "s3:GetObject", f"{resolver.get_att('InputBucket', 'Arn')}/{prefix}car.csv")
    assert not iam_allows(statements, "s3:GetObject", f"{resolver.get_att('InputBucket', 'Arn')}/elsewhere/car.csv")
    artifacts = resolver.get_att("ArtifactsBucket", "Arn")
    assert iam_allows(statements, "s3:PutObject", f"{artifacts}/runs/car-1/manifest.json")
    assert not iam_allows(statements, "s3:PutObject", f"{artifacts}/deps/datasets/car.json")
    script = "arn:aws:s3:::aws-sam-cli-managed-default-samclisourcebucket-1a2b3c/car-ml-pipeline/0123abcd"
    assert iam_allows(statements, "s3:GetObject", script), "Glue could not read the script sam deploy uploaded"


# Every SageMaker name a run builds from its dataset's production endpoint (pipeline_common.names,
# deploy_production, register_model): the endpoint, its model package group and the group's versions.
# ARN formats from the Service Authorization Reference's SageMaker resource types
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html#amazonsagemaker-resources-for-iam-policies).
def _per_endpoint_arns(endpoint: str) -> list[str]:
    return [f"{SAGEMAKER}:endpoint/{endpoint}", f"{SAGEMAKER}:model-package-group/{endpoint}",
            f"{SAGEMAKER}:model-package/{endpoint}/3"]


def _other_datasets_endpoint(resolver) -> str:
    from pipeline_common.datasets import production_endpoint_for

    return production_endpoint_for("penguins", resolver.ref("DefaultDataset"), resolver.ref("ProductionEndpointName"),
                                   resolver.ref("ProductionEndpointSuffix"))


def _sagemaker_actions(statements: list[dict]) -> set[str]:
    return {a for s in statements for a in as_list(s.get("Action", [])) if a.startswith("sagemaker:")}


@pytest.mark.parametrize("role", sorted(LAMBDA_ROLES) + ["StateMachineRole", "CleanupStateMachineRole"])
def test_a_grant_on_the_default_datasets_names_covers_every_datasets_names(resolver, role):
    """The second audit's blocker: QATestRole could describe only DefaultDataset's production endpoint, so every
    other dataset's run was denied at RunQATests. Whatever a role may do to the default dataset's endpoint,
    package group or versions, it may do to another dataset's, named as the code names them."""
    if role not in resolver.resources:
        pytest.skip(f"{role} is not in this template")
    statements = role_statements(resolver, role)
    default, other = resolver.ref("ProductionEndpointName"), _other_datasets_endpoint(resolver)
    missing = [(action, theirs) for action in sorted(_sagemaker_actions(statements))
               for ours, theirs in zip(_per_endpoint_arns(default), _per_endpoint_arns(other))
               if iam_allows(statements, action, ours) and not iam_allows(statements, action, theirs)]
    assert missing == []


@pytest.fixture
def load_qa_test():
    """functions/qa_test/app.py as local mode loads it (the layer on the path, as /opt/python on Lambda)."""
    from localmode.lambdas import LocalLambdas

    return LocalLambdas(region=REGION).module("qa_test")


def test_qa_compares_another_datasets_production_under_its_own_role(resolver, load_qa_test):
    """The real qa_test code, under QATestRole's policy, on a dataset that is not DefaultDataset and has no
    production endpoint yet: SageMaker must be asked (and answer "Could not find endpoint"), which it is only
    if IAM allows the call first. IAM denies what no statement allows (implicit deny:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html), before the
    service looks the resource up, and answers AccessDeniedException (SageMaker's error for it:
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html)."""
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    statements = role_statements(resolver, "QATestRole")
    endpoint = _other_datasets_endpoint(resolver)
    denied = []

    def enforce(params, model, **_):
        action = f"sagemaker:{model.name}"
        arn = f"{SAGEMAKER}:endpoint/{params['EndpointName'].lower()}"
        if not iam_allows(statements, action, arn):
            denied.append((action, arn))
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": f"not authorized to perform: "
                                         f"{action} on resource: {arn}"}}, model.name)

    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.meta.events.register("provide-client-params.sagemaker.DescribeEndpoint", enforce)
        compared, note = load_qa_test.production_to_compare(sagemaker, endpoint)
    assert denied == []
    assert (compared, note) == (False, f"no production endpoint {endpoint} yet: this is the dataset's first model")
