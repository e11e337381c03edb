"""approval_api when delivering a decision goes wrong half-way.

A decision is recorded (pending -> deciding, task token kept) before Step
Functions is called, and is settled (decided, token removed) only when the
callback is known to have landed. These probes break the call at every point
(the answer lost after Step Functions applied it, the function killed before
or after the call, two requests for one link interleaved) through a real
botocore client with the function's own timeouts and retries, in front of
FakeStepFunctions (approval_support.py), and check that no decision is lost,
none is delivered twice as two different decisions, and no page says
"nothing was changed" when something may have been.
"""
from __future__ import annotations

import io
import json
import logging
import threading
from datetime import datetime, timezone

import pytest
from approval_support import (  # noqa: F401 (fixtures)
    API_BASE_URL,
    TOKEN,
    FakeStepFunctions,
    FunctionKilled,
    approval_api,
    approval_event,
    emails,
    form_as_submitted,
    make_caller,
    record,
    request,
    request_approval,
    world,
)

from lambda_fixtures import REGION, TABLE
from localmode.approval_server import hidden_fields, links_in
from localmode.lambdas import LambdaContext


@pytest.fixture
def fake_sfn(approval_api, world):
    return FakeStepFunctions.with_function_config(approval_api, execution_arn=world["run"]["execution_arn"])


@pytest.fixture
def api(approval_api, world, monkeypatch, fake_sfn):
    return make_caller(approval_api, monkeypatch, world["dynamodb"], fake_sfn.client)


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch):
    """botocore's standard retry mode sleeps up to 1 s before its second attempt; the attempt itself is what matters."""
    import botocore.retries.standard as standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


def open_form(api, reference: str) -> dict:
    status, page, _ = api("GET", reference)
    assert status == 200
    return {"decision": "approve", "reason": "", "nonce": hidden_fields(page)["nonce"]}


# ---------------------------------------------------------------- item 1: the answer is lost

def test_an_applied_decision_whose_answer_was_lost_is_reported_applied(request_approval, world, api, fake_sfn):
    """Step Functions applies SendTaskSuccess, the answer never arrives, botocore
    retries, and the retry meets the task already closed (TaskTimedOut)."""
    sent = request(world, request_approval)
    form = open_form(api, sent["reference"])
    fake_sfn.faults = ["lose_answer"]

    status, page, _ = api("POST", sent["reference"], form)

    assert fake_sfn.task == "approve"
    assert status == 200 and "is approved" in page and "Nothing was changed" not in page
    assert fake_sfn.operations() == ["SendTaskSuccess", "SendTaskSuccess", "GetExecutionHistory"]
    item = record(world, sent["reference"])
    assert item["status"]["S"] == "decided" and item["decision"]["S"] == "approve" and "task_token" not in item


def test_when_nothing_can_tell_the_page_says_the_decision_may_have_been_applied(request_approval, world, api, fake_sfn):
    sent = request(world, request_approval)
    form = open_form(api, sent["reference"])
    fake_sfn.faults = ["lose_answer"]
    fake_sfn.history_error = "AccessDeniedException"

    status, page, _ = api("POST", sent["reference"], form)

    assert fake_sfn.task == "approve"
    assert status == 202 and "may have been applied" in page and "outcome email" in page
    assert "Nothing was changed" not in page and "no longer waits" not in page
    item = record(world, sent["reference"])
    assert item["status"]["S"] == "deciding" and item["task_token"]["S"] == TOKEN  # nothing lost

    # Later, the link shows the same, with a way to deliver that decision (and only that one) again.
    status, page, _ = api("GET", sent["reference"])
    fields, radios = form_as_submitted(page)
    assert status == 200 and "may have been applied" in page and radios == []
    assert fields["decision"] == "approve"
    fake_sfn.history_error = None
    status, page, _ = api("POST", sent["reference"], fields)
    assert status == 200 and "is approved" in page
    assert record(world, sent["reference"])["status"]["S"] == "decided"
    assert fake_sfn.task == "approve"


def test_a_decision_that_never_left_is_delivered_when_sent_again(request_approval, world, api, fake_sfn):
    """No connection at all (both attempts): nothing was applied, but the
    function cannot know that; the same decision delivered again lands once."""
    sent = request(world, request_approval)
    form = {**open_form(api, sent["reference"]), "decision": "reject", "reason": "stale data"}
    fake_sfn.faults = ["no_connection", "no_connection"]

    status, page, _ = api("POST", sent["reference"], form)
    assert status == 202 and "may have been applied" in page
    assert fake_sfn.task == "waiting"

    status, page, _ = api("POST", sent["reference"], form)
    assert status == 200 and "is rejected" in page
    assert fake_sfn.task == "reject"
    assert [params.get("cause") for op, params in fake_sfn.requests if op == "SendTaskFailure"] == ["stale data"] * 3


def test_a_repeated_decision_on_a_run_that_timed_out_is_reported_not_applied(request_approval, world, api, fake_sfn):
    sent = request(world, request_approval)
    form = open_form(api, sent["reference"])
    fake_sfn.faults = ["no_connection", "no_connection"]
    assert api("POST", sent["reference"], form)[0] == 202
    fake_sfn.task = "timed_out"  # the approval window ran out meanwhile

    status, page, _ = api("POST", sent["reference"], form)
    assert status == 410 and "No decision from this link was applied" in page
    item = record(world, sent["reference"])
    assert item["status"]["S"] == "closed" and "task_token" not in item


def test_too_little_time_left_sends_nothing(request_approval, world, api, fake_sfn, approval_api):
    """With less time left than one call and its bookkeeping need, the
    function must not start a call it may not live to record."""
    sent = request(world, request_approval)
    form = open_form(api, sent["reference"])
    status, page, _ = api("POST", sent["reference"], form, timeout_seconds=approval_api.DELIVERY_BUDGET_SECONDS - 1)
    assert status == 503 and "Nothing was changed" in page
    assert fake_sfn.requests == [] and record(world, sent["reference"])["status"]["S"] == "pending"


# ---------------------------------------------------------------- item 2: the function dies mid-call

@pytest.mark.parametrize("fault", ["killed_before", "killed_after"])
def test_a_function_killed_mid_call_loses_no_decision(request_approval, world, api, fake_sfn, fault):
    """Lambda ends the function at its Timeout while SendTask* is in flight:
    before Step Functions saw it, or after it applied it."""
    sent = request(world, request_approval)
    form = open_form(api, sent["reference"])
    fake_sfn.faults = [fault]
    with pytest.raises(FunctionKilled):
        api("POST", sent["reference"], form)

    item = record(world, sent["reference"])
    assert item["status"]["S"] == "deciding" and item["decision"]["S"] == "approve"
    assert item["task_token"]["S"] == TOKEN  # still there to deliver it

    status, page, _ = api("GET", sent["reference"])
    assert status == 200 and "may have been applied" in page
    fields, _ = form_as_submitted(page)
    status, page, _ = api("POST", sent["reference"], fields)
    assert status == 200 and "is approved" in page
    assert fake_sfn.task == "approve"
    item = record(world, sent["reference"])
    assert item["status"]["S"] == "decided" and "task_token" not in item


# ---------------------------------------------------------------- item 11: two requests, one second

def test_two_requests_in_the_same_second_cannot_undo_each_other(request_approval, world, api, fake_sfn, approval_api,
                                                                  monkeypatch):
    """Request A's callback is refused (throttled, twice) while request B, in the
    same second, delivers the same decision: A must not reopen the record B is
    settling. Only a per-attempt random id tells A's attempt from B's."""
    sent = request(world, request_approval)
    form = open_form(api, sent["reference"])
    frozen = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(approval_api, "utc_now", lambda: frozen)
    pk = record(world, sent["reference"])["pk"]
    world["dynamodb"].update_item(TableName=TABLE, Key={"pk": pk}, UpdateExpression="SET expires_at = :e",
                                  ExpressionAttributeValues={":e": {"N": str(int(frozen.timestamp()) + 3600)}})
    a_in_flight, b_in_flight = threading.Event(), threading.Event()
    answers: dict[str, tuple] = {}

    def a_fault(_params):
        a_in_flight.set()
        assert b_in_flight.wait(10)
        return "throttle"

    def b_fault(_params):
        b_in_flight.set()
        a_thread.join(10)
        return None

    fake_sfn.thread_faults = {"A": [a_fault, "throttle"], "B": [b_fault]}
    a_thread = threading.Thread(target=lambda: answers.setdefault("a", api("POST", sent["reference"], form)), name="A")
    b_thread = threading.Thread(target=lambda: answers.setdefault("b", api("POST", sent["reference"], form)), name="B")
    a_thread.start()
    assert a_in_flight.wait(10)
    b_thread.start()
    b_thread.join(20)

    assert fake_sfn.task == "approve"
    assert answers["b"][0] == 200 and "is approved" in answers["b"][1]
    assert "Nothing was changed" not in answers["a"][1]
    item = record(world, sent["reference"])
    assert item["status"]["S"] == "decided" and item["decision"]["S"] == "approve"


def test_a_callback_refused_on_every_attempt_reopens_the_request(request_approval, world, api, fake_sfn):
    """Throttled twice (botocore retries a throttle once): nothing was applied."""
    sent = request(world, request_approval)
    form = open_form(api, sent["reference"])
    fake_sfn.faults = ["throttle", "throttle"]
    status, page, _ = api("POST", sent["reference"], form)
    assert status == 503 and "Nothing was changed" in page
    assert fake_sfn.operations() == ["SendTaskSuccess", "SendTaskSuccess"] and fake_sfn.task == "waiting"
    assert record(world, sent["reference"])["status"]["S"] == "pending"


def test_a_lost_answer_then_a_throttle_is_not_taken_for_a_refusal(request_approval, world, api, fake_sfn):
    sent = request(world, request_approval)
    form = open_form(api, sent["reference"])
    fake_sfn.faults = ["lose_answer", "throttle"]
    fake_sfn.history_error = "AccessDeniedException"
    status, page, _ = api("POST", sent["reference"], form)
    assert fake_sfn.task == "approve"
    assert status == 202 and "may have been applied" in page and "Nothing was changed" not in page
    assert record(world, sent["reference"])["status"]["S"] == "deciding"


# ---------------------------------------------------------------- item 7: DEBUG logging everywhere

def test_at_debug_level_no_log_line_holds_the_token_reference_or_nonce(request_approval, approval_api, world, api,
                                                                       fake_sfn, monkeypatch, capfd):
    """What Lambda's ApplicationLogLevel=DEBUG does: the root logger at DEBUG.
    Every record any logger emits is captured through a full approve flow
    (the SDK's own request and response logging included)."""
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.DEBUG)
    root.addHandler(handler)
    levels = {module: module.logger.log_level for module in (request_approval, approval_api)}
    for module in levels:
        module.logger.setLevel(logging.DEBUG)
        for own in module.logger.handlers:
            monkeypatch.setattr(own, "stream", captured)
    try:
        monkeypatch.setenv("STATE_TABLE", TABLE)
        monkeypatch.setenv("TOPIC_ARN", world["topic_arn"])
        monkeypatch.setenv("API_BASE_URL", API_BASE_URL)
        request_approval.lambda_handler(approval_event(world), LambdaContext("request_approval", REGION))
        [email] = emails(world)
        link = links_in(email["Message"])["approve"]
        reference = link.split("/approvals/", 1)[1].split("?", 1)[0]
        form = open_form(api, reference)
        fake_sfn.faults = ["lose_answer"]  # the retry and the history call too
        status, page, _ = api("POST", reference, form)
        assert status == 200 and "is approved" in page
        logging.getLogger("canary").debug("a DEBUG line reaches the capture")
    finally:
        root.removeHandler(handler)
        for module, level in levels.items():
            module.logger.setLevel(level)

    out, err = capfd.readouterr()
    # moto is the stand-in for AWS itself, not part of the functions: its own lines are left out.
    logged = "\n".join(line for line in (captured.getvalue() + out + err).splitlines() if not line.startswith("moto"))
    assert "decision delivered" in logged and "approval requested" in logged  # the capture works
    assert "canary DEBUG a DEBUG line reaches the capture" in logged
    for secret in (TOKEN, reference, form["nonce"]):
        assert secret not in logged
        assert secret[:20] not in logged
        assert json.dumps(secret)[1:21] not in logged
