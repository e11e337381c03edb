"""record_decision one case at a time: the person's decision becomes the version's
ModelApprovalStatus, with the reason they read later (in SageMaker Studio, and in a
rollback's confirmation) as its ApprovalDescription, written exactly once, and only on
the run's own PendingManualApproval version.

SageMaker is botocore's Stubber on a real client with the exact UpdateModelPackage request
expected (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateModelPackage.html:
ModelPackageArn, ModelApprovalStatus, ApprovalDescription); with nothing queued any
call fails, so "nothing written" is checked too. The function's answer is what the state
machine carries on (`registry`), so it is compared whole.
"""
from __future__ import annotations

import pytest

from lambda_fixtures import ACCOUNT, REGION, stubbed_client
from pipeline_common.errors import InvalidEvent

ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/car-evaluation/4"
REGISTERED = {"model_package_arn": ARN, "model_package_group": "car-evaluation", "version": 4,
              "status": "PendingManualApproval", "kind": "registered"}
DECIDED_AT = "2025-01-02T10:00:00Z"


@pytest.fixture
def record_decision(load_function):
    return load_function("record_decision")


def described(status: str) -> dict:
    return {"ModelPackageName": "car-evaluation", "ModelPackageArn": ARN, "CreationTime": "2025-01-02T03:04:05Z",
            "ModelPackageStatus": "Completed", "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelApprovalStatus": status}


def run(record_decision, event: dict, current: str | None = None, written: tuple[str, str] | None = None):
    """The decision for `event` with the version currently `current`; `written` the
    (status, description) UpdateModelPackage must receive, or None for no write."""
    with stubbed_client("sagemaker") as (sagemaker, stub):
        if current is not None:
            stub.add_response("describe_model_package", described(current), {"ModelPackageName": ARN})
        if written is not None:
            stub.add_response("update_model_package", {"ModelPackageArn": ARN},
                              {"ModelPackageArn": ARN, "ModelApprovalStatus": written[0],
                               "ApprovalDescription": written[1]})
        return record_decision.record_decision(sagemaker, event)


# ------------------------------------------------------------------ approval

@pytest.mark.parametrize("approval, description", [
    ({"decision": "approve", "reason": "", "decided_at": DECIDED_AT}, f"Approved on the approval page at {DECIDED_AT}."),
    ({"decision": "approve", "reason": "beats v3 on\nevery class", "decided_at": DECIDED_AT},
     f"Approved on the approval page at {DECIDED_AT}: beats v3 on every class"),
    ({"decision": "approve", "reason": None}, "Approved on the approval page at an unknown time."),
    ({}, "Approved on the approval page at an unknown time."),
])
def test_an_approval_makes_the_pending_version_approved_with_who_when_and_why(record_decision, approval, description):
    result = run(record_decision, {"registry": REGISTERED, "approval": approval}, "PendingManualApproval",
                 ("Approved", description))
    assert result == {**REGISTERED, "status": "Approved", "action": "approved", "description": description}


def test_a_long_reason_is_cut_to_sagemakers_1024_characters(record_decision):
    prefix = f"Approved on the approval page at {DECIDED_AT}: "
    description = (prefix + "r" * 2000)[:1021] + "..."
    result = run(record_decision, {"registry": REGISTERED, "approval": {"reason": "r" * 2000, "decided_at": DECIDED_AT}},
                 "PendingManualApproval", ("Approved", description))
    assert len(result["description"]) == 1024


def test_an_approval_of_a_version_approved_already_writes_nothing(record_decision):
    # A retried RecordDecision after its first attempt's write went through.
    result = run(record_decision, {"registry": REGISTERED, "approval": {"decided_at": DECIDED_AT}}, "Approved")
    assert result == {**REGISTERED, "status": "Approved", "action": "unchanged"}


def test_an_approval_of_a_version_rejected_meanwhile_is_a_conflict(record_decision):
    # Someone rejected it in SageMaker Studio while the email waited: the page's approval must not override that.
    with pytest.raises(record_decision.DecisionConflict) as refused:
        run(record_decision, {"registry": REGISTERED, "approval": {"decided_at": DECIDED_AT}}, "Rejected")
    assert str(refused.value) == f"model package {ARN} is Rejected; the approval of this run cannot change that"


@pytest.mark.parametrize("approval", [None, "approve", ["approve"]])
def test_an_event_with_neither_approval_nor_failure_is_refused(record_decision, approval):
    event = {"registry": REGISTERED} if approval is None else {"registry": REGISTERED, "approval": approval}
    with pytest.raises(InvalidEvent) as refused:
        run(record_decision, event, "PendingManualApproval")
    assert str(refused.value) == "the event needs approval (what the approval page sent) or failure"


# ------------------------------------------------------------------ failure

@pytest.mark.parametrize("failure, description", [
    ({"state": "RequestApproval", "error": "ApprovalRejected", "cause": "too few rows"},
     "Rejected by the reviewer: too few rows"),
    ({"state": "RequestApproval", "error": "ApprovalRejected", "cause": ""}, "Rejected by the reviewer."),
    ({"state": "RequestApproval", "error": "ApprovalRejected"}, "Rejected by the reviewer."),
    ({"state": "RequestApproval", "error": "States.Timeout"},
     "No decision within the approval window (3600 seconds): the run ended without deploying it."),
    ({"error": "States.Timeout"},
     "No decision within the approval window (3600 seconds): the run ended without deploying it."),
    # A timeout elsewhere (a deployment that hung) is not the approval window.
    ({"state": "DeployProduction", "error": "States.Timeout", "cause": "task timed out"},
     "Not deployed: the run failed in DeployProduction with States.Timeout before a decision. task timed out"),
    ({"state": "RequestApproval", "error": "AccessDenied", "cause": "no sns:Publish"},
     "Not deployed: the run failed in RequestApproval with AccessDenied before a decision. no sns:Publish"),
    ({"state": "RegisterModel", "error": "Lambda.Unknown", "cause": None},
     "Not deployed: the run failed in RegisterModel with Lambda.Unknown before a decision."),
    # What the state machine passes when the error output is not an object: still a rejection, not a crash.
    ("Lambda.Unknown", "Not deployed: the run failed in None with None before a decision."),
])
def test_a_run_that_ends_without_approval_rejects_the_pending_version_with_the_reason(record_decision, failure, description):
    result = run(record_decision, {"registry": REGISTERED, "failure": failure, "approval_timeout_seconds": 3600},
                 "PendingManualApproval", ("Rejected", description))
    assert result == {**REGISTERED, "status": "Rejected", "action": "rejected", "description": description}


def test_a_failure_wins_over_an_approval_in_the_same_event(record_decision):
    # An approved run that failed to deploy carries both; its version was approved already and stays so.
    result = run(record_decision, {"registry": REGISTERED, "approval": {"decided_at": DECIDED_AT},
                                   "failure": {"state": "CheckProduction", "error": "ProductionRolledBack"}}, "Approved")
    assert result == {**REGISTERED, "status": "Approved", "action": "unchanged"}


@pytest.mark.parametrize("current", ["Approved", "Rejected"])
def test_a_failure_after_the_decision_leaves_the_version_as_decided(record_decision, current):
    result = run(record_decision, {"registry": REGISTERED, "failure": {"error": "ApprovalRejected", "cause": "no"}}, current)
    assert result == {**REGISTERED, "status": current, "action": "unchanged"}


# ------------------------------------------------------------------ what is touched at all

@pytest.mark.parametrize("event", [
    {"registry": {**REGISTERED, "kind": "rollback"}, "failure": {"error": "ApprovalRejected"}},
    {"registry": {**REGISTERED, "kind": "rollback"}, "approval": {"decided_at": DECIDED_AT}},
    {"registry": {k: v for k, v in REGISTERED.items() if k != "kind"}, "failure": {"error": "ApprovalRejected"}},
])
def test_a_version_the_run_did_not_register_is_never_described_nor_changed(record_decision, event):
    assert run(record_decision, event) == {**event["registry"], "action": "unchanged"}


@pytest.mark.parametrize("event", [
    None, [], "registry", {}, {"registry": None}, {"registry": ARN}, {"registry": {"kind": "registered"}},
    {"registry": {**REGISTERED, "model_package_arn": 4}},
])
def test_an_event_without_the_versions_arn_is_refused(record_decision, event):
    with pytest.raises(InvalidEvent) as refused:
        run(record_decision, event)
    assert str(refused.value) == "the event needs registry.model_package_arn"
