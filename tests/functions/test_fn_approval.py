"""request_approval + approval_api: one decision per approval, by a person.

Probes that must change nothing: a GET (a mail scanner), a form submitted as
found (a mail sandbox), a made-up reference, a tampered link, an expired
link, a reused link, a decision after the run ended, a POST without the
page's form fields or with a body that is not UTF-8, run data that tries to
fake lines in the email. Tokens, references and nonces never reach the logs.
Delivery faults (lost answers, a function killed mid-call) are in
test_fn_approval_delivery.py.
"""
from __future__ import annotations

import io
import json
import logging
import secrets
import socket
import time
import unicodedata
import urllib.parse
from datetime import timedelta

import pytest
from approval_support import (  # noqa: F401 (fixtures)
    API_BASE_URL,
    QA_REPORT,
    TOKEN,
    api,
    approval_api,
    approval_event,
    emails,
    form_as_submitted,
    record,
    request,
    request_approval,
    world,
)

from lambda_fixtures import ARTIFACTS, REGION, TABLE, make_run, put
from localmode import approval_server
from localmode.approval_server import browser_decide, hidden_fields, links_in, proxy_event, start_approval_server
from localmode.lambdas import LambdaContext
from pipeline_common.approvals import is_wellformed_reference, new_reference
from pipeline_common.timeutil import utc_now


def nonce_of(page: str) -> str:
    return hidden_fields(page)["nonce"]


# ---------------------------------------------------------------- request_approval

def test_request_stores_the_token_server_side_and_emails_only_a_reference(request_approval, world, context, monkeypatch):
    monkeypatch.setenv("STATE_TABLE", TABLE)
    monkeypatch.setenv("TOPIC_ARN", world["topic_arn"])
    monkeypatch.setenv("API_BASE_URL", API_BASE_URL + "/")
    result = request_approval.lambda_handler(approval_event(world), context)
    assert result["approval_requested"] is True

    [email] = emails(world)
    message = email["Message"]
    links = links_in(message)
    assert set(links) == {"approve", "reject"}
    assert all(link.startswith(API_BASE_URL + "/approvals/") for link in links.values())
    assert TOKEN not in message and TOKEN[:40] not in message
    assert "0.9846" in message and "259" in message and "car-evaluation-prod" in message
    assert "170" in message and "vgood" in message  # the confusion matrix is in the email
    assert email["Subject"].startswith(f"Approve run {world['run']['run_id']}")

    reference = urllib.parse.urlsplit(links["approve"]).path.rsplit("/", 1)[-1]
    assert len(reference) >= 43
    item = record(world, reference)
    assert item["task_token"]["S"] == TOKEN
    assert item["status"]["S"] == "pending"
    assert reference not in json.dumps(item)  # the table holds only a hash of the reference
    scan = world["dynamodb"].scan(TableName=TABLE)["Items"]
    assert len(scan) == 1


def test_expiry_is_the_approval_window(request_approval, world):
    now = utc_now().replace(microsecond=0)
    sent = request(world, request_approval, now=now, timeout=7200)
    item = record(world, sent["reference"])
    assert int(item["expires_at"]["N"]) == int((now + timedelta(seconds=7200)).timestamp())


@pytest.mark.parametrize("drop", ["task_token", "run", "qa", "approval_timeout_seconds"])
def test_bad_request_events_store_and_send_nothing(request_approval, world, drop):
    event = approval_event(world)
    event.pop(drop)
    with pytest.raises(Exception) as raised:
        request_approval.request_approval(world["s3"], world["dynamodb"], world["sns"], event, TABLE,
                                          world["topic_arn"], API_BASE_URL)
    assert type(raised.value).__name__ == "InvalidEvent"
    assert world["dynamodb"].scan(TableName=TABLE)["Items"] == []
    assert emails(world) == []


def test_missing_qa_report_sends_nothing(request_approval, world):
    world["s3"].delete_object(Bucket=ARTIFACTS, Key=world["run"]["run_prefix"][len(f"s3://{ARTIFACTS}/"):] + "qa/report.json")
    with pytest.raises(Exception, match="NoSuchKey"):
        request_approval.request_approval(world["s3"], world["dynamodb"], world["sns"], approval_event(world), TABLE,
                                          world["topic_arn"], API_BASE_URL)
    assert emails(world) == []


# ---------------------------------------------------------------- approval_api: the page

def test_get_shows_the_summary_and_never_decides(request_approval, world, api):
    sent = request(world, request_approval)
    for link in (sent["links"]["approve"], sent["links"]["reject"], sent["links"]["approve"]):
        query = "?" + urllib.parse.urlsplit(link).query
        status, page, response = api("GET", sent["reference"], query=query)
        assert status == 200
        assert response["headers"]["Cache-Control"] == "no-store"
        assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
        assert "frame-ancestors 'none'" in response["headers"]["Content-Security-Policy"]
    assert "Confusion matrix" in page and "<td>170</td>" in page and "0.9846" in page
    assert 'name="nonce"' in page and 'method="post"' in page
    assert TOKEN not in page
    api.stub.assert_no_pending_responses()  # nothing was queued: any Step Functions call would have failed
    assert record(world, sent["reference"])["status"]["S"] == "pending"


@pytest.mark.parametrize("query", ["?decision=approve", "?decision=reject", ""])
def test_no_link_preselects_a_decision_so_a_sandbox_submitting_the_form_decides_nothing(
        request_approval, world, api, query):
    """Mail sandboxes open links and may submit the form they find, as found."""
    sent = request(world, request_approval)
    status, page, _ = api("GET", sent["reference"], query=query)
    assert status == 200
    fields, radios = form_as_submitted(page)
    assert {radio["value"] for radio in radios} == {"approve", "reject"}
    assert not any("checked" in radio for radio in radios), "a decision is pre-selected"
    assert "decision" not in fields

    status, page, _ = api("POST", sent["reference"], fields)
    assert status == 400 and '<p class="error">Choose approve or reject.</p>' in page
    assert api.calls == []
    assert record(world, sent["reference"])["status"]["S"] == "pending"


def open_page(api, reference: str, query: str = "") -> str:
    status, page, _ = api("GET", reference, query=query)
    assert status == 200
    return page


def test_post_approve_calls_send_task_success_once(request_approval, world, api):
    sent = request(world, request_approval)
    page = open_page(api, sent["reference"], "?decision=approve")
    api.stub.add_response("send_task_success", {})
    status, page, _ = api("POST", sent["reference"], {"decision": "approve", "reason": "looks good", "nonce": nonce_of(page)})
    assert status == 200 and "is approved" in page

    [(operation, params)] = api.calls
    assert operation == "SendTaskSuccess" and params["taskToken"] == TOKEN
    output = json.loads(params["output"])
    assert output["decision"] == "approve" and output["reason"] == "looks good" and output["decided_at"].endswith("Z")

    item = record(world, sent["reference"])
    assert item["status"]["S"] == "decided" and item["decision"]["S"] == "approve"
    assert "task_token" not in item  # the token leaves the table with the decision


def test_post_reject_calls_send_task_failure_once_with_the_reason(request_approval, world, api):
    sent = request(world, request_approval)
    page = open_page(api, sent["reference"], "?decision=reject")
    api.stub.add_response("send_task_failure", {})
    reason = "Recall on 'acc' too low <script>alert(1)</script>"
    status, page, _ = api("POST", sent["reference"], {"decision": "reject", "reason": reason, "nonce": nonce_of(page)})
    assert status == 200 and "is rejected" in page
    assert api.calls == [("SendTaskFailure", {"taskToken": TOKEN, "error": "ApprovalRejected", "cause": reason})]
    assert record(world, sent["reference"])["status"]["S"] == "decided"


def test_a_used_link_changes_nothing(request_approval, world, api):
    sent = request(world, request_approval)
    page = open_page(api, sent["reference"])
    form = {"decision": "approve", "reason": "", "nonce": nonce_of(page)}
    api.stub.add_response("send_task_success", {})
    assert api("POST", sent["reference"], form)[0] == 200
    before = record(world, sent["reference"])

    status, page, _ = api("POST", sent["reference"], {**form, "decision": "reject", "reason": "second thoughts"})
    assert status == 409 and "already approved" in page
    status, page, _ = api("GET", sent["reference"], query="?decision=reject")
    assert status == 409 and "<form" not in page
    assert len(api.calls) == 1
    assert record(world, sent["reference"]) == before


def test_reject_needs_a_reason(request_approval, world, api):
    sent = request(world, request_approval)
    page = open_page(api, sent["reference"])
    status, page, _ = api("POST", sent["reference"], {"decision": "reject", "reason": "  ", "nonce": nonce_of(page)})
    assert status == 400 and "Give a reason" in page and "<form" in page
    assert api.calls == []
    assert record(world, sent["reference"])["status"]["S"] == "pending"


@pytest.mark.parametrize(
    "form, content_type",
    [
        (None, "application/x-www-form-urlencoded"),  # a POST with no body at all
        ({"decision": "approve"}, "application/x-www-form-urlencoded"),  # no nonce: not from the page
        ({"decision": "approve", "nonce": "guessed-nonce"}, "application/x-www-form-urlencoded"),
        ({"decision": "maybe", "nonce": None}, "application/x-www-form-urlencoded"),
        ({"decision": "approve", "nonce": None}, "application/json"),
    ],
)
def test_posts_not_from_the_form_change_nothing(request_approval, world, api, form, content_type):
    sent = request(world, request_approval)
    page = open_page(api, sent["reference"])
    if form is not None and form.get("nonce", "") is None:
        form = {**form, "nonce": nonce_of(page)}
    before = record(world, sent["reference"])
    status, page, _ = api("POST", sent["reference"], form, content_type=content_type)
    assert status == 400
    assert api.calls == []
    assert record(world, sent["reference"]) == before


def test_unknown_and_tampered_references_change_nothing(request_approval, world, api):
    sent = request(world, request_approval)
    page = open_page(api, sent["reference"])
    nonce = nonce_of(page)
    real = sent["reference"]
    tampered = real[:-1] + ("A" if real[-1] != "A" else "B")
    for reference in (tampered, secrets.token_urlsafe(32), "short", real + "x", "..%2F..%2Fetc"):
        for method in ("GET", "POST"):
            status, page, _ = api(method, reference, {"decision": "approve", "nonce": nonce})
            assert status == 404, (method, reference)
            assert "does not match any approval request" in page
    assert api.calls == []
    assert record(world, real)["status"]["S"] == "pending"


def test_expired_links_change_nothing(request_approval, world, api):
    sent = request(world, request_approval, now=utc_now() - timedelta(hours=2), timeout=3600)
    status, page, _ = api("GET", sent["reference"])
    assert status == 410 and "expired" in page and "<form" not in page
    # Even with a nonce from an earlier view of the page:
    nonce = json.loads(json.dumps(record(world, sent["reference"])))["nonce"]["S"]
    status, _, _ = api("POST", sent["reference"], {"decision": "approve", "nonce": nonce})
    assert status == 410
    assert api.calls == []
    assert record(world, sent["reference"])["status"]["S"] == "pending"


@pytest.mark.parametrize("error_code", ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"])
def test_a_decision_after_the_run_ended_changes_nothing(request_approval, world, api, error_code):
    sent = request(world, request_approval)
    nonce = nonce_of(open_page(api, sent["reference"]))
    api.stub.add_client_error("send_task_success", error_code, "Task Timed Out: 'Provided task does not exist anymore'")
    status, page, _ = api("POST", sent["reference"], {"decision": "approve", "nonce": nonce})
    assert status == 410 and "no longer waits" in page and "No decision from this link was applied" in page
    item = record(world, sent["reference"])
    assert item["status"]["S"] == "closed" and "task_token" not in item
    # And it stays closed: no second call to Step Functions.
    status, _, _ = api("POST", sent["reference"], {"decision": "approve", "nonce": nonce})
    assert status == 410
    assert len(api.calls) == 1


def test_a_refused_callback_reopens_the_request(request_approval, world, api):
    """Throttled (a 400 on the first and only attempt): Step Functions applied nothing."""
    sent = request(world, request_approval)
    page = open_page(api, sent["reference"])
    form = {"decision": "approve", "reason": "", "nonce": nonce_of(page)}
    api.stub.add_client_error("send_task_success", "ThrottlingException", "Rate exceeded", http_status_code=400)
    status, page, _ = api("POST", sent["reference"], form)
    assert status == 503 and "submit the form again" in page and "Nothing was changed" in page
    item = record(world, sent["reference"])
    assert item["status"]["S"] == "pending" and item["task_token"]["S"] == TOKEN and "decision" not in item

    # Reopened means open to either decision again.
    api.stub.add_response("send_task_failure", {})
    status, page, _ = api("POST", sent["reference"], {**form, "decision": "reject", "reason": "changed my mind"})
    assert status == 200 and "is rejected" in page
    assert [operation for operation, _ in api.calls] == ["SendTaskSuccess", "SendTaskFailure"]


def test_a_server_error_keeps_the_decision_it_may_have_applied(request_approval, world, api):
    """A 5xx may come after the service applied the call: the page must not
    say nothing changed, and only the same decision can be delivered again."""
    sent = request(world, request_approval)
    form = {"decision": "approve", "reason": "", "nonce": nonce_of(open_page(api, sent["reference"]))}
    api.stub.add_client_error("send_task_success", "ServiceUnavailable", "try later", http_status_code=503)
    # The run's history cannot tell either: the approval task is still open.
    api.stub.add_response("get_execution_history", {"events": [{
        "id": 3, "timestamp": utc_now(), "type": "TaskScheduled",
        "taskScheduledEventDetails": {"resourceType": "lambda", "resource": "invoke.waitForTaskToken",
                                      "region": REGION, "parameters": "{}"}}]})
    status, page, _ = api("POST", sent["reference"], form)
    assert status == 202 and "may have been applied" in page and "Nothing was changed" not in page
    item = record(world, sent["reference"])
    assert item["status"]["S"] == "deciding" and item["decision"]["S"] == "approve" and item["task_token"]["S"] == TOKEN

    status, page, _ = api("POST", sent["reference"], {**form, "decision": "reject", "reason": "no"})
    assert status == 409 and "cannot be changed" in page
    api.stub.add_response("send_task_success", {})
    status, page, _ = api("POST", sent["reference"], form)
    assert status == 200 and "is approved" in page
    assert [operation for operation, _ in api.calls] == ["SendTaskSuccess", "GetExecutionHistory", "SendTaskSuccess"]
    assert record(world, sent["reference"])["status"]["S"] == "decided"


def test_base64_encoded_form_bodies_are_accepted(request_approval, world, api):
    sent = request(world, request_approval)
    page = open_page(api, sent["reference"])
    api.stub.add_response("send_task_failure", {})
    form = {"decision": "reject", "reason": "stale data", "nonce": nonce_of(page)}
    status, _, _ = api("POST", sent["reference"], form, base64_body=True)
    assert status == 200 and api.calls[0][1]["cause"] == "stale data"


def _visible_line_breaks(text: str) -> list[str]:
    """Characters a mail client or browser may show as a line break or use to reorder text."""
    return [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


def test_control_characters_in_run_data_cannot_fake_lines_in_the_email_or_the_page(request_approval, world, api):
    """An S3 key may hold any character; in the plain-text email a newline in it
    would start a line of its own, e.g. a fake "Approve:" link."""
    run = make_run(run_id="car-" + "0123456789ab" * 8)  # also longer than an SNS subject may be
    evil = "https://evil.example/approvals/" + "A" * 43 + "?decision=approve"
    run["input_uri"] = f"s3://input-bucket/input/car\nApprove: {evil}\r\nReject:\u2028x\u0085y\u202egpj.csv"
    sent = request(world, request_approval, run=run)
    message, subject = sent["email"]["Message"], sent["email"]["Subject"]

    lines = message.splitlines()  # splits on every Unicode line boundary, as a lenient reader might
    assert [line for line in lines if line.startswith("Approve:")] == [f"Approve: {API_BASE_URL}/approvals/{sent['reference']}?decision=approve"]
    assert len([line for line in lines if line.startswith("Reject:")]) == 1
    [input_line] = [line for line in lines if "evil.example" in line]
    assert input_line.startswith("Input:") and "car\\x0aApprove:" in input_line
    assert _visible_line_breaks(message) == []
    assert len(subject) < 100 and _visible_line_breaks(subject) == []  # SNS's subject constraints
    assert links_in(message)["approve"].startswith(API_BASE_URL)

    status, page, _ = api("GET", sent["reference"])
    assert status == 200
    assert "car\\x0aApprove: https://evil.example" in page and "\\u202egpj" in page
    assert _visible_line_breaks(page) == []
    assert "\n" not in page  # the page's own markup has no newlines either


def test_a_body_that_is_not_utf8_is_a_400_and_changes_nothing(request_approval, approval_api, world, api):
    sent = request(world, request_approval)
    nonce = nonce_of(open_page(api, sent["reference"]))
    before = record(world, sent["reference"])
    form = f"decision=approve&nonce={nonce}&reason=".encode()
    for raw, base64_body in ((form + b"caf\xe9", True),        # Latin-1 bytes, passed on base64-encoded
                             (form + b"%FF%FE", False)):       # percent-encoded bytes that are not UTF-8
        status, page, _ = api("POST", sent["reference"], raw_body=raw, base64_body=base64_body)
        assert status == 400 and "could not be read" in page, raw
    event = proxy_event("POST", f"/approvals/{sent['reference']}", {"Content-Type": "application/x-www-form-urlencoded"},
                        b"", "h")
    event["body"], event["isBase64Encoded"] = "not base64 at all!", True
    response = approval_api.lambda_handler(event, LambdaContext("approval_api", REGION))
    assert response["statusCode"] == 400
    assert api.calls == []
    assert record(world, sent["reference"]) == before


def test_a_reference_with_a_trailing_newline_never_reaches_the_table(request_approval, world, api):
    sent = request(world, request_approval)
    nonce = nonce_of(open_page(api, sent["reference"]))
    assert is_wellformed_reference(sent["reference"]) and is_wellformed_reference(new_reference())
    assert not is_wellformed_reference(sent["reference"] + "\n")
    reads = []
    world["dynamodb"].meta.events.register("provide-client-params.dynamodb.GetItem", lambda params, **_: reads.append(1))
    for method in ("GET", "POST"):
        status, page, _ = api(method, sent["reference"] + "%0A", {"decision": "approve", "nonce": nonce})
        assert status == 404 and "does not match any approval request" in page
    assert reads == [] and api.calls == []


def test_other_paths_get_the_unknown_page(approval_api, world, api):
    event = proxy_event("GET", "/somewhere/else", {"Host": "h"}, b"", "h")
    response = approval_api.lambda_handler(event, LambdaContext("approval_api", REGION))
    assert response["statusCode"] == 404 and "text/html" in response["multiValueHeaders"]["Content-Type"][0]


def test_tokens_references_and_nonces_never_reach_the_logs(request_approval, approval_api, world, api, caplog, capfd, monkeypatch):
    """Run every path with the handlers' own log output captured, then search it."""
    stream = io.StringIO()
    handlers = [h for module in (request_approval, approval_api) for h in module.logger.handlers]
    for handler in handlers:
        monkeypatch.setattr(handler, "stream", stream)
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")  # even if someone turns event logging on

    secrets_seen = [TOKEN]
    monkeypatch.setenv("STATE_TABLE", TABLE)
    monkeypatch.setenv("TOPIC_ARN", world["topic_arn"])
    monkeypatch.setenv("API_BASE_URL", API_BASE_URL)
    request_approval.lambda_handler(approval_event(world), LambdaContext("request_approval", REGION))
    [email] = emails(world)
    reference = urllib.parse.urlsplit(links_in(email["Message"])["approve"]).path.rsplit("/", 1)[-1]
    secrets_seen.append(reference)

    page = open_page(api, reference)
    nonce = nonce_of(page)
    secrets_seen.append(nonce)
    api("POST", reference, {"decision": "approve"})  # not from the form
    api("POST", reference[:-1] + "x", {"decision": "approve", "nonce": nonce})  # tampered
    api.stub.add_client_error("send_task_success", "ThrottlingException", f"echo {TOKEN}", http_status_code=400)
    api("POST", reference, {"decision": "approve", "nonce": nonce})
    api.stub.add_response("send_task_success", {})
    api("POST", reference, {"decision": "approve", "nonce": nonce})
    api("POST", reference, {"decision": "approve", "nonce": nonce})  # reused

    out, err = capfd.readouterr()
    logged = "\n".join([stream.getvalue(), caplog.text, out, err, json.dumps([r.__dict__ for r in caplog.records], default=str)])
    assert "decision delivered" in logged and "approval requested" in logged  # the capture works
    for secret in secrets_seen:
        assert secret not in logged
        assert secret[:24] not in logged


# ---------------------------------------------------------------- through the local HTTP server

def test_local_server_serves_the_real_handler_to_a_browser(request_approval, approval_api, world, api):
    server, base_url = start_approval_server(handler=approval_api.lambda_handler)
    try:
        sent = request(world, request_approval, base_url=base_url)
        link = sent["links"]["reject"]
        assert link.startswith(base_url + "/approvals/")
        api.stub.add_response("send_task_failure", {})
        status, page = browser_decide(link, "reject", reason="not this week")
        assert status == 200 and "is rejected" in page
        assert api.calls == [("SendTaskFailure", {"taskToken": TOKEN, "error": "ApprovalRejected", "cause": "not this week"})]
        with pytest.raises(RuntimeError, match="409"):
            browser_decide(link, "approve")
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def bare_server(monkeypatch):
    """The local approval server with a handler that records what reaches it;
    a short socket timeout so a stalled client is seen quickly."""
    monkeypatch.setattr(approval_server, "_SOCKET_TIMEOUT_SECONDS", 1)
    reached = []

    def handler(event, _context):
        reached.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "ok"}

    server, base_url = start_approval_server(handler=handler)
    yield server, reached
    server.shutdown()
    server.server_close()


def _exchange(server, head: str, body: bytes = b"", wait: float = 5.0) -> bytes:
    """Send raw bytes, keep the connection open, and read until the server closes it."""
    with socket.create_connection(server.server_address[:2], timeout=wait) as sock:
        sock.sendall(head.encode("ascii") + body)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            raise AssertionError(f"the server held the connection for {wait} s: {received[:80]!r}") from None
    return received


@pytest.mark.parametrize("length", ["-1", "abc", "+5", "1e3", "5, 6"])
def test_local_server_answers_a_bad_content_length_with_400(bare_server, capfd, length):
    server, reached = bare_server
    answer = _exchange(server, f"POST /approvals/x HTTP/1.1\r\nHost: h\r\nContent-Length: {length}\r\n"
                               "Content-Type: application/x-www-form-urlencoded\r\n\r\n", b"decision=approve")
    assert answer.startswith(b"HTTP/1.0 400"), answer[:80]
    assert reached == []
    assert "Traceback" not in capfd.readouterr().err


def test_local_server_drops_a_client_that_stops_sending(bare_server, capfd):
    server, reached = bare_server
    started = time.monotonic()
    answer = _exchange(server, "POST /approvals/x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", b"decision=1")
    assert answer == b"" and time.monotonic() - started < 4
    assert reached == []
    assert "Traceback" not in capfd.readouterr().err
    # And the server still serves others.
    assert _exchange(server, "GET /approvals/x HTTP/1.1\r\nHost: h\r\n\r\n").startswith(b"HTTP/1.0 200")
