"""Every AWS call local mode makes, authorized under the template's IAM
before it reaches moto.

Who calls: the principal the thread acts as (`acting_as`: a Lambda's role
while its handler runs, the state machine's role while a task state's
integration runs, the Glue job's and SageMaker's roles in their workers), or,
on a thread that acts as nobody (a transfer pool's), the principal that was
acting when the boto3 client was made, as a client keeps the credentials it
was made with. A call with neither is the local harness (setting up the
stack, reading the report): it is counted, not checked.

A denied call fails as AWS fails it: the service's error code (S3's
AccessDenied, SNS's AuthorizationError, ...), status 403, and AWS's message
(https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html):
"User: <assumed-role ARN> is not authorized to perform: <action> on resource:
<ARN> because no identity-based policy allows the <action> action".
"""
from __future__ import annotations

import contextlib
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import botocore.client
import botocore.session
from botocore.exceptions import ClientError

from localmode.iam.evaluate import EXPLICIT_DENY, Decision, Request, evaluate
from localmode.iam.operations import GLOBAL_KEYS, CallFacts, Check, UnmappedOperation, applicable_keys, checks_for
from localmode.iam.policies import Principal, StackIam

_local = threading.local()

# The error code each service answers a denied request with (botocore's service models and the services'
# error references; SageMaker, Lambda, Step Functions, DynamoDB, KMS, Glue and EventBridge use AccessDeniedException).
ERROR_CODES = {"s3": "AccessDenied", "sns": "AuthorizationError", "sqs": "AccessDenied", "cloudwatch": "AccessDenied",
               "iam": "AccessDenied", "sts": "AccessDenied"}


def _stack() -> list[tuple[Principal, str | None]]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


@contextlib.contextmanager
def acting_as(principal: Principal | None, state: str | None = None) -> Iterator[None]:
    """Calls on this thread are `principal`'s (in `state`, for the report) while active; None changes nothing."""
    if principal is None:
        yield
        return
    frames = _stack()
    outer_state = frames[-1][1] if frames else None
    frames.append((principal, state or outer_state))
    try:
        yield
    finally:
        frames.pop()


@contextlib.contextmanager
def as_harness() -> Iterator[None]:
    """Calls on this thread are the local harness's (unchecked) while active, whoever acts around it:
    for test and scenario code that stands in for AWS itself inside a state's handler."""
    frames = _stack()
    frames.append((None, frames[-1][1] if frames else None))
    try:
        yield
    finally:
        frames.pop()


def current() -> tuple[Principal | None, str | None]:
    frames = _stack()
    return frames[-1] if frames else (None, None)


def decide_request(iam: StackIam, identity: list, request: Request, account: str) -> Decision:
    """`request` under `identity` policies and the policy of the resource it names (a KMS key's must allow)."""
    return evaluate(request, identity, iam.resource_policy(request.resource), account,
                    key_policy_required=request.action.startswith("kms:"))


def denial_message(decision: Decision, principal: Principal) -> str:
    request = decision.request
    subject = f"User: {principal.session_arn} is not authorized to perform: {request.action} on resource: {request.resource}"
    if decision.unknown_keys:
        return f"{subject} because local IAM does not model the condition key(s) {', '.join(decision.unknown_keys)}"
    if decision.effect == EXPLICIT_DENY:
        kind = "a resource-based policy" if decision.denied_by_resource_policy else "an identity-based policy"
        return f"{subject} with an explicit deny in {kind}"
    if decision.missing_key_policy:
        return f"{subject} because no resource-based policy allows the {request.action} action"
    return f"{subject} because no identity-based policy allows the {request.action} action"


def access_denied(service: str, operation: str, message: str) -> ClientError:
    code = ERROR_CODES.get(service, "AccessDeniedException")
    if (service, operation) in (("s3", "HeadObject"), ("s3", "HeadBucket")):
        code, message = "403", "Forbidden"  # a HEAD response has no body: botocore reports the status only
    # SageMaker answers AccessDeniedException with status 400 (as quoted in aws/aws-cdk#26012); the others with 403.
    status = 400 if service in ("sagemaker", "sagemaker-runtime") else 403
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": str(uuid.uuid4())}}, operation)


@dataclass
class Enforcer:
    """The template's IAM applied to every call while installed."""

    iam: StackIam
    region: str
    account: str
    denials: list[dict] = field(default_factory=list)
    # Every authorization asked: (principal part, action, resource, allowing statements) -> count.
    decisions: Counter = field(default_factory=Counter)
    unchecked_calls: Counter = field(default_factory=Counter)
    # Every request evaluated, for the policy mutation's replay: (principal, Request, state).
    record: list[tuple[Principal, Request, str | None]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.facts = CallFacts(self.region, self.account, self.iam.encryption_key, self.iam.table_hash_keys())

    # --- deciding ------------------------------------------------------------------------
    def decide(self, principal: Principal, item: Check) -> Decision:
        context = {"aws:SecureTransport": True, "aws:PrincipalArn": principal.role_arn,
                   "aws:PrincipalAccount": self.account, "aws:PrincipalType": "AssumedRole",
                   "aws:RequestedRegion": self.region, **item.context}
        request = Request(principal.role_arn, item.action, item.resource, context, item.known_keys,
                          applicable_keys=applicable_keys(item.action))
        return decide_request(self.iam, self.iam.policies_of(principal), request, self.account)

    def require(self, principal: Principal, service: str, operation: str, items: list[Check]) -> None:
        """Authorize every check of one call; raise the service's AccessDenied for the first one denied."""
        _, state = current()
        for item in items:
            decision = self.decide(principal, item)
            with self._lock:
                if self.record is not None:
                    self.record.append((principal, decision.request, state))
                self.decisions[(principal.part, item.action, item.resource, tuple(decision.statements))] += 1
            if not decision.allowed:
                message = denial_message(decision, principal)
                with self._lock:
                    self.denials.append({"principal": principal.part, "role": principal.role, "action": item.action,
                                         "resource": item.resource, "operation": f"{service}:{operation}",
                                         "state": state, "message": message,
                                         **({"why": item.why} if item.why else {})})
                raise access_denied(service, operation, message)

    def require_call(self, principal: Principal, service: str, operation: str, params: dict) -> None:
        """Authorize a call no boto3 client makes locally (a service integration's own calls)."""
        self.require(principal, service, operation, checks_for(service, operation, params, self.facts))

    def caller(self, client: Any) -> Principal | None:
        """The thread's principal; on a thread acting as nobody, the client's maker's; in as_harness, nobody."""
        frames = _stack()
        if frames:
            return frames[-1][0]
        return getattr(client, "_localmode_principal", None)

    def authorize_call(self, client: Any, operation: str, params: dict) -> None:
        principal = self.caller(client)
        service = client.meta.service_model.service_name
        if principal is None:
            with self._lock:
                self.unchecked_calls[f"{service}:{operation}"] += 1
            return
        try:
            items = checks_for(service, operation, params, self.facts)
        except UnmappedOperation as exc:
            _, state = current()
            with self._lock:
                self.denials.append({"principal": principal.part, "role": principal.role, "action": None,
                                     "resource": None, "operation": f"{service}:{operation}", "state": state,
                                     "message": str(exc)})
            raise access_denied(service, operation, str(exc)) from exc
        self.require(principal, service, operation, items)

    def missing_object(self, client: Any, operation: str, params: dict, error: ClientError) -> None:
        """A missing object is 404 only to a caller that may list the bucket; to others S3 answers 403
        (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, "Permissions")."""
        service = client.meta.service_model.service_name
        code = error.response.get("Error", {}).get("Code")
        if service != "s3" or operation not in ("GetObject", "HeadObject") or code not in ("NoSuchKey", "404"):
            return
        principal = self.caller(client)
        if principal is not None:
            self.require(principal, service, operation,
                         [Check("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", {"s3:prefix": params["Key"]},
                                GLOBAL_KEYS | {"s3:prefix", "s3:delimiter", "s3:max-keys"},
                                why=f"{operation} of a missing key: 404 needs s3:ListBucket, else 403")])

    # --- installing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def installed(self) -> Iterator["Enforcer"]:
        global _active
        if _active is not None:
            raise RuntimeError("another local IAM enforcer is installed")
        _patch()
        _active = self
        try:
            yield self
        finally:
            _active = None


_active: Enforcer | None = None
_patched = False


def _patch() -> None:
    """Route every botocore call and client creation through the active enforcer (once per process)."""
    global _patched
    if _patched:
        return
    original_call = botocore.client.BaseClient._make_api_call
    original_create = botocore.session.Session.create_client

    def _make_api_call(self, operation_name, api_params):
        enforcer = _active
        if enforcer is None:
            return original_call(self, operation_name, api_params)
        try:
            enforcer.authorize_call(self, operation_name, api_params)
            try:
                return original_call(self, operation_name, api_params)
            except ClientError as missing:
                enforcer.missing_object(self, operation_name, api_params, missing)
                raise
        except ClientError as denied:
            if denied.response.get("Error", {}).get("Code") not in (*ERROR_CODES.values(), "AccessDeniedException", "403"):
                raise
            # Raised as the client raises a service's error: its modeled class for the code, if any.
            error_class = self.exceptions.from_code(denied.response["Error"]["Code"])
            raise error_class(denied.response, operation_name) from None

    def create_client(self, *args, **kwargs):
        client = original_create(self, *args, **kwargs)
        principal, _ = current()
        if principal is not None:
            client._localmode_principal = principal
        return client

    botocore.client.BaseClient._make_api_call = _make_api_call
    botocore.session.Session.create_client = create_client
    _patched = True
