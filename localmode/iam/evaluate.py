"""IAM policy evaluation for one request, as AWS documents it for a principal
and a resource in the same account:

https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html

- an explicit Deny in any applicable policy (identity- or resource-based) wins;
- otherwise an Allow in the identity-based policies or in the resource-based
  policy (when it names the principal) allows, except for KMS: a key policy
  must allow, by itself or by allowing the account (which delegates to IAM);
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
- otherwise the request is implicitly denied.

Statements match on Action/NotAction (case-insensitive, `*` and `?`),
Resource/NotResource (case-sensitive), Principal (resource-based policies)
and Condition, with the operators of
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
and the multivalued qualifiers of
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html

A condition key the request context cannot know (not in `known_keys`) makes
the statement undecidable: the request is denied and the key named, so a gap
in this model never reads as an allow.
"""
from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "Allow", "ExplicitDeny", "ImplicitDeny"


@dataclass(frozen=True)
class Policy:
    """One policy document and where it comes from (for reports: `<role>/<policy name>` or a resource's policy)."""

    document: dict
    source: str
    resource_based: bool = False


@dataclass
class Request:
    """What AWS authorizes: the principal's ARN, one action on one resource, and the request context.
    `context` keys are condition keys (any case); values are strings, booleans or lists (multivalued keys)."""

    principal: str
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)
    # Condition keys this request's context would carry if they applied (absent ones are absent, not unknown).
    known_keys: frozenset[str] = frozenset()
    # The condition keys AWS may set for this action (the Service Authorization Reference's; templates such as
    # aws:ResourceTag/${TagKey} stand for their family). A key outside them and outside `known_keys` is simply
    # absent; None: every key not in `known_keys` is unknown.
    applicable_keys: frozenset[str] | None = None


@dataclass
class Decision:
    effect: str
    request: Request
    # The statements that decided: the allowing ones for Allow, the denying ones for ExplicitDeny.
    statements: list[str] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)
    denied_by_resource_policy: bool = False
    missing_key_policy: bool = False

    @property
    def allowed(self) -> bool:
        return self.effect == ALLOW


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern:
    # fnmatch would also treat [...] as a class; IAM knows only * and ?.
    text = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{text}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return bool(_glob(str(pattern), ignore_case).match(str(value)))


def arn_like(pattern: str, arn: str) -> bool:
    """ArnLike: each of the ARN's six colon-separated parts matched on its own."""
    p_parts, a_parts = str(pattern).split(":", 5), str(arn).split(":", 5)
    if len(p_parts) != 6 or len(a_parts) != 6:
        return False
    return all(wildcard_match(p, a) for p, a in zip(p_parts, a_parts))


# --- condition operators ---------------------------------------------------------------

def _string_equals(policy: str, value: Any) -> bool:
    return str(policy) == str(value)


def _string_ignore_case(policy: str, value: Any) -> bool:
    return str(policy).lower() == str(value).lower()


def _string_like(policy: str, value: Any) -> bool:
    return wildcard_match(policy, value)


def _bool(policy: Any, value: Any) -> bool:
    return str(policy).lower() == str(value).lower()


def _numeric(compare):
    def match(policy: Any, value: Any) -> bool:
        try:
            return compare(float(value), float(policy))
        except (TypeError, ValueError):
            return False
    return match


def _ip(policy: Any, value: Any) -> bool:
    try:
        return ipaddress.ip_address(str(value)) in ipaddress.ip_network(str(policy), strict=False)
    except ValueError:
        return False


# Operator -> (how one policy value matches one context value, negated?)
_OPERATORS = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (arn_like, False),
    "ArnLike": (arn_like, False),
    "ArnNotEquals": (arn_like, True),
    "ArnNotLike": (arn_like, True),
    "Bool": (_bool, False),
    "NumericEquals": (_numeric(lambda v, p: v == p), False),
    "NumericNotEquals": (_numeric(lambda v, p: v == p), True),
    "NumericLessThan": (_numeric(lambda v, p: v < p), False),
    "NumericLessThanEquals": (_numeric(lambda v, p: v <= p), False),
    "NumericGreaterThan": (_numeric(lambda v, p: v > p), False),
    "NumericGreaterThanEquals": (_numeric(lambda v, p: v >= p), False),
    "IpAddress": (_ip, False),
    "NotIpAddress": (_ip, True),
}


class UnknownOperator(ValueError):
    pass


def _condition_holds(operator: str, key: str, policy_values: list, context: dict[str, Any]) -> bool:
    """One operator-key pair of a Condition block."""
    qualifier = None
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
        if qualifier not in ("ForAllValues", "ForAnyValue"):
            raise UnknownOperator(f"{qualifier}:{operator}")
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    present = key in context
    if base == "Null":
        # "true": the key is absent; "false": it is present.
        return any(str(v).lower() == ("false" if present else "true") for v in policy_values)
    if base not in _OPERATORS:
        raise UnknownOperator(operator)
    match, negated = _OPERATORS[base]
    values = as_list(context.get(key))
    if qualifier == "ForAllValues":
        # True when every value in the request matches some policy value, and when the key is absent.
        hits = [any(match(p, v) for p in policy_values) for v in values]
        return all(not h for h in hits) if negated else all(hits)
    if qualifier == "ForAnyValue":
        if not present:
            return False
        hits = [any(match(p, v) for p in policy_values) for v in values]
        return not all(hits) if negated else any(hits)
    if not present:
        # A missing key matches nothing: the condition is false, true for a negated operator or ...IfExists.
        return if_exists or negated
    hit = any(match(p, v) for p in policy_values for v in values)
    return not hit if negated else hit


def _conditions_hold(condition: dict, request: Request) -> tuple[bool, list[str]]:
    """(all hold, keys the request's context cannot know)."""
    context = {k.lower(): v for k, v in request.context.items()}
    known = {k.lower() for k in request.known_keys} | set(context)
    unknown = [key for block in condition.values() for key in block if key.lower() not in known
               and not _known_family(key.lower(), known) and _may_apply(key.lower(), request.applicable_keys)]
    if unknown:
        return False, unknown
    for operator, block in condition.items():
        for key, policy_values in block.items():
            if not _condition_holds(operator, key.lower(), as_list(policy_values), context):
                return False, []
    return True, []


def _may_apply(key: str, applicable: frozenset[str] | None) -> bool:
    """Whether AWS may set `key` for the request: a global key, or one the reference lists for the action."""
    if applicable is None or key.startswith("aws:"):
        return True
    return any(key == a or (a.endswith("*") and key.startswith(a[:-1])) for a in applicable)


def key_family(reference_key: str) -> str:
    """aws:ResourceTag/${TagKey} -> aws:resourcetag/*; plain keys lowercased."""
    cut = re.split(r"\$\{|<", reference_key, maxsplit=1)[0]
    return (cut + "*").lower() if cut != reference_key else reference_key.lower()


def _known_family(key: str, known: set[str]) -> bool:
    """kms:EncryptionContext:<name> and similar keys: known when their family (`kms:encryptioncontext:*`) is."""
    return any(k.endswith(":*") and key.startswith(k[:-1]) for k in known)


def _actions_match(statement: dict, action: str) -> bool:
    if "NotAction" in statement:
        return not any(wildcard_match(a, action, ignore_case=True) for a in as_list(statement["NotAction"]))
    return any(wildcard_match(a, action, ignore_case=True) for a in as_list(statement.get("Action")))


def _resources_match(statement: dict, resource: str) -> bool:
    if "NotResource" in statement:
        return not any(wildcard_match(r, resource) for r in as_list(statement["NotResource"]))
    if "Resource" not in statement:  # a resource-based policy's statement applies to its own resource
        return True
    return any(wildcard_match(r, resource) for r in as_list(statement["Resource"]))


def _principal_matches(statement: dict, principal: str, account: str) -> tuple[bool, bool]:
    """(the statement applies to the principal, it names the principal itself rather than its account)."""
    if "NotPrincipal" in statement:
        named = _principal_values(statement["NotPrincipal"])
        return not any(_names(p, principal, account) for p in named), False
    named = _principal_values(statement.get("Principal"))
    direct = any(p == "*" or wildcard_match(p, principal) for p in named)
    return direct or any(_names(p, principal, account) for p in named), direct


def _principal_values(value: Any) -> list[str]:
    if value == "*":
        return ["*"]
    if isinstance(value, dict):
        return [str(v) for v in as_list(value.get("AWS"))]  # Service and Federated principals are never our callers
    return [str(v) for v in as_list(value)]


def _names(entry: str, principal: str, account: str) -> bool:
    return entry == "*" or entry in (account, f"arn:aws:iam::{account}:root") or wildcard_match(entry, principal)


def _statement_applies(statement: dict, request: Request, resource_based: bool, account: str) -> tuple[bool, list[str], bool]:
    """(applies, unknown condition keys, names the principal directly)."""
    direct = True
    if resource_based:
        applies, direct = _principal_matches(statement, request.principal, account)
        if not applies:
            return False, [], False
    if not _actions_match(statement, request.action) or not _resources_match(statement, request.resource):
        return False, [], False
    holds, unknown = _conditions_hold(statement.get("Condition") or {}, request)
    return holds, unknown, direct


def statement_label(policy: Policy, index: int, statement: dict) -> str:
    return f"{policy.source}#{statement.get('Sid') or index}"


def statements(policy: Policy) -> Iterable[tuple[int, dict]]:
    return enumerate(as_list(policy.document.get("Statement")))


def evaluate(request: Request, identity: list[Policy], resource_policy: Policy | None = None,
             account: str = "", key_policy_required: bool = False) -> Decision:
    """Decide `request` for a principal with `identity` policies on a resource with `resource_policy`.
    `key_policy_required`: the resource is a KMS key, whose key policy must allow (directly or through IAM)."""
    account = account or request.principal.split(":")[4]
    allows, denies, unknown = [], [], []
    resource_allows_directly = resource_allows_account = False
    for policy in identity + ([resource_policy] if resource_policy else []):
        for index, statement in statements(policy):
            applies, missing, direct = _statement_applies(statement, request, policy.resource_based, account)
            unknown.extend(missing)
            if not applies:
                continue
            label = statement_label(policy, index, statement)
            if statement.get("Effect") == "Deny":
                denies.append((label, policy.resource_based))
            elif statement.get("Effect") == "Allow":
                allows.append((label, policy.resource_based))
                if policy.resource_based:
                    resource_allows_directly |= direct
                    resource_allows_account |= not direct
    if denies:
        return Decision(EXPLICIT_DENY, request, [d for d, _ in denies], sorted(set(unknown)),
                        denied_by_resource_policy=any(rb for _, rb in denies))
    identity_allows = [a for a, rb in allows if not rb]
    if key_policy_required:
        # The key policy decides: it allows the principal itself, or the account and then IAM must allow.
        if resource_allows_directly or (resource_allows_account and identity_allows):
            return Decision(ALLOW, request, [a for a, _ in allows])
        return Decision(IMPLICIT_DENY, request, [], sorted(set(unknown)), missing_key_policy=not resource_allows_account)
    # Same account: an Allow in either kind of policy suffices; a resource policy naming only the
    # account delegates to IAM and grants nothing by itself.
    if identity_allows or resource_allows_directly:
        return Decision(ALLOW, request, [a for a, _ in allows])
    return Decision(IMPLICIT_DENY, request, [], sorted(set(unknown)))
