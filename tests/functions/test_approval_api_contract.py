"""approval_api's decisions one by one: what the page shows and how it is
escaped, when a record can still take a decision (expiry to the second), what
the form may carry, how a conditional write that loses a race is told from a
failing one, and what the execution history says became of a decision.

Each test calls the function's own code with its AWS clients at the API
boundary: moto's DynamoDB (the records are written as request_approval writes
them) and botocore's Stubber on a real Step Functions client (a Stubber with
nothing queued fails any call, so "no Step Functions call" is checked too).
"""
from __future__ import annotations

import re

import json
import urllib.parse
from datetime import datetime, timezone
from types import SimpleNamespace

import boto3
import pytest
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from approval_support import approval_api, form_as_submitted  # noqa: F401 (fixtures)
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff
from botocore.stub import Stubber

from lambda_fixtures import REGION, TABLE, stubbed_client
from pipeline_common.approvals import approval_key, new_reference

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
NOW_EPOCH = int(NOW.timestamp())
NONCE = "n0nce-from-the-record"
TOKEN = "AQCEAAAA-task-token"
FORM = "application/x-www-form-urlencoded"
EXECUTION = f"arn:aws:states:{REGION}:123456789012:execution:car-pipeline:run-1"
SUMMARY = {"run_id": "car-0123456789ab", "dataset": "car", "production_endpoint": "car-evaluation-prod",
           "input_uri": "s3://uploads/input/car.csv", "problem_type": "multiclass", "rows": 259,
           "gate": {"metric": "accuracy", "value": 0.98, "threshold": 0.9, "higher_is_better": True},
           "accuracy": 0.98, "labels": ["unacc", "acc"], "confusion_matrix": [[5, 1], [0, 4]],
           "per_class": {"unacc": {"precision": 1.0, "recall": 0.8333, "f1": 0.909, "support": 6}}}


@pytest.fixture
def sfn():
    with stubbed_client("stepfunctions") as pair:
        yield pair


def store(dynamodb, status: str = "pending", expires_at: int = NOW_EPOCH + 3600, summary: dict | None = None,
          **fields) -> str:
    """A record as request_approval (and later approval_api) writes it; returns the link reference."""
    reference = new_reference()
    item = {"pk": {"S": approval_key(reference)}, "status": {"S": status}, "task_token": {"S": TOKEN},
            "nonce": {"S": NONCE}, "summary": {"S": json.dumps(summary or SUMMARY)},
            "expires_at": {"N": str(expires_at)}, "execution_arn": {"S": EXECUTION}}
    item.update({name: {"N": str(value)} if isinstance(value, int) else {"S": value} for name, value in fields.items()})
    dynamodb.put_item(TableName=TABLE, Item=item)
    return reference


def stored(dynamodb, reference: str) -> dict:
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": approval_key(reference)}})["Item"]
    return {name: value.get("S", value.get("N")) for name, value in item.items()}


def body(**fields) -> str:
    return urllib.parse.urlencode({"nonce": NONCE, **fields})


def decide(approval_api, dynamodb, sfn_client, reference, form_body, content_type=FORM, now=NOW,
           remaining=lambda: 25.0):
    return approval_api.decide(dynamodb, sfn_client, TABLE, reference, form_body, content_type, now=now,
                               remaining_seconds=remaining)


# ---------------------------------------------------------------- the time one call may take

@pytest.mark.parametrize("attempts", [1, 2, 3, 7, 8])
def test_the_worst_case_of_a_call_is_every_attempt_timing_out_plus_botocores_largest_backoff(approval_api, attempts):
    """The function refuses to call Step Functions with less time left than this: too small a number lets
    Lambda kill it between the callback and the record of its outcome. Checked against botocore's own
    standard-mode backoff (rand = 1; doubling from 1 s, capped at 20 s from the 6th retry on)."""
    config = Config(connect_timeout=1, read_timeout=4, retries={"mode": "standard", "total_max_attempts": attempts})
    backoff = ExponentialBackoff(random=lambda: 1.0)
    delays = sum(backoff.delay_amount(SimpleNamespace(attempt_number=n)) for n in range(1, attempts))
    assert approval_api.worst_case_seconds(config) == attempts * 5 + delays
    assert approval_api.DELIVERY_BUDGET_SECONDS == approval_api.worst_case_seconds(approval_api.SFN_CONFIG) + \
        approval_api.worst_case_seconds(approval_api.DYNAMODB_CONFIG)


# ---------------------------------------------------------------- escaping

def test_a_quote_in_a_value_cannot_leave_the_attribute_it_is_written_into(approval_api):
    """The nonce and the decision travel in hidden inputs' value="...": a `"` written as is would end the
    attribute (and let the rest add attributes of its own); the browser must submit exactly what was stored."""
    nonce = 'abc" autofocus onfocus="alert(1)'
    record = {"nonce": nonce, "decision": "approve\" x='1", "expires_at": NOW_EPOCH}
    fields, _ = form_as_submitted(approval_api.form_html(record))
    assert fields["nonce"] == nonce
    assert 'value="abc&quot; autofocus onfocus=&quot;alert(1)"' in approval_api.form_html(record)
    fields, _ = form_as_submitted(approval_api.redeliver_form_html(record))
    assert fields == {"decision": "approve\" x='1", "nonce": nonce}
    assert "&#x27;" in approval_api._e("it's") and "&quot;" in approval_api._e('say "x"')


def test_page_values_are_escaped_and_control_characters_made_visible(approval_api):
    summary = {**SUMMARY, "input_uri": "s3://b/<script>x</script>\n\u202e.csv", "run_id": 'r"1'}
    page = approval_api.document(approval_api.Page(200, approval_api.approval_title(summary),
                                                   approval_api.summary_html(summary)))
    assert "<script>" not in page
    assert "s3://b/&lt;script&gt;x&lt;/script&gt;\\x0a\\u202e.csv" in page
    assert "<title>Approve car run r&quot;1 for production?</title>" in page
    assert "<h1>Approve car run r&quot;1 for production?</h1>" in page


# ---------------------------------------------------------------- what the page says

def test_the_summary_states_the_gate_the_way_it_was_judged(approval_api):
    page = approval_api.summary_html(SUMMARY)
    assert "<dt>Quality gate</dt><dd>accuracy 0.9800 &ge; 0.9000 on 259 held-out rows</dd>" in page
    lower = {**SUMMARY, "gate": {"metric": "rmse", "value": 1.5, "threshold": 2.0, "higher_is_better": False,
                                 "threshold_source": "dataset spec"}}
    assert "rmse 1.5000 &le; 2.0000 on 259 held-out rows, threshold from dataset spec</dd>" in \
        approval_api.summary_html(lower)
    # A gate that does not say which way is better is the accuracy kind: higher is better.
    unsaid = {**SUMMARY, "gate": {"metric": "accuracy", "value": 0.98, "threshold": 0.9}}
    assert "0.9800 &ge; 0.9000" in approval_api.summary_html(unsaid)


def test_a_record_from_before_issue_11_shows_its_accuracy_gate(approval_api):
    old = {"run_id": "r", "accuracy": 0.95, "threshold": 0.9, "rows": 10}
    page = approval_api.summary_html(old)
    assert "accuracy 0.9500 &ge; 0.9000 on 10 held-out rows" in page
    assert "<dt>Dataset</dt><dd>not recorded (multiclass)</dd>" in page
    assert approval_api.approval_title(old) == "Approve run r for production?"


def test_the_summary_names_run_dataset_label_input_production_and_report(approval_api):
    summary = {**SUMMARY, "label_name": "class", "report_uri": "s3://a/qa/report.json"}
    page = approval_api.summary_html(summary)
    for expected in ("<dt>Run</dt><dd>car-0123456789ab</dd>",
                     "<dt>Dataset</dt><dd>car (multiclass, label class)</dd>",
                     "<dt>Input</dt><dd>s3://uploads/input/car.csv</dd>",
                     "<dt>Production endpoint</dt><dd>car-evaluation-prod</dd>",
                     "<dt>QA report</dt><dd>s3://a/qa/report.json</dd>"):
        assert expected in page
    assert approval_api.approval_title(summary) == "Approve car run car-0123456789ab for production?"


def test_classification_tables_have_class_names_as_row_heads(approval_api):
    page = approval_api.classification_html(SUMMARY)
    assert "<dt>Accuracy</dt><dd>0.9800</dd>" in page and "ROC AUC" not in page
    assert ("<tr><th>unacc</th><td>1.000</td><td>0.833</td><td>0.909</td><td>6</td></tr>") in page
    assert "<tr><th></th><th>unacc</th><th>acc</th></tr><tr><th>unacc</th><td>5</td><td>1</td></tr>" in page
    binary = {**SUMMARY, "problem_type": "binary", "roc_auc": 0.9, "binary_threshold": 0.5, "positive_label": "yes"}
    assert "<dt>ROC AUC</dt><dd>0.9000 (from the endpoint's labels at threshold 0.50 for yes:" in \
        approval_api.classification_html(binary)


def test_regression_quantiles_are_a_plain_row_and_errors_list_their_features(approval_api):
    summary = {"problem_type": "regression", "rmse": 1.0, "mae": 0.5, "r2": 0.75, "label_mean": 3.0, "label_std": 1.25,
               "residuals": {"mean": 0.125, "quantiles": {"p50": 0.1, "p90": 2.0}},
               "largest_errors": [{"row": 7, "truth": 10.0, "predicted": 4.0, "residual": 6.0,
                                   "features": ["a", "<b>"]}]}
    page = approval_api.summary_html(summary)
    assert "<table><tr><th>p50</th><th>p90</th></tr><tr><td>0.1000</td><td>2.0000</td></tr></table>" in page
    assert "<tr><th>7</th><td>10.0000</td><td>4.0000</td><td>6.0000</td><td>a,&lt;b&gt;</td></tr>" in page
    assert "<dt>R-squared</dt><dd>0.7500</dd>" in page and "mean 3.0000, std 1.2500" in page
    assert "True minus predicted; mean 0.1250." in page


def test_the_form_preselects_nothing_and_states_its_limits(approval_api):
    record = {"nonce": NONCE, "expires_at": NOW_EPOCH}
    page = approval_api.form_html(record, "Pick one", 'a "quoted" <reason>')
    fields, radios = form_as_submitted(page)
    assert [radio["value"] for radio in radios] == ["approve", "reject"]
    assert all("required" in radio and "checked" not in radio for radio in radios)
    assert fields == {"reason": 'a "quoted" <reason>', "nonce": NONCE}
    assert '<p class="error">Pick one</p>' in page and 'maxlength="2000"' in page
    assert "This request expires at 2025-01-02T03:04:05Z." in page
    assert '<p class="error">' not in approval_api.form_html(record)


@pytest.mark.parametrize("decision, word", [("approve", "approved"), ("reject", "rejected")])
def test_a_decided_record_says_which_decision_and_when(approval_api, decision, word):
    page = approval_api.already_decided({"decision": decision, "decided_at": "2025-01-02T03:04:05Z"})
    assert (page.status, page.title) == (409, "Already decided")
    assert f"This run was already {word} at 2025-01-02T03:04:05Z." in page.body


@pytest.mark.parametrize("decision, title, text", [
    ("approve", "Approved", "Run r1 is approved. The pipeline now updates production endpoint prod-ep"),
    ("reject", "Rejected", "Run r1 is rejected. Production stays as it is."),
])
def test_the_delivered_page_says_what_happens_next(approval_api, decision, title, text):
    page = approval_api.delivered({"decision": decision, "summary": {"run_id": "r1", "production_endpoint": "prod-ep"}})
    assert (page.status, page.title) == (200, title) and text in page.body


def test_pages_of_a_decision_in_delivery(approval_api):
    record = {"decision": "reject", "nonce": NONCE, "submitted_at": "2025-01-02T03:00:00Z", "summary": {"run_id": "r1"}}
    unconfirmed = approval_api.unconfirmed(record)
    assert (unconfirmed.status, unconfirmed.title) == (202, "Your decision may have been applied")
    assert "Your decision to reject run r1 was submitted at 2025-01-02T03:00:00Z" in unconfirmed.body
    assert form_as_submitted(unconfirmed.body)[0] == {"decision": "reject", "nonce": NONCE}
    shown = approval_api.in_delivery(record)
    assert (shown.status, shown.title) == (200, "A decision was submitted; its delivery is not confirmed")
    locked = approval_api.decision_locked(record)
    assert (locked.status, locked.title) == (409, "A decision was already submitted")
    assert "A decision to reject this run was already submitted at 2025-01-02T03:00:00Z" in locked.body
    assert form_as_submitted(locked.body)[0] == {"decision": "reject", "nonce": NONCE}


def test_every_page_is_a_complete_document(approval_api):
    page = approval_api.document(approval_api.Page(200, "T", "<p>b</p>"))
    assert page.startswith('<!doctype html><html lang="en"><head><meta charset="utf-8">')
    assert '<meta name="robots" content="noindex,nofollow">' in page
    assert page.endswith("<h1>T</h1><p>b</p></body></html>")


# ---------------------------------------------------------------- records and expiry

def test_a_record_reads_back_strings_numbers_and_its_summary(approval_api, state_table):
    reference = store(state_table, decided_at="2025-01-02T03:04:05Z")
    record = approval_api.load_record(state_table, TABLE, reference)
    assert record["expires_at"] == NOW_EPOCH + 3600 and record["nonce"] == NONCE
    assert record["summary"] == SUMMARY and record["status"] == "pending"
    state_table.update_item(TableName=TABLE, Key={"pk": {"S": approval_key(reference)}},
                            UpdateExpression="SET flag = :f REMOVE summary", ExpressionAttributeValues={":f": {"BOOL": True}})
    record = approval_api.load_record(state_table, TABLE, reference)
    assert record["summary"] == {} and record["flag"] is None
    assert approval_api.load_record(state_table, TABLE, new_reference()) is None


def test_the_link_expires_at_its_second(approval_api, state_table, sfn):
    """expires_at is the first second the link no longer decides (request_approval: now + the window)."""
    client, _ = sfn
    at = store(state_table, expires_at=NOW_EPOCH)
    assert approval_api.page_for(approval_api.load_record(state_table, TABLE, at), NOW_EPOCH) is approval_api.EXPIRED
    assert approval_api.page_for(approval_api.load_record(state_table, TABLE, at), NOW_EPOCH - 1) is None
    assert decide(approval_api, state_table, client, at, body(decision="approve")) is approval_api.EXPIRED
    assert approval_api.show_request(state_table, TABLE, at, now=NOW) is approval_api.EXPIRED
    assert stored(state_table, at)["status"] == "pending"


@pytest.mark.parametrize("status, page", [("closed", "ENDED"), ("whatever", "ENDED")])
def test_a_record_no_longer_pending_takes_no_decision(approval_api, state_table, sfn, status, page):
    client, _ = sfn
    reference = store(state_table, status=status)
    assert decide(approval_api, state_table, client, reference, body(decision="approve")) is getattr(approval_api, page)
    assert approval_api.page_for(approval_api.load_record(state_table, TABLE, reference), NOW_EPOCH) is \
        getattr(approval_api, page)


def test_a_deciding_record_shows_its_delivery_whatever_the_expiry(approval_api, state_table):
    reference = store(state_table, status="deciding", expires_at=NOW_EPOCH - 10, decision="approve",
                      submitted_at="2025-01-02T03:00:00Z", attempt_id="a1")
    page = approval_api.show_request(state_table, TABLE, reference, now=NOW)
    assert page.title == "A decision was submitted; its delivery is not confirmed"


def test_a_decision_recorded_before_the_expiry_is_delivered_after_it(approval_api, state_table, sfn):
    """The decision was taken in time and its delivery is not confirmed: sending it again after the link's
    expiry is still allowed (only a new decision needs an open link)."""
    client, stub = sfn
    reference = store(state_table, status="deciding", expires_at=NOW_EPOCH - 10, decision="approve", reason="",
                      submitted_at="2025-01-02T03:00:00Z", attempt_id="a1")
    stub.add_response("send_task_success", {})
    assert decide(approval_api, state_table, client, reference, body(decision="approve")).title == "Approved"


def test_a_post_at_the_expiry_second_is_expired_whatever_it_carries(approval_api, state_table, sfn):
    """An expired link says so, before the form is looked at: a stale form must not be told it was not
    submitted from the page, nor asked to try again."""
    client, _ = sfn
    reference = store(state_table, expires_at=NOW_EPOCH)
    assert decide(approval_api, state_table, client, reference, "decision=approve", content_type="text/plain") is \
        approval_api.EXPIRED
    assert decide(approval_api, state_table, client, reference, body(decision="approve"), remaining=lambda: 0.0) is \
        approval_api.EXPIRED
    assert stored(state_table, reference)["status"] == "pending"


def test_the_record_is_read_strongly_consistent(approval_api):
    """A page read right after another request's write must see it: GetItem is eventually consistent unless
    ConsistentRead is true (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_GetItem.html)."""
    reference = new_reference()
    with stubbed_client("dynamodb") as (client, stub):
        stub.add_response("get_item", {}, {"TableName": TABLE, "Key": {"pk": {"S": approval_key(reference)}},
                                           "ConsistentRead": True})
        assert approval_api.load_record(client, TABLE, reference) is None


# ---------------------------------------------------------------- what a POST may carry

def test_the_content_type_is_read_case_insensitively(approval_api, state_table, sfn):
    client, stub = sfn
    reference = store(state_table)
    stub.add_response("send_task_success", {})
    page = decide(approval_api, state_table, client, reference, body(decision="approve"),
                  content_type="Application/X-WWW-Form-URLEncoded; charset=UTF-8")
    assert (page.status, page.title) == (200, "Approved")


def test_a_form_flooded_with_fields_is_unreadable(approval_api, state_table, sfn):
    """The page's form has 3 fields; parse_qs's max_num_fields stops a body of thousands before it is parsed."""
    client, stub = sfn
    reference = store(state_table)
    flood = body(decision="approve") + "".join(f"&x{i}=1" for i in range(19))  # 21 fields
    assert decide(approval_api, state_table, client, reference, flood) is approval_api.UNREADABLE
    stub.add_response("send_task_success", {})
    twenty = body(decision="approve") + "".join(f"&x{i}=1" for i in range(18))
    assert decide(approval_api, state_table, client, reference, twenty).title == "Approved"


def test_a_blank_field_counts_as_given(approval_api, state_table, sfn):
    """keep_blank_values: `reason=` is a reason field left empty, and a rejection needs one."""
    client, _ = sfn
    reference = store(state_table)
    page = decide(approval_api, state_table, client, reference, "nonce=" + NONCE + "&decision=reject&reason=")
    assert page.status == 400
    assert '<p class="error">Give a reason for the rejection: it is sent to the pipeline and the failure ' \
           'notification.</p>' in page.body
    fields, _ = form_as_submitted(page.body)
    assert fields["nonce"] == NONCE


def test_the_reason_may_be_exactly_the_limit(approval_api, state_table, sfn):
    client, stub = sfn
    reference = store(state_table)
    too_long = decide(approval_api, state_table, client, reference, body(decision="reject", reason="x" * 2001))
    assert too_long.status == 400 and "The reason is longer than 2000 characters." in too_long.body
    # The form comes back with the reason cut to what the textarea accepts.
    assert form_as_submitted(too_long.body)[0]["reason"] == "x" * 2000
    assert too_long.title == "Approve car run car-0123456789ab for production?"
    stub.add_response("send_task_failure", {}, {"taskToken": TOKEN, "error": "ApprovalRejected", "cause": "x" * 2000})
    assert decide(approval_api, state_table, client, reference, body(decision="reject", reason="x" * 2000)).title == \
        "Rejected"


def test_the_reason_travels_on_one_line(approval_api, state_table, sfn):
    client, stub = sfn
    reference = store(state_table)
    stub.add_response("send_task_failure", {}, {"taskToken": TOKEN, "error": "ApprovalRejected",
                                                 "cause": "too low\\x07 on acc"})
    decide(approval_api, state_table, client, reference, body(decision="reject", reason="too\r\n low\x07\t on  acc"))
    assert stored(state_table, reference)["reason"] == "too low\\x07 on acc"


def test_exactly_the_delivery_budget_left_is_enough(approval_api, state_table, sfn):
    client, stub = sfn
    budget = approval_api.DELIVERY_BUDGET_SECONDS
    reference = store(state_table)
    assert decide(approval_api, state_table, client, reference, body(decision="approve"),
                  remaining=lambda: budget - 0.001) is approval_api.TRY_AGAIN
    assert stored(state_table, reference)["status"] == "pending"
    stub.add_response("send_task_success", {})
    assert decide(approval_api, state_table, client, reference, body(decision="approve"),
                  remaining=lambda: budget).title == "Approved"


def test_time_running_out_after_the_decision_is_recorded_sends_nothing_and_reopens(approval_api, state_table, sfn):
    """The budget is checked again after the decision write: a slow write can leave too little time for the
    call. Nothing is sent, the request is open again, and the page says so (not "may have been applied")."""
    client, stub = sfn
    budget = approval_api.DELIVERY_BUDGET_SECONDS
    reference = store(state_table)
    left = iter([budget, budget - 0.001])
    page = decide(approval_api, state_table, client, reference, body(decision="approve"), remaining=lambda: next(left))
    assert page is approval_api.TRY_AGAIN
    stub.assert_no_pending_responses()  # the stubbed client would refuse any call it was not given
    assert stored(state_table, reference)["status"] == "pending"


def test_exactly_the_budget_left_after_an_uncertain_redelivery_reads_the_history(approval_api, state_table, sfn):
    """A redelivery meets a closed task: an earlier attempt may have landed. With exactly the budget left the
    history is read, and it says approved."""
    client, stub = sfn
    reference = store(state_table, status="deciding", decision="approve", attempt_id="a1", reason="",
                      submitted_at="2025-01-02T03:00:00Z")
    stub.add_client_error("send_task_success", "TaskTimedOut", http_status_code=400)
    _history(stub, [task("TaskSucceeded")])
    page = decide(approval_api, state_table, client, reference, body(decision="approve"),
                  remaining=lambda: approval_api.DELIVERY_BUDGET_SECONDS)
    assert (page.status, page.title) == (200, "Approved")
    assert stored(state_table, reference)["status"] == "decided"


# ---------------------------------------------------------------- conditional writes and the lost race

def _interleave(dynamodb, operation: str, action):
    """Run `action` just before the next `operation` call of `dynamodb` reaches moto (another request's write)."""
    done = []

    def before(**_):
        if not done:
            done.append(True)
            action()

    dynamodb.meta.events.register(f"before-call.dynamodb.{operation}", before)


def test_a_decision_that_loses_the_race_shows_the_winner(approval_api, state_table, sfn):
    """Another request decided between this one's read and its conditional write: this one sends nothing and
    shows what the record holds now."""
    client, _ = sfn
    reference = store(state_table)
    key = {"pk": {"S": approval_key(reference)}}
    other = boto3.client("dynamodb", region_name=REGION)
    _interleave(state_table, "UpdateItem", lambda: other.update_item(
        TableName=TABLE, Key=key, UpdateExpression="SET #s = :d, decision = :x, decided_at = :t",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":d": {"S": "decided"}, ":x": {"S": "reject"}, ":t": {"S": "2025-01-02T03:04:00Z"}}))
    page = decide(approval_api, state_table, client, reference, body(decision="approve"))
    assert (page.status, page.title) == (409, "Already decided")
    assert "already rejected at 2025-01-02T03:04:00Z" in page.body
    assert stored(state_table, reference)["decision"] == "reject"


def test_a_decision_whose_record_vanished_mid_race_is_unknown(approval_api, state_table, sfn):
    client, _ = sfn
    reference = store(state_table)
    other = boto3.client("dynamodb", region_name=REGION)
    _interleave(state_table, "UpdateItem", lambda: other.delete_item(
        TableName=TABLE, Key={"pk": {"S": approval_key(reference)}}))
    assert decide(approval_api, state_table, client, reference, body(decision="approve")) is approval_api.UNKNOWN


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException"])
def test_a_failing_write_is_an_error_not_a_lost_race(approval_api, state_table, sfn, code):
    """Only ConditionalCheckFailedException means "the record moved on"; a throttled or denied write must not
    be shown as "Decision not accepted" or as someone else's decision, and nothing is sent."""
    client, _ = sfn
    reference = store(state_table)

    def fail(**_):
        raise ClientError({"Error": {"Code": code, "Message": "no"}}, "UpdateItem")

    state_table.meta.events.register("before-call.dynamodb.UpdateItem", fail)
    with pytest.raises(ClientError) as raised:
        decide(approval_api, state_table, client, reference, body(decision="approve"))
    assert raised.value.response["Error"]["Code"] == code


def test_the_decision_write_is_conditional_on_pending_nonce_and_time(approval_api, state_table, sfn):
    """The write itself re-checks what the read saw: a record that expired, or whose nonce changed, in between
    is not overwritten."""
    client, _ = sfn
    reference = store(state_table)
    other = boto3.client("dynamodb", region_name=REGION)
    key = {"pk": {"S": approval_key(reference)}}
    _interleave(state_table, "UpdateItem", lambda: other.update_item(
        TableName=TABLE, Key=key, UpdateExpression="SET nonce = :n", ExpressionAttributeValues={":n": {"S": "new"}}))
    # Still pending and open: the form this POST came from is no longer the record's.
    assert decide(approval_api, state_table, client, reference, body(decision="approve")) is approval_api.NOT_FROM_FORM
    assert stored(state_table, reference)["status"] == "pending"

    reference = store(state_table, expires_at=NOW_EPOCH + 1)
    key = {"pk": {"S": approval_key(reference)}}
    _interleave(state_table, "UpdateItem", lambda: other.update_item(
        TableName=TABLE, Key=key, UpdateExpression="SET expires_at = :e", ExpressionAttributeValues={":e": {"N": str(NOW_EPOCH)}}))
    assert decide(approval_api, state_table, client, reference, body(decision="approve")) is approval_api.EXPIRED
    assert stored(state_table, reference)["status"] == "pending"


def test_the_update_writes_numbers_as_numbers_and_removes_what_it_names(approval_api, state_table):
    reference = store(state_table, status="deciding", decision="approve", attempt_id="a1", reason="r")
    assert approval_api._update(state_table, TABLE, reference, "SET #s = :p, n = :n", "#s = :d",
                                {":p": "pending", ":n": 7, ":d": "deciding"}, remove="reason, attempt_id")
    item = state_table.get_item(TableName=TABLE, Key={"pk": {"S": approval_key(reference)}})["Item"]
    assert item["n"] == {"N": "7"} and item["status"] == {"S": "pending"}
    assert "reason" not in item and "attempt_id" not in item and item["decision"] == {"S": "approve"}
    assert not approval_api._update(state_table, TABLE, reference, "SET n = :n", "#s = :d", {":n": 8, ":d": "deciding"})


# ---------------------------------------------------------------- a decision already recorded (deciding)

def test_a_repeated_decision_refreshes_its_attempt_and_is_delivered(approval_api, state_table, sfn):
    client, stub = sfn
    reference = store(state_table, status="deciding", decision="approve", attempt_id="old", reason="",
                      submitted_at="2025-01-02T03:00:00Z")
    stub.add_response("send_task_success", {})
    page = decide(approval_api, state_table, client, reference, body(decision="approve"))
    assert page.title == "Approved"
    after = stored(state_table, reference)
    assert after["status"] == "decided" and after["attempt_id"] != "old"
    assert after["attempted_at"] == "2025-01-02T03:04:05Z" and after["decided_at"] == "2025-01-02T03:04:05Z"


@pytest.mark.parametrize("meanwhile, expected", [
    ("SET #s = :v, decided_at = :t", "Already decided"),  # the other request's delivery landed
    ("SET #s = :p REMOVE attempt_id", "Decision not accepted"),  # its delivery was refused: reopened
])
def test_a_redelivery_that_loses_the_race_shows_where_the_record_is(approval_api, state_table, sfn, meanwhile,
                                                                     expected):
    client, _ = sfn
    reference = store(state_table, status="deciding", decision="approve", attempt_id="a1", reason="",
                      submitted_at="2025-01-02T03:00:00Z")
    other = boto3.client("dynamodb", region_name=REGION)
    values = {":v": {"S": "decided"}, ":t": {"S": "2025-01-02T03:04:00Z"}} if ":v" in meanwhile else \
        {":p": {"S": "pending"}}
    _interleave(state_table, "UpdateItem", lambda: other.update_item(
        TableName=TABLE, Key={"pk": {"S": approval_key(reference)}}, UpdateExpression=meanwhile,
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues=values))
    page = decide(approval_api, state_table, client, reference, body(decision="approve"))
    assert page.title == expected  # and nothing sent: the stubbed client was given no answer
    if expected == "Already decided":
        assert "already approved at 2025-01-02T03:04:00Z" in page.body


def test_an_approval_without_a_reason_field_sends_an_empty_reason(approval_api, state_table, sfn):
    client, stub = sfn
    reference = store(state_table)
    stub.add_response("send_task_success", {}, {"taskToken": TOKEN, "output": json.dumps(
        {"decision": "approve", "reason": "", "decided_at": "2025-01-02T03:04:05Z"})})
    assert decide(approval_api, state_table, client, reference, f"nonce={NONCE}&decision=approve").title == "Approved"
    assert stored(state_table, reference)["reason"] == ""


def test_the_other_decision_cannot_replace_a_recorded_one(approval_api, state_table, sfn):
    client, _ = sfn
    reference = store(state_table, status="deciding", decision="approve", attempt_id="a1",
                      submitted_at="2025-01-02T03:00:00Z")
    page = decide(approval_api, state_table, client, reference, body(decision="reject", reason="no"))
    assert (page.status, page.title) == (409, "A decision was already submitted")
    assert stored(state_table, reference)["decision"] == "approve"


# ---------------------------------------------------------------- what the history says

def _history(stub, events, next_token=None, token_in=None):
    params = {"executionArn": EXECUTION, "reverseOrder": True, "includeExecutionData": False, "maxResults": 1000}
    if token_in:
        params["nextToken"] = token_in
    answer = {"events": [{"id": i + 1, "timestamp": NOW, **event} for i, event in enumerate(events)]}
    if next_token:
        answer["nextToken"] = next_token
    stub.add_response("get_execution_history", answer, params)


CALLBACK = {"resourceType": "lambda", "resource": "invoke.waitForTaskToken"}


def task(kind: str, **details) -> dict:
    key = {"TaskScheduled": "taskScheduledEventDetails", "TaskSucceeded": "taskSucceededEventDetails",
           "TaskFailed": "taskFailedEventDetails", "TaskTimedOut": "taskTimedOutEventDetails"}[kind]
    extra = {"region": REGION, "parameters": "{}"} if kind == "TaskScheduled" else {}
    return {"type": kind, key: {**CALLBACK, **extra, **details}}


@pytest.mark.parametrize("events, outcome", [
    ([task("TaskSucceeded")], "approve"),
    ([task("TaskFailed", error="ApprovalRejected")], "reject"),
    ([task("TaskFailed", error="States.Runtime")], "ended"),
    ([task("TaskTimedOut", error="ApprovalRejected")], "ended"),  # a timeout is not a rejection, whatever its error
    ([task("TaskFailed")], None),  # no error: a rejection cannot be told from anything else
    ([task("TaskScheduled")], None),  # still waiting
    ([{"type": "ExecutionAborted", "executionAbortedEventDetails": {}}, task("TaskScheduled")], "ended"),
    ([{"type": "ExecutionTimedOut", "executionTimedOutEventDetails": {}}], "ended"),
    # The run ended *after* the task's outcome (a rejection fails the run): the outcome still counts.
    ([{"type": "ExecutionFailed", "executionFailedEventDetails": {}}, task("TaskFailed", error="ApprovalRejected")],
     "reject"),
    ([{"type": "ExecutionSucceeded", "executionSucceededEventDetails": {}}, task("TaskSucceeded")], "approve"),
    ([], None),
])
def test_the_history_tells_what_became_of_the_approval_task(approval_api, sfn, events, outcome):
    client, stub = sfn
    _history(stub, events)
    assert approval_api.approval_outcome(client, EXECUTION) == outcome


def test_only_the_callback_task_counts_and_the_newest_one_wins(approval_api, sfn):
    client, stub = sfn
    other = {"type": "TaskSucceeded", "taskSucceededEventDetails": {"resourceType": "lambda", "resource": "invoke"}}
    _history(stub, [other, task("TaskScheduled"), task("TaskSucceeded")])
    assert approval_api.approval_outcome(client, EXECUTION) is None  # a newer approval task is waiting


def test_the_history_is_read_page_by_page_up_to_three_pages(approval_api, sfn):
    client, stub = sfn
    _history(stub, [{"type": "TaskStateExited", "stateExitedEventDetails": {"name": "x"}}], next_token="p2")
    _history(stub, [], next_token="p3", token_in="p2")
    _history(stub, [task("TaskFailed", error="ApprovalRejected")], next_token="p4", token_in="p3")
    assert approval_api.approval_outcome(client, EXECUTION) == "reject"

    _history(stub, [], next_token="p2")
    _history(stub, [], next_token="p3", token_in="p2")
    _history(stub, [], next_token="p4", token_in="p3")
    assert approval_api.approval_outcome(client, EXECUTION) is None  # a fourth page is never asked for


@pytest.mark.parametrize("outcome, result", [("approve", "delivered"), ("reject", "closed"), ("ended", "closed"),
                                             (None, "uncertain")])
def test_the_history_settles_a_decision_to_approve(approval_api, sfn, outcome, result):
    client, stub = sfn
    events = {"approve": [task("TaskSucceeded")], "reject": [task("TaskFailed", error="ApprovalRejected")],
              "ended": [task("TaskTimedOut", error="States.Timeout")], None: [task("TaskScheduled")]}[outcome]
    _history(stub, events)
    assert approval_api._resolve_from_history(client, {"execution_arn": EXECUTION, "decision": "approve"}) == result


def test_no_execution_or_an_unreadable_history_is_uncertain(approval_api, sfn):
    client, stub = sfn
    assert approval_api._resolve_from_history(client, {"decision": "approve"}) == "uncertain"
    stub.add_client_error("get_execution_history", "AccessDeniedException", http_status_code=400)
    assert approval_api._resolve_from_history(client, {"execution_arn": EXECUTION, "decision": "approve"}) == \
        "uncertain"


# ---------------------------------------------------------------- when the outcome cannot be recorded

def _fail_second_update(dynamodb, code: str = "ProvisionedThroughputExceededException"):
    """The decision write succeeds; the write that records the outcome fails (after botocore's retries)."""
    calls = []

    def maybe_fail(**_):
        calls.append(True)
        if len(calls) >= 2:
            raise ClientError({"Error": {"Code": code, "Message": "no"}}, "UpdateItem")

    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", maybe_fail)


def test_a_delivered_decision_is_reported_delivered_even_if_the_table_cannot_record_it(approval_api, state_table, sfn):
    client, stub = sfn
    reference = store(state_table)
    stub.add_response("send_task_success", {})
    _fail_second_update(state_table)
    page = decide(approval_api, state_table, client, reference, body(decision="approve"))
    assert (page.status, page.title) == (200, "Approved")
    assert stored(state_table, reference)["status"] == "deciding"  # the next visit redelivers; it counts once


def test_a_closed_task_is_reported_ended_even_if_the_table_cannot_record_it(approval_api, state_table, sfn):
    client, stub = sfn
    reference = store(state_table)
    stub.add_client_error("send_task_success", "TaskTimedOut", http_status_code=400)
    _fail_second_update(state_table)
    assert decide(approval_api, state_table, client, reference, body(decision="approve")) is approval_api.ENDED


def test_a_refused_decision_that_cannot_be_reopened_may_have_been_applied(approval_api, state_table, sfn):
    """Refused, but the record still says deciding: the page must not claim "nothing was changed"."""
    client, stub = sfn
    reference = store(state_table)
    stub.add_client_error("send_task_success", "ThrottlingException", http_status_code=400)
    _fail_second_update(state_table)
    page = decide(approval_api, state_table, client, reference, body(decision="approve"))
    assert (page.status, page.title) == (202, "Your decision may have been applied")


def test_a_refused_decision_reopens_the_record_for_a_new_one(approval_api, state_table, sfn):
    client, stub = sfn
    reference = store(state_table)
    stub.add_client_error("send_task_success", "ThrottlingException", http_status_code=400)
    assert decide(approval_api, state_table, client, reference, body(decision="approve")) is approval_api.TRY_AGAIN
    after = stored(state_table, reference)
    assert after["status"] == "pending" and after["task_token"] == TOKEN
    assert not {"decision", "reason", "attempt_id", "submitted_at", "attempted_at"} & set(after)


def _meanwhile(client, operation: str, action):
    """Run `action` while this request's `operation` call is on its way (another request's doing)."""
    client.meta.events.register(f"before-parameter-build.sfn.{operation}", lambda **_: action())


def test_a_closed_task_after_another_request_delivered_shows_that_decision(approval_api, state_table, sfn):
    """A double submit: the other request delivered the approval while this one's call met the task it had
    closed. This one cannot record "closed" over "decided", and shows the decision that was applied."""
    client, stub = sfn
    reference = store(state_table)
    other = boto3.client("dynamodb", region_name=REGION)
    _meanwhile(client, "SendTaskSuccess", lambda: other.update_item(
        TableName=TABLE, Key={"pk": {"S": approval_key(reference)}},
        UpdateExpression="SET #s = :d, attempt_id = :a, decided_at = :t", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":d": {"S": "decided"}, ":a": {"S": "other"}, ":t": {"S": "2025-01-02T03:04:04Z"}}))
    stub.add_client_error("send_task_success", "TaskTimedOut", http_status_code=400)
    page = decide(approval_api, state_table, client, reference, body(decision="approve"))
    assert (page.status, page.title) == (409, "Already decided")
    assert "already approved at 2025-01-02T03:04:04Z" in page.body
    assert stored(state_table, reference)["status"] == "decided"


def test_a_refused_decision_after_another_request_reopened_the_record_may_have_been_applied(approval_api, state_table,
                                                                                           sfn):
    """This request's call is refused, and meanwhile another request reopened the record: this one's reopen
    write finds no attempt of its own and leaves the record to the other request, open as it is."""
    client, stub = sfn
    reference = store(state_table)
    other = boto3.client("dynamodb", region_name=REGION)
    _meanwhile(client, "SendTaskSuccess", lambda: other.update_item(
        TableName=TABLE, Key={"pk": {"S": approval_key(reference)}}, UpdateExpression="SET #s = :p REMOVE attempt_id",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":p": {"S": "pending"}}))
    stub.add_client_error("send_task_success", "ThrottlingException", http_status_code=400)
    page = decide(approval_api, state_table, client, reference, body(decision="approve"))
    assert (page.status, page.title) == (202, "Your decision may have been applied")
    after = stored(state_table, reference)
    assert after["status"] == "pending" and "attempt_id" not in after and after["decision"] == "approve"


def test_a_closed_task_closes_the_record_and_drops_the_token(approval_api, state_table, sfn):
    client, stub = sfn
    reference = store(state_table)
    stub.add_client_error("send_task_success", "TaskTimedOut", http_status_code=400)
    assert decide(approval_api, state_table, client, reference, body(decision="approve")) is approval_api.ENDED
    after = stored(state_table, reference)
    assert after["status"] == "closed" and after["closed_at"] == "2025-01-02T03:04:05Z" and "task_token" not in after


def test_a_delivered_decision_is_recorded_with_its_time_and_without_the_token(approval_api, state_table, sfn):
    client, stub = sfn
    reference = store(state_table)
    stub.add_response("send_task_failure", {}, {"taskToken": TOKEN, "error": "ApprovalRejected", "cause": "no"})
    assert decide(approval_api, state_table, client, reference, body(decision="reject", reason="no")).title == "Rejected"
    after = stored(state_table, reference)
    assert (after["status"], after["decision"], after["reason"]) == ("decided", "reject", "no")
    assert after["decided_at"] == after["submitted_at"] == "2025-01-02T03:04:05Z" and "task_token" not in after


# ---------------------------------------------------------------- the request body

class _Event:
    def __init__(self, body, is_base64_encoded=False):
        self.body, self.is_base64_encoded = body, is_base64_encoded


def test_a_base64_body_must_be_strict_base64_of_utf8(approval_api):
    assert approval_api.form_body(_Event("ZGVjaXNpb249YXBwcm92ZQ==", True)) == "decision=approve"
    assert approval_api.form_body(_Event("decision=approve")) == "decision=approve"
    assert approval_api.form_body(_Event(None, True)) is None
    # Not base64 at all: refused rather than decoded from whatever characters happen to be valid.
    with pytest.raises(approval_api.UnreadableBody):
        approval_api.form_body(_Event("decision=approve", True))
    # Base64 with one stray character, which a lenient decoder would skip to read "decision=approve".
    with pytest.raises(approval_api.UnreadableBody):
        approval_api.form_body(_Event("ZGVj!aXNpb249YXBwcm92ZQ==", True))
    with pytest.raises(approval_api.UnreadableBody):
        approval_api.form_body(_Event("/w==", True))  # 0xff: not UTF-8


# ---------------------------------------------------------------- the pages, word for word
# What the approver reads decides what they do next ("nothing was changed" vs "may have been applied"); each
# page below was read against the module docstring's state machine before being pinned here.

GOLDEN_RECORD = {"decision": "reject", "nonce": "N1", "submitted_at": "T1", "decided_at": "T2", "expires_at": 1735787045,
                 "summary": {"run_id": "r1", "production_endpoint": "prod-ep"}}


@pytest.mark.parametrize("render, decision, expected", [
    ("already_decided", "reject", (409, 'Already decided', '<p>This run was already rejected at T2. A decision counts once; nothing was changed.</p>')),
    ("delivered", "approve", (200, 'Approved', '<p>Run r1 is approved. The pipeline now updates production endpoint prod-ep; a notification follows.</p>')),
    ("delivered", "reject", (200, 'Rejected', '<p>Run r1 is rejected. Production stays as it is.</p>')),
    ("unconfirmed", "reject", (202, 'Your decision may have been applied', '<p>Your decision to reject run r1 was submitted at T1, but whether it reached the pipeline is not known: the pipeline\'s answer did not arrive. <strong>Your decision may have been applied.</strong> The run\'s outcome email (deployed, or failed with the reason) will confirm it.</p><p>If no such email arrives within a few minutes, deliver the same decision again below, or open the link from the email again later. Delivering it twice is safe: it counts once, and it cannot be changed into the other decision.</p><form method="post"><input type="hidden" name="decision" value="reject"><input type="hidden" name="nonce" value="N1"><p><button type="submit">Deliver the decision to reject again</button></p></form>')),
    ("in_delivery", "reject", (200, 'A decision was submitted; its delivery is not confirmed', '<p>Your decision to reject run r1 was submitted at T1, but whether it reached the pipeline is not known: the pipeline\'s answer did not arrive. <strong>Your decision may have been applied.</strong> The run\'s outcome email (deployed, or failed with the reason) will confirm it.</p><p>If no such email arrives within a few minutes, deliver the same decision again below, or open the link from the email again later. Delivering it twice is safe: it counts once, and it cannot be changed into the other decision.</p><form method="post"><input type="hidden" name="decision" value="reject"><input type="hidden" name="nonce" value="N1"><p><button type="submit">Deliver the decision to reject again</button></p></form>')),
    ("decision_locked", "reject", (409, 'A decision was already submitted', '<p>A decision to reject this run was already submitted at T1 and may have been applied; it cannot be changed. Nothing else was sent to the pipeline.</p><form method="post"><input type="hidden" name="decision" value="reject"><input type="hidden" name="nonce" value="N1"><p><button type="submit">Deliver the decision to reject again</button></p></form>')),
])
def test_each_page_says_exactly_what_happened(approval_api, render, decision, expected):
    page = getattr(approval_api, render)({**GOLDEN_RECORD, "decision": decision})
    assert (page.status, page.title, page.body) == expected


def test_the_form_and_the_document_word_for_word(approval_api):
    assert approval_api.form_html(GOLDEN_RECORD) == ('<form method="post"><label><input type="radio" name="decision" value="approve" required> Approve: deploy this model to production</label><br><label><input type="radio" name="decision" value="reject" required> Reject: keep production as it is</label><br><p><label>Reason (required to reject)<br><textarea name="reason" rows="4" cols="60" maxlength="2000"></textarea></label></p><input type="hidden" name="nonce" value="N1"><p><button type="submit">Submit decision</button></p></form><p>This request expires at 2025-01-02T03:04:05Z.</p>')
    assert approval_api.document(approval_api.Page(200, "T", "<p>b</p>")) == ('<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex,nofollow"><meta name="viewport" content="width=device-width, initial-scale=1"><title>T</title><style>body{font-family:sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2rem .5rem;text-align:right}dt{font-weight:bold}.error{color:#a00}</style></head><body><h1>T</h1><p>b</p></body></html>')


def test_the_summary_and_result_sections_word_for_word(approval_api):
    regression = {"problem_type": "regression", "rmse": 1.0, "mae": 0.5, "r2": 0.75, "label_mean": 3.0, "label_std": 1.25,
                  "residuals": {"mean": 0.125, "quantiles": {"p50": 0.1, "p90": 2.0}},
                  "largest_errors": [{"row": 7, "truth": 10.0, "predicted": 4.0, "residual": 6.0, "features": ["a", "<b>"]}]}
    assert approval_api.regression_html(regression) == ('<h2>Regression</h2><dl><dt>RMSE</dt><dd>1.0000</dd><dt>MAE</dt><dd>0.5000</dd><dt>R-squared</dt><dd>0.7500</dd><dt>Held-out label</dt><dd>mean 3.0000, std 1.2500</dd></dl><h2>Residuals</h2><p>True minus predicted; mean 0.1250.</p><table><tr><th>p50</th><th>p90</th></tr><tr><td>0.1000</td><td>2.0000</td></tr></table><h2>Largest errors</h2><table><tr><th>test row</th><th>true</th><th>predicted</th><th>residual</th><th>features</th></tr><tr><th>7</th><td>10.0000</td><td>4.0000</td><td>6.0000</td><td>a,&lt;b&gt;</td></tr></table>')
    binary = {"problem_type": "binary", "accuracy": 0.98, "macro_f1": 0.97, "roc_auc": 0.9, "binary_threshold": 0.5,
              "positive_label": "yes", "labels": ["no", "yes"], "confusion_matrix": [[5, 1], [0, 4]],
              "per_class": {"no": {"precision": 1.0, "recall": 0.8333, "f1": 0.909, "support": 6}}}
    classification = approval_api.classification_html(binary)
    # The heat map (tests/functions/test_approval_figures.py checks it); the rest word for word.
    [figure] = re.findall(r"<figure>.*?</figure>", classification)
    assert figure.startswith('<figure><svg xmlns="http://www.w3.org/2000/svg" class="figure confusion"')
    assert classification.replace(figure, "") == ("<h2>Classification</h2><dl><dt>Accuracy</dt><dd>0.9800</dd><dt>Macro F1</dt><dd>0.9700</dd><dt>ROC AUC</dt><dd>0.9000 (from the endpoint's labels at threshold 0.50 for yes: one ROC point, equal to balanced accuracy)</dd></dl><h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr><tr><th>no</th><td>1.000</td><td>0.833</td><td>0.909</td><td>6</td></tr></table><h2>Confusion matrix</h2><p>Rows: true class. Columns: predicted class.</p><table><tr><th></th><th>no</th><th>yes</th></tr><tr><th>no</th><td>5</td><td>1</td></tr><tr><th>yes</th><td>0</td><td>4</td></tr></table>")
    summary = {"run_id": "r1", "dataset": "car", "production_endpoint": "prod-ep", "input_uri": "s3://in/car.csv",
               "label_name": "class", "problem_type": "multiclass", "rows": 259, "report_uri": "s3://a/qa.json",
               "gate": {"metric": "accuracy", "value": 0.98, "threshold": 0.9, "higher_is_better": True,
                        "threshold_source": "spec"},
               "accuracy": 0.98, "macro_f1": 0.97, "labels": ["no"], "confusion_matrix": [[5]], "per_class": {}}
    page = approval_api.summary_html(summary)
    [figure] = re.findall(r"<figure>.*?</figure>", page)
    assert page.replace(figure, "") == ('<dl><dt>Run</dt><dd>r1</dd><dt>Dataset</dt><dd>car (multiclass, label class)</dd><dt>Input</dt><dd>s3://in/car.csv</dd><dt>Production endpoint</dt><dd>prod-ep</dd><dt>Quality gate</dt><dd>accuracy 0.9800 &ge; 0.9000 on 259 held-out rows, threshold from spec</dd><dt>QA report</dt><dd>s3://a/qa.json</dd></dl><h2>Classification</h2><dl><dt>Accuracy</dt><dd>0.9800</dd><dt>Macro F1</dt><dd>0.9700</dd></dl><h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr></table><h2>Confusion matrix</h2><p>Rows: true class. Columns: predicted class.</p><table><tr><th></th><th>no</th></tr><tr><th>no</th><td>5</td></tr></table>')


# ---------------------------------------------------------------- time left and the callback's attempts

class _Context:
    def __init__(self, millis: int):
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_the_time_left_is_lambdas_in_seconds_and_unbounded_without_lambda(approval_api, monkeypatch):
    # Powertools keeps the context on BaseRouter, the class, and every resolve sets it there. Patching the
    # app instance would leave a stale context on it after the undo, seen by every later request.
    monkeypatch.setattr(BaseRouter, "lambda_context", _Context(12500), raising=False)
    assert approval_api._remaining_seconds() == 12.5
    # Exactly the budget left, as Lambda reports it in milliseconds, is enough to call Step Functions.
    budget_ms = int(approval_api.DELIVERY_BUDGET_SECONDS * 1000)
    monkeypatch.setattr(BaseRouter, "lambda_context", _Context(budget_ms), raising=False)
    assert approval_api._remaining_seconds() >= approval_api.DELIVERY_BUDGET_SECONDS
    # The resolver run without a Lambda context (a script, a local server without one) never runs out of time.
    monkeypatch.setattr(BaseRouter, "lambda_context", None, raising=False)
    assert approval_api._remaining_seconds() == float("inf")


@pytest.fixture
def no_backoff_sleep(monkeypatch):
    import botocore.retries.standard as standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


def test_a_rejection_throttled_on_every_attempt_reopens_the_request(approval_api, state_table, no_backoff_sleep):
    """botocore retries a throttled SendTaskFailure once; both attempts refused means nothing was applied, and
    the approver may decide again at once (not "may have been applied"). The attempts of a rejection are counted
    like an approval's."""
    from approval_support import FakeStepFunctions

    fake = FakeStepFunctions.with_function_config(approval_api, token=TOKEN, execution_arn=EXECUTION)
    fake.faults = ["throttle", "throttle"]
    reference = store(state_table)
    page = decide(approval_api, state_table, fake.client, reference, body(decision="reject", reason="too low"))
    assert page is approval_api.TRY_AGAIN
    assert fake.operations() == ["SendTaskFailure", "SendTaskFailure"]
    assert stored(state_table, reference)["status"] == "pending"


def test_an_internal_error_that_applied_the_decision_is_not_taken_for_a_closed_task(approval_api, state_table,
                                                                                   no_backoff_sleep):
    """Step Functions applies the approval but answers 500; botocore's retry then meets the closed task
    (TaskTimedOut). A 500 is a 5xx like a 503: the decision may have landed, so the history decides, and it
    says approved. Read as "the task had closed before", the page would say no decision was applied."""
    from approval_support import FakeStepFunctions

    class InternalFailure(FakeStepFunctions):
        def _error(self, request, status, code, message=""):
            if status == 503:
                status, code = 500, "InternalFailure"
            return super()._error(request, status, code, message)

    fake = InternalFailure.with_function_config(approval_api, token=TOKEN, execution_arn=EXECUTION)

    def applied_then_500(params):
        fake.task = "approve"
        return "unavailable"

    fake.faults = [applied_then_500]
    reference = store(state_table)
    page = decide(approval_api, state_table, fake.client, reference, body(decision="approve"))
    assert (page.status, page.title) == (200, "Approved")
    assert fake.operations() == ["SendTaskSuccess", "SendTaskSuccess", "GetExecutionHistory"]
    assert stored(state_table, reference)["status"] == "decided"


def test_a_single_internal_error_is_not_a_refusal(approval_api, state_table):
    """A 500 that botocore does not retry (its retry quota spent; here a client allowed one attempt) may have
    applied the decision: the page must not say "nothing was changed" and reopen the request."""
    from approval_support import FakeStepFunctions

    class InternalFailure(FakeStepFunctions):
        def _error(self, request, status, code, message=""):
            if status == 503:
                status, code = 500, "InternalFailure"
            return super()._error(request, status, code, message)

    client = boto3.client("stepfunctions", region_name=REGION, config=Config(
        connect_timeout=1, read_timeout=4, retries={"mode": "standard", "total_max_attempts": 1}))
    fake = InternalFailure(client, token=TOKEN, execution_arn=EXECUTION)
    fake.faults = ["unavailable"]
    reference = store(state_table)
    page = decide(approval_api, state_table, fake.client, reference, body(decision="approve"))
    assert (page.status, page.title) == (202, "Your decision may have been applied")
    assert stored(state_table, reference)["status"] == "deciding"
