"""localmode.iam.evaluate against the examples and rules of AWS's IAM documentation, each cited.

Evaluation logic: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
Condition operators: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
Multivalued keys: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
"""
from __future__ import annotations

import pytest

from localmode.iam.evaluate import EXPLICIT_DENY, IMPLICIT_DENY, Policy, Request, arn_like, evaluate

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
BUCKET_OBJECT = "arn:aws:s3:::amzn-s3-demo-bucket/reports/q1.csv"


def identity(*statements: dict) -> list[Policy]:
    return [Policy({"Version": "2012-10-17", "Statement": list(statements)}, "app/inline")]


def request(action: str, resource: str = "*", known=(), **context) -> Request:
    return Request(ROLE, action, resource, {k.replace("__", ":"): v for k, v in context.items()}, frozenset(known))


def decide(statements, req, resource_policy=None, key=False):
    return evaluate(req, identity(*statements), resource_policy, ACCOUNT, key_policy_required=key)


ALLOW_GET = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*"}


def test_no_statement_allows_and_the_request_is_implicitly_denied():
    # "By default, all requests are implicitly denied."
    assert decide([], request("s3:GetObject", BUCKET_OBJECT)).effect == IMPLICIT_DENY


def test_an_explicit_deny_overrides_any_allow():
    # "An explicit deny in any policy overrides any allows."
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    decision = decide([ALLOW_GET, deny], request("s3:GetObject", BUCKET_OBJECT))
    assert decision.effect == EXPLICIT_DENY and decision.statements == ["app/inline#1"]


def test_action_names_match_case_insensitively_and_resources_case_sensitively():
    # Action values are case-insensitive (reference_policies_elements_action.html); ARNs are case-sensitive
    # (reference_policies_elements_resource.html: "resource ARNs are case sensitive").
    assert decide([ALLOW_GET], request("S3:getobject", BUCKET_OBJECT)).allowed
    assert not decide([ALLOW_GET], request("s3:GetObject", BUCKET_OBJECT.replace("reports", "Reports").upper())).allowed


def test_not_action_allows_everything_but_the_listed_actions():
    # reference_policies_elements_notaction.html: Allow with NotAction "iam:*" allows all other services' actions.
    statement = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    assert decide([statement], request("s3:GetObject", BUCKET_OBJECT)).allowed
    assert decide([statement], request("iam:PassRole", ROLE)).effect == IMPLICIT_DENY


def test_not_resource_with_deny_denies_everything_but_the_listed_resources():
    # reference_policies_elements_notresource.html: Deny + NotResource denies the action on every other resource.
    statements = [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                  {"Effect": "Deny", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::amzn-s3-demo-bucket/*"}]
    assert decide(statements, request("s3:GetObject", BUCKET_OBJECT)).allowed
    assert decide(statements, request("s3:GetObject", "arn:aws:s3:::other/x")).effect == EXPLICIT_DENY


def test_several_values_of_a_key_are_or_and_several_keys_are_and():
    # reference_policies_condition-logic-multiple-context-keys-or-values.html
    statement = {**ALLOW_GET, "Condition": {"StringEquals": {"aws:PrincipalTag/team": ["a", "b"],
                                                              "aws:RequestedRegion": "us-east-1"}}}
    def tagged(team: str, region: str) -> Request:
        return Request(ROLE, "s3:GetObject", BUCKET_OBJECT, {"aws:PrincipalTag/team": team, "aws:RequestedRegion": region})

    assert decide([statement], tagged("b", "us-east-1")).allowed
    assert not decide([statement], tagged("b", "eu-west-1")).allowed
    assert not decide([statement], tagged("c", "us-east-1")).allowed


def test_string_like_matches_wildcards_and_a_missing_key_fails_the_condition():
    # "If the key that you specify in a policy condition is not present in the request context, the values do not
    # match and the condition is false."
    statement = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::amzn-s3-demo-bucket",
                 "Condition": {"StringLike": {"s3:prefix": "runs/*"}}}
    bucket = "arn:aws:s3:::amzn-s3-demo-bucket"
    assert decide([statement], request("s3:ListBucket", bucket, ["s3:prefix"], s3__prefix="runs/a/b")).allowed
    assert not decide([statement], request("s3:ListBucket", bucket, ["s3:prefix"], s3__prefix="models/a")).allowed
    assert not decide([statement], request("s3:ListBucket", bucket, ["s3:prefix"])).allowed


def test_a_negated_operator_holds_when_the_key_is_missing_and_if_exists_holds_too():
    # "If the policy condition requires that the key is not matched, such as StringNotLike or ArnNotLike, and the
    # right key is not present, the condition is true." ...IfExists: "If the key is not present, evaluate as true."
    not_like = {**ALLOW_GET, "Condition": {"StringNotLike": {"aws:SourceVpce": "vpce-1*"}}}
    if_exists = {**ALLOW_GET, "Condition": {"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1a2b"}}}
    absent = request("s3:GetObject", BUCKET_OBJECT, ["aws:SourceVpce"])
    assert decide([not_like], absent).allowed and decide([if_exists], absent).allowed
    other = request("s3:GetObject", BUCKET_OBJECT, ["aws:SourceVpce"], aws__SourceVpce="vpce-9")
    assert decide([not_like], other).allowed and not decide([if_exists], other).allowed


def test_for_all_values_holds_for_an_absent_key_and_for_any_value_does_not():
    # "ForAllValues ... also returns true if there are no context keys in the request"; ForAnyValue needs one.
    all_values = {**ALLOW_GET, "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": ["env*"]}}}
    any_value = {**ALLOW_GET, "Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": ["env*"]}}}
    absent = request("s3:GetObject", BUCKET_OBJECT, ["aws:TagKeys"])
    assert decide([all_values], absent).allowed and not decide([any_value], absent).allowed
    mixed = request("s3:GetObject", BUCKET_OBJECT, ["aws:TagKeys"], aws__TagKeys=["env", "owner"])
    assert not decide([all_values], mixed).allowed and decide([any_value], mixed).allowed


def test_dynamodb_leading_keys_restrict_the_items_a_role_touches():
    # The DynamoDB guide's fine-grained example: ForAllValues:StringEquals on dynamodb:LeadingKeys limits access
    # to items whose partition key is the allowed value
    # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html).
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/GameScores"
    statement = {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": table,
                 "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["approval#*"]}}}
    mine = request("dynamodb:GetItem", table, ["dynamodb:LeadingKeys"], dynamodb__LeadingKeys=["approval#run-1"])
    theirs = request("dynamodb:PutItem", table, ["dynamodb:LeadingKeys"], dynamodb__LeadingKeys=["production#car"])
    assert decide([statement], mine).allowed and not decide([statement], theirs).allowed


def test_bool_secure_transport_false_denies_plain_http_only():
    # The TLS-only bucket policy of the S3 guide (example-bucket-policies.html#example-bucket-policies-use-case-8).
    tls_only = Policy({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                                      "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
                                      "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}, "bucket", True)
    https = request("s3:GetObject", BUCKET_OBJECT, aws__SecureTransport=True)
    http = request("s3:GetObject", BUCKET_OBJECT, aws__SecureTransport=False)
    assert decide([ALLOW_GET], https, tls_only).allowed
    decision = decide([ALLOW_GET], http, tls_only)
    assert decision.effect == EXPLICIT_DENY and decision.denied_by_resource_policy


def test_pass_role_is_allowed_only_to_the_named_service():
    # id_roles_use_passrole.html: iam:PassedToService limits which service a role may be passed to.
    statement = {"Effect": "Allow", "Action": "iam:PassRole", "Resource": ROLE,
                 "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}}
    keys = ["iam:PassedToService"]
    assert decide([statement], request("iam:PassRole", ROLE, keys, iam__PassedToService="sagemaker.amazonaws.com")).allowed
    assert not decide([statement], request("iam:PassRole", ROLE, keys, iam__PassedToService="ec2.amazonaws.com")).allowed


def test_a_same_account_resource_policy_naming_the_role_allows_without_an_identity_policy():
    # "Within a single account ... if an identity-based policy or a resource-based policy allows, the request is
    # allowed" (evaluation logic, "Identity-based policies with resource-based policies").
    names_role = Policy({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "sns:Publish",
                                        "Resource": "arn:aws:sns:us-east-1:111122223333:t"}]}, "topic", True)
    names_account = Policy({"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                           "Action": "sns:Publish", "Resource": "*"}]}, "topic", True)
    publish = request("sns:Publish", "arn:aws:sns:us-east-1:111122223333:t")
    assert decide([], publish, names_role).allowed
    # Naming the account delegates to IAM: it grants nothing by itself.
    assert decide([], publish, names_account).effect == IMPLICIT_DENY


def test_a_kms_key_policy_must_allow_directly_or_delegate_to_iam():
    # key-policy-default.html: the default key policy's statement for the account root "enables IAM policies";
    # without it, IAM policies alone do not give access to the key.
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd"
    allow_iam = {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key}
    delegating = Policy({"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                        "Action": "kms:*", "Resource": "*"}]}, "key", True)
    other_principal = Policy({"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/x"},
                                             "Action": "kms:*", "Resource": "*"}]}, "key", True)
    decrypt = request("kms:Decrypt", key)
    assert decide([allow_iam], decrypt, delegating, key=True).allowed
    assert not decide([], decrypt, delegating, key=True).allowed
    denied = decide([allow_iam], decrypt, other_principal, key=True)
    assert denied.effect == IMPLICIT_DENY and denied.missing_key_policy


def test_a_condition_key_the_request_cannot_know_denies_and_is_named():
    statement = {**ALLOW_GET, "Condition": {"StringEquals": {"s3:ExistingObjectTag/state": "production"}}}
    decision = decide([statement], request("s3:GetObject", BUCKET_OBJECT))
    assert decision.effect == IMPLICIT_DENY and decision.unknown_keys == ["s3:ExistingObjectTag/state"]


@pytest.mark.parametrize("pattern, arn, expected", [
    # ArnLike: "Each of the six colon-delimited components of the ARN is checked separately".
    ("arn:aws:sagemaker:*:*:endpoint/*-prod", "arn:aws:sagemaker:us-east-1:111122223333:endpoint/penguins-prod", True),
    ("arn:aws:sagemaker:*:*:endpoint/*-prod", "arn:aws:sagemaker:us-east-1:111122223333:endpoint/penguins-qa", False),
    ("arn:aws:events:*:111122223333:rule/*", "arn:aws:events:us-east-1:444455556666:rule/r", False),
])
def test_arn_like_matches_each_part_of_the_arn_on_its_own(pattern, arn, expected):
    assert arn_like(pattern, arn) is expected


def test_a_key_aws_never_sets_for_the_action_is_absent_not_unknown():
    # The reference lists no s3:prefix for s3:GetObject: the condition simply does not match.
    statement = {**ALLOW_GET, "Condition": {"StringLike": {"s3:prefix": "runs/*"}}}
    never_set = Request(ROLE, "s3:GetObject", BUCKET_OBJECT, applicable_keys=frozenset({"s3:existingobjecttag/*"}))
    may_be_set = Request(ROLE, "s3:GetObject", BUCKET_OBJECT, applicable_keys=frozenset({"s3:prefix"}))
    assert decide([statement], never_set).unknown_keys == []
    assert decide([statement], may_be_set).unknown_keys == ["s3:prefix"]
