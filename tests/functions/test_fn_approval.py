"""request_approval + approval_api: one decision per approval, by a person.

Probes that must change nothing: a GET (a mail scanner), a made-up reference,
a tampered link, an expired link, a reused link, a decision after the run
ended, a POST without the page's form fields. Tokens, references and nonces
never reach the logs.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import urllib.parse
from datetime import timedelta

import boto3
import pytest
from botocore.stub import Stubber

from lambda_fixtures import ARTIFACTS, REGION, TABLE, make_run, put
from localmode.approval_server import browser_decide, hidden_fields, links_in, proxy_event, start_approval_server
from localmode.lambdas import LambdaContext
from pipeline_common.approvals import approval_key
from pipeline_common.timeutil import utc_now

TOPIC = "approvals"
API_BASE_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/Prod"
# Shaped like a real task token: long, opaque, base64-ish.
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAA" + secrets.token_urlsafe(600)

QA_REPORT = {
    "labels": ["unacc", "acc", "good", "vgood"],
    "confusion_matrix": [[170, 3, 0, 0], [1, 57, 0, 0], [0, 0, 11, 0], [0, 0, 0, 17]],
    "per_class": {
        "unacc": {"precision": 0.994152, "recall": 0.982659, "support": 173},
        "acc": {"precision": 0.95, "recall": 0.982759, "support": 58},
        "good": {"precision": 1.0, "recall": 1.0, "support": 11},
        "vgood": {"precision": 1.0, "recall": 1.0, "support": 17},
    },
    "invalid_predictions": 0,
}


@pytest.fixture
def request_approval(load_function):
    return load_function("request_approval")


@pytest.fixture
def approval_api(load_function):
    return load_function("approval_api")


@pytest.fixture
def world(s3, state_table):
    """Artifacts bucket with a QA report, the state table, and the topic with a
    queue subscribed, standing in for the approver's mailbox."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name=TOPIC)["TopicArn"]
    queue_url = sqs.create_queue(QueueName="mailbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    run = make_run()
    put(s3, run["run_prefix"] + "qa/report.json", QA_REPORT)
    return {"s3": s3, "dynamodb": state_table, "sns": sns, "sqs": sqs, "queue_url": queue_url,
            "topic_arn": topic_arn, "run": run}


def approval_event(world, timeout: int = 3600) -> dict:
    run = world["run"]
    return {
        "task_token": TOKEN,
        "run": run,
        "names": {"production_endpoint": "car-evaluation-prod", "qa_endpoint": f"{run['run_id']}-qa"},
        "qa": {"accuracy": 0.984556, "threshold": 0.9, "rows": 259, "report_uri": run["run_prefix"] + "qa/report.json"},
        "approval_timeout_seconds": timeout,
    }


def emails(world) -> list[dict]:
    messages = world["sqs"].receive_message(QueueUrl=world["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def request(world, request_approval, now=None, timeout: int = 3600, base_url: str = API_BASE_URL) -> dict:
    """Run request_approval; return the email and the reference from its links."""
    request_approval.request_approval(
        world["s3"], world["dynamodb"], world["sns"], approval_event(world, timeout),
        TABLE, world["topic_arn"], base_url, now=now,
    )
    [email] = emails(world)
    links = links_in(email["Message"])
    reference = urllib.parse.urlsplit(links["approve"]).path.rsplit("/", 1)[-1]
    return {"email": email, "links": links, "reference": reference}


def record(world, reference: str) -> dict:
    return world["dynamodb"].get_item(TableName=TABLE, Key={"pk": {"S": approval_key(reference)}}).get("Item")


@pytest.fixture
def api(approval_api, world, monkeypatch):
    """The approval handler wired to moto's DynamoDB and a stubbed Step
    Functions client; `api.calls` lists every Step Functions call made."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    calls: list[tuple[str, dict]] = []
    sfn.meta.events.register("provide-client-params", lambda params, model, **_: calls.append((model.name, dict(params))))
    stub = Stubber(sfn)
    stub.activate()
    deps = approval_api.Dependencies(world["dynamodb"], sfn, TABLE)
    monkeypatch.setattr(approval_api, "dependencies", lambda: deps)

    def call(method: str, reference: str, form: dict | None = None, query: str = "", raw_body: str | None = None,
             content_type: str = "application/x-www-form-urlencoded", base64_body: bool = False):
        body = raw_body if raw_body is not None else (urllib.parse.urlencode(form) if form is not None else "")
        headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": "pytest"}
        if method == "POST":
            headers["Content-Type"] = content_type
        event = proxy_event(method, f"/approvals/{reference}{query}", headers, body.encode(), headers["Host"])
        if base64_body:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body.encode()).decode(), True
        response = approval_api.lambda_handler(event, LambdaContext("approval_api", REGION))
        # REST API responses carry headers as multiValueHeaders.
        response["headers"] = {
            **{name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()},
            **(response.get("headers") or {}),
        }
        return response["statusCode"], response["body"], response

    call.stub = stub
    call.calls = calls
    yield call
    stub.deactivate()


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
        assert "frame-ancestors 'none'" in response["headers"]["Content-Security-Policy"]
    assert "Confusion matrix" in page and "<td>170</td>" in page and "0.9846" in page
    assert 'name="nonce"' in page and 'method="post"' in page
    assert TOKEN not in page
    api.stub.assert_no_pending_responses()  # nothing was queued: any Step Functions call would have failed
    assert record(world, sent["reference"])["status"]["S"] == "pending"


def test_the_link_preselects_its_decision(request_approval, world, api):
    sent = request(world, request_approval)
    _, page, _ = api("GET", sent["reference"], query="?decision=reject")
    assert 'value="reject" required checked' in page and 'value="approve" required checked' not in page


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
    assert status == 410 and "no longer waits" in page
    item = record(world, sent["reference"])
    assert item["status"]["S"] == "closed" and "decision" not in item
    # And it stays closed: no second call to Step Functions.
    status, _, _ = api("POST", sent["reference"], {"decision": "approve", "nonce": nonce})
    assert status == 410
    assert len(api.calls) == 1


def test_a_passing_step_functions_fault_reopens_the_request(request_approval, world, api):
    sent = request(world, request_approval)
    page = open_page(api, sent["reference"])
    form = {"decision": "approve", "reason": "", "nonce": nonce_of(page)}
    api.stub.add_client_error("send_task_success", "ServiceUnavailable", "try later", http_status_code=503)
    status, page, _ = api("POST", sent["reference"], form)
    assert status == 503 and "submit the form again" in page
    item = record(world, sent["reference"])
    assert item["status"]["S"] == "pending" and item["task_token"]["S"] == TOKEN

    api.stub.add_response("send_task_success", {})
    assert api("POST", sent["reference"], form)[0] == 200
    assert [operation for operation, _ in api.calls] == ["SendTaskSuccess", "SendTaskSuccess"]


def test_base64_encoded_form_bodies_are_accepted(request_approval, world, api):
    sent = request(world, request_approval)
    page = open_page(api, sent["reference"])
    api.stub.add_response("send_task_failure", {})
    form = {"decision": "reject", "reason": "stale data", "nonce": nonce_of(page)}
    status, _, _ = api("POST", sent["reference"], form, base64_body=True)
    assert status == 200 and api.calls[0][1]["cause"] == "stale data"


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
    api.stub.add_client_error("send_task_success", "ServiceUnavailable", f"echo {TOKEN}", http_status_code=503)
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
