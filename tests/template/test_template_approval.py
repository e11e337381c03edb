"""The approval flow's deployed guards: which state-table items each role may
touch, a per-client rate limit in front of the approval pages, and client
timeouts that let the approval function finish inside its own Timeout.

Checked against AWS's own encodings where one exists (botocore's service
models and retry code) and the IAM User Guide's condition semantics,
encoded in template_support.condition_holds.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

import botocore.session
import pytest
from botocore.retries.standard import ExponentialBackoff
from template_support import ACCOUNT, REGION, REPO_ROOT, condition_holds, iam_allows_request, load_module, role_statements

from test_template_iam import LAMBDA_ROLES

# ---------------------------------------------------------------- the condition evaluator itself


@pytest.mark.parametrize("condition, context, holds", [
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition_examples-multi-valued-context-keys.html
    # "every value in the request context must match at least one value in the policy" ...
    ({"ForAllValues:StringLike": {"aws:TagKeys": "key1*"}}, {"aws:TagKeys": ["key1:legal"]}, True),
    ({"ForAllValues:StringLike": {"aws:TagKeys": "key1*"}}, {"aws:TagKeys": ["key1:hr", "key2:audit"]}, False),
    # ... "The ForAllValues set operator also returns true if there are no context keys in the request."
    ({"ForAllValues:StringLike": {"aws:TagKeys": "key1*"}}, {}, True),
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
    # ForAnyValue: "at least one ... matches"; "returns false" when the key is absent.
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["c", "b"]}, True),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {}, False),
    # Single-valued operators: policy values ORed, the key must be present.
    ({"StringEquals": {"kms:ViaService": ["s3.x", "sns.x"]}}, {"kms:ViaService": "sns.x"}, True),
    ({"StringEquals": {"kms:ViaService": ["s3.x", "sns.x"]}}, {}, False),
    ({"Null": {"dynamodb:LeadingKeys": "false"}}, {}, False),
])
def test_condition_evaluator_follows_the_iam_user_guide(condition, context, holds):
    assert condition_holds(condition, context) is holds


# ---------------------------------------------------------------- state table items per role

DYNAMODB_ITEM_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                         "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:Query", "dynamodb:Scan"]
APPROVAL_ITEM = "approval#" + "0f" * 32


@pytest.fixture(scope="module")
def table_arn(resolver) -> str:
    return resolver.get_att("StateTable", "Arn")


@pytest.fixture(scope="module")
def production_item(resolver) -> str:
    return "production#" + resolver.ref("ProductionEndpointName")


def _allowed(resolver, role, action, arn, keys) -> bool:
    # dynamodb:LeadingKeys: the partition key values the request names
    # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html).
    return iam_allows_request(role_statements(resolver, role), action, arn, {"dynamodb:LeadingKeys": keys})


@pytest.mark.parametrize("role, actions, own, other", [
    ("ApprovalApiRole", ["dynamodb:GetItem", "dynamodb:UpdateItem"], "approval", "production"),
    ("RequestApprovalRole", ["dynamodb:PutItem"], "approval", "production"),
    ("DeployProductionRole", ["dynamodb:GetItem", "dynamodb:UpdateItem"], "production", "approval"),
])
def test_each_role_reaches_only_its_own_items_of_the_state_table(resolver, table_arn, production_item,
                                                                  role, actions, own, other):
    items = {"approval": APPROVAL_ITEM, "production": production_item}
    for action in actions:
        assert _allowed(resolver, role, action, table_arn, [items[own]]), (role, action)
        assert not _allowed(resolver, role, action, table_arn, [items[other]]), (role, action, other)
        assert not _allowed(resolver, role, action, table_arn, [items[own], items[other]]), "a batch naming both"


def test_only_deploy_production_can_touch_the_production_lock(resolver, table_arn, production_item):
    def roles_that(actions):
        return sorted({
            role for role in [*LAMBDA_ROLES, "StateMachineRole", "SageMakerExecutionRole", "GlueJobRole"]
            for action in actions
            if _allowed(resolver, role, action, table_arn, [production_item])
        })

    assert roles_that([a for a in DYNAMODB_ITEM_ACTIONS if a != "dynamodb:GetItem"]) == ["DeployProductionRole"]
    # check_status reads who holds it (a newer run's deployment is not a rollback); it cannot change it.
    assert roles_that(["dynamodb:GetItem"]) == ["CheckStatusRole", "DeployProductionRole"]
    assert not _allowed(resolver, "CheckStatusRole", "dynamodb:GetItem", table_arn, [APPROVAL_ITEM])


def test_every_state_table_grant_names_the_items_it_may_touch(template, resolver, table_arn):
    """A grant on the table without a LeadingKeys condition would reach every item."""
    for role in LAMBDA_ROLES:
        for statement in role_statements(resolver, role):
            resources = statement.get("Resource", [])
            if table_arn in (resources if isinstance(resources, list) else [resources]):
                leading = statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
                assert leading, f"{role}/{statement.get('Sid')} reaches every item of the state table"


# ---------------------------------------------------------------- per-client rate limit

def _wafv2_shapes() -> dict:
    return botocore.session.get_session().get_service_model("wafv2")._shape_resolver._shape_map


def test_a_per_client_rate_limit_guards_the_approval_stage(template, resolver):
    """The stage throttle is one bucket per method shared by every client; a rate-based
    WAF rule counts each client IP on its own, before API Gateway sees the request
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-control-access-aws-waf.html)."""
    resources = template["Resources"]
    api = resources["ApprovalApi"]["Properties"]
    stage_arn = f"arn:aws:apigateway:{REGION}::/restapis/{resolver.ref('ApprovalApi')}/stages/{api['StageName']}"
    associations = [resolver.resolve(r["Properties"]) for r in resources.values() if r["Type"] == "AWS::WAFv2::WebACLAssociation"]
    [association] = [a for a in associations if a["ResourceArn"] == stage_arn]
    [(acl_id, acl)] = [(k, r["Properties"]) for k, r in resources.items()
                       if r["Type"] == "AWS::WAFv2::WebACL" and resolver.get_att(k, "Arn") == association["WebACLArn"]]
    assert acl["Scope"] == "REGIONAL"  # API Gateway takes regional web ACLs only (same page)

    [rule] = [r for r in acl["Rules"] if "RateBasedStatement" in r["Statement"]]
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP" and "ScopeDownStatement" not in rate  # every request, per client
    assert "Block" in rule["Action"]
    # Valid values as botocore's model of WAFV2 states them.
    shapes = _wafv2_shapes()
    assert shapes["RateLimit"]["min"] <= rate["Limit"] <= shapes["RateLimit"]["max"]
    window_doc = shapes["RateBasedStatement"]["members"]["EvaluationWindowSec"]["documentation"]
    assert str(rate["EvaluationWindowSec"]) in re.findall(r"\b\d+\b", window_doc.split("Valid settings are", 1)[1])

    # A person needs a handful of requests; one client held at its limit must use only a small share of
    # the stage's throttle, so a single flood cannot fill it.
    [default] = [m for m in api["MethodSettings"] if m["ResourcePath"] == "/*" and m["HttpMethod"] == "*"]
    per_client_per_second = rate["Limit"] / rate["EvaluationWindowSec"]
    assert rate["Limit"] >= 10
    assert default["ThrottlingRateLimit"] >= 10 * per_client_per_second

    # The reference is in every request URI: WAF must neither sample nor log requests.
    for visibility in (acl["VisibilityConfig"], rule["VisibilityConfig"]):
        assert visibility["SampledRequestsEnabled"] is False
    assert not [r for r in resources.values() if r["Type"] == "AWS::WAFv2::LoggingConfiguration"]


# ---------------------------------------------------------------- timeouts inside the function's Timeout

@pytest.fixture(scope="module")
def approval_module():
    return load_module(REPO_ROOT / "functions" / "approval_api" / "app.py", "approval_api_for_template_tests")


def _worst_case_seconds(config) -> float:
    """Every attempt waiting out its connect and read timeouts, plus botocore's
    largest standard-mode backoff between attempts (its own ExponentialBackoff, rand = 1)."""
    assert config.retries["mode"] == "standard"
    attempts = config.retries["total_max_attempts"]
    backoff = ExponentialBackoff(random=lambda: 1.0)
    delays = sum(backoff.delay_amount(SimpleNamespace(attempt_number=n)) for n in range(1, attempts))
    return attempts * (config.connect_timeout + config.read_timeout) + delays


def test_a_callback_and_its_bookkeeping_give_up_inside_the_functions_timeout(functions, approval_module, monkeypatch):
    timeout = functions["ApprovalApiFunction"]["Properties"]["Timeout"]
    # API Gateway REST waits 29 s for its integration by default (TimeoutInMillis; the quota
    # "Maximum integration timeout": https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html).
    assert timeout <= 29
    sfn, dynamodb = approval_module.SFN_CONFIG, approval_module.DYNAMODB_CONFIG
    assert sfn.retries["total_max_attempts"] >= 2, "a lost answer must be retried"
    needed = _worst_case_seconds(sfn) + _worst_case_seconds(dynamodb)
    assert needed < timeout
    assert approval_module.DELIVERY_BUDGET_SECONDS == needed  # what the function waits for before it calls

    # And the deployed clients are built with them.
    monkeypatch.setenv("STATE_TABLE", "t")
    deps = approval_module.dependencies.__wrapped__()
    for client, config in ((deps.sfn, sfn), (deps.dynamodb, dynamodb)):
        assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (config.connect_timeout, config.read_timeout)
        assert client.meta.config.retries == config.retries


def test_the_approval_role_may_read_only_its_own_pipelines_history(resolver):
    statements = role_statements(resolver, "ApprovalApiRole")
    own = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{resolver.ref('AWS::StackName')}-pipeline:car-0123456789ab"
    other = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:someone-elses-machine:run-1"
    assert iam_allows_request(statements, "states:GetExecutionHistory", own, {})
    assert not iam_allows_request(statements, "states:GetExecutionHistory", other, {})
