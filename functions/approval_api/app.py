"""The approval page behind the email links (API Gateway REST, proxy).

GET shows the run's QA summary and a form; it never decides, because mail
scanners open every link. Only a POST of that form (with the nonce stored
alongside the record) decides, once, by a conditional DynamoDB update that
also takes the task token out of the table, then SendTaskSuccess or
SendTaskFailure. The link reference, nonce and token are never logged.
"""
from __future__ import annotations

import hmac
import html
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qs

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from botocore.exceptions import BotoCoreError, ClientError

from pipeline_common.approvals import approval_key, format_metric, is_wellformed_reference
from pipeline_common.config import env_str
from pipeline_common.timeutil import from_epoch, iso, utc_now

logger = Logger()
tracer = Tracer()
# The event handler's own debug lines (POWERTOOLS_DEBUG) include route
# arguments, i.e. the reference: keep that logger quiet whatever the env says.
logging.getLogger("aws_lambda_powertools.event_handler").setLevel(logging.WARNING)

app = APIGatewayRestResolver(debug=False)

DECISIONS = ("approve", "reject")
REJECTED_ERROR = "ApprovalRejected"
MAX_REASON = 2000
# Step Functions answers these when the execution no longer waits for this token.
_TASK_CLOSED = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
}


@dataclass(frozen=True)
class Page:
    status: int
    title: str
    body: str  # HTML, already escaped


@dataclass
class Dependencies:
    dynamodb: object
    sfn: object
    table: str


@lru_cache(maxsize=1)
def dependencies() -> Dependencies:
    return Dependencies(boto3.client("dynamodb"), boto3.client("stepfunctions"), env_str("STATE_TABLE"))


# ---------------------------------------------------------------- rendering

def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def summary_html(summary: dict) -> str:
    labels = summary.get("labels") or []
    per_class_rows = "".join(
        f"<tr><th>{_e(label)}</th><td>{format_metric(stats.get('precision'), 3)}</td>"
        f"<td>{format_metric(stats.get('recall'), 3)}</td><td>{_e(stats.get('support'))}</td></tr>"
        for label, stats in (summary.get("per_class") or {}).items()
    )
    matrix_head = "".join(f"<th>{_e(label)}</th>" for label in labels)
    matrix_rows = "".join(
        f"<tr><th>{_e(label)}</th>" + "".join(f"<td>{_e(count)}</td>" for count in row) + "</tr>"
        for label, row in zip(labels, summary.get("confusion_matrix") or [])
    )
    return (
        "<dl>"
        f"<dt>Run</dt><dd>{_e(summary.get('run_id'))}</dd>"
        f"<dt>Input</dt><dd>{_e(summary.get('input_uri'))}</dd>"
        f"<dt>Production endpoint</dt><dd>{_e(summary.get('production_endpoint'))}</dd>"
        f"<dt>QA accuracy</dt><dd>{format_metric(summary.get('accuracy'))} on {_e(summary.get('rows'))} held-out rows "
        f"(threshold {format_metric(summary.get('threshold'))})</dd>"
        f"<dt>QA report</dt><dd>{_e(summary.get('report_uri'))}</dd>"
        "</dl>"
        "<h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th><th>support</th></tr>"
        f"{per_class_rows}</table>"
        "<h2>Confusion matrix</h2><p>Rows: true class. Columns: predicted class.</p>"
        f"<table><tr><th></th>{matrix_head}</tr>{matrix_rows}</table>"
    )


def form_html(record: dict, preselected: str | None, error: str | None = None, reason: str = "") -> str:
    def option(value: str, text: str) -> str:
        checked = " checked" if value == preselected else ""
        return f'<label><input type="radio" name="decision" value="{value}" required{checked}> {text}</label><br>'

    # No action attribute: the form posts back to the URL the page was served
    # from, whatever the API stage prefix is.
    return (
        (f'<p class="error">{_e(error)}</p>' if error else "")
        + '<form method="post">'
        + option("approve", "Approve: deploy this model to production")
        + option("reject", "Reject: keep production as it is")
        + f'<p><label>Reason (required to reject)<br><textarea name="reason" rows="4" cols="60" maxlength="{MAX_REASON}">'
        + _e(reason)
        + "</textarea></label></p>"
        + f'<input type="hidden" name="nonce" value="{_e(record["nonce"])}">'
        + '<p><button type="submit">Submit decision</button></p></form>'
        + f"<p>This request expires at {_e(iso(from_epoch(record['expires_at'])))}.</p>"
    )


def document(page: Page) -> str:
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="robots" content="noindex,nofollow">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(page.title)}</title>"
        "<style>body{font-family:sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2rem .5rem;text-align:right}"
        "dt{font-weight:bold}.error{color:#a00}</style></head><body>"
        f"<h1>{_e(page.title)}</h1>{page.body}</body></html>"
    )


UNKNOWN = Page(404, "Unknown approval link", "<p>This link does not match any approval request. "
               "Check that you opened the complete link from the email.</p>")
EXPIRED = Page(410, "Approval link expired", "<p>The approval window for this run has closed. "
               "Nothing was changed; the run did not update production.</p>")
ENDED = Page(410, "The run no longer waits for a decision", "<p>The pipeline run has already ended "
             "(its approval window ran out or it was stopped). Nothing was changed.</p>")
NOT_FROM_FORM = Page(400, "Decision not accepted", "<p>A decision must be submitted from the confirmation "
                     "page. Open the link from the email again. Nothing was changed.</p>")
TRY_AGAIN = Page(503, "Please try again", "<p>The decision could not be delivered to the pipeline just now. "
                 "Nothing was changed; submit the form again in a minute.</p>")


def already_decided(record: dict) -> Page:
    decision = record.get("decision", "")
    word = "approved" if decision == "approve" else "rejected"
    return Page(409, "Already decided", f"<p>This run was already {word} at {_e(record.get('decided_at'))}. "
                "A decision counts once; nothing was changed.</p>")


# ---------------------------------------------------------------- logic

def load_record(dynamodb, table: str, reference: str) -> dict | None:
    if not is_wellformed_reference(reference):
        return None
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": approval_key(reference)}}, ConsistentRead=True).get("Item")
    if not item:
        return None
    record = {name: (value.get("S") if "S" in value else int(value["N"]) if "N" in value else None) for name, value in item.items()}
    record["summary"] = json.loads(record.get("summary") or "{}")
    return record


def _closed_page(record: dict, now_epoch: int) -> Page | None:
    """The page for a record that can no longer be decided, else None."""
    if record.get("status") == "decided":
        return already_decided(record)
    if record.get("status") != "pending":
        return ENDED
    if record["expires_at"] <= now_epoch:
        return EXPIRED
    return None


def show_request(dynamodb, table: str, reference: str, preselected: str | None, now=None) -> Page:
    now = now or utc_now()
    record = load_record(dynamodb, table, reference)
    if record is None:
        return UNKNOWN
    closed = _closed_page(record, int(now.timestamp()))
    if closed:
        return closed
    summary = record["summary"]
    return Page(
        200,
        f"Approve run {summary.get('run_id')} for production?",
        summary_html(summary) + form_html(record, preselected if preselected in DECISIONS else None),
    )


def _form_fields(body: str | None) -> dict:
    fields = parse_qs(body or "", keep_blank_values=True, max_num_fields=20)
    return {name: values[0] for name, values in fields.items()}


def decide(dynamodb, sfn, table: str, reference: str, body: str | None, content_type: str, now=None) -> Page:
    now = now or utc_now()
    now_epoch = int(now.timestamp())
    record = load_record(dynamodb, table, reference)
    if record is None:
        return UNKNOWN
    closed = _closed_page(record, now_epoch)
    if closed:
        return closed
    if not content_type.lower().startswith("application/x-www-form-urlencoded"):
        return NOT_FROM_FORM
    try:
        form = _form_fields(body)
    except ValueError:
        return NOT_FROM_FORM
    if not hmac.compare_digest(form.get("nonce", "").encode(), record["nonce"].encode()):
        return NOT_FROM_FORM
    decision = form.get("decision")
    reason = form.get("reason", "").strip()
    summary = record["summary"]

    def again(error: str) -> Page:
        return Page(400, f"Approve run {summary.get('run_id')} for production?",
                    summary_html(summary) + form_html(record, decision, error, reason[:MAX_REASON]))

    if decision not in DECISIONS:
        return again("Choose approve or reject.")
    if decision == "reject" and not reason:
        return again("Give a reason for the rejection: it is sent to the pipeline and the failure notification.")
    if len(reason) > MAX_REASON:
        return again(f"The reason is longer than {MAX_REASON} characters.")

    decided_at = iso(now)
    key = {"pk": {"S": approval_key(reference)}}
    try:
        # One decision: only a pending, unexpired record with this form's
        # nonce moves on, and the token leaves the table with it.
        old = dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #s = :decided, decision = :d, reason = :r, decided_at = :t REMOVE task_token",
            ConditionExpression="#s = :pending AND nonce = :n AND expires_at > :now",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":decided": {"S": "decided"},
                ":pending": {"S": "pending"},
                ":d": {"S": decision},
                ":r": {"S": reason},
                ":t": {"S": decided_at},
                ":n": {"S": record["nonce"]},
                ":now": {"N": str(now_epoch)},
            },
            ReturnValues="ALL_OLD",
        )["Attributes"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        # Someone decided (or the window closed) between our read and write.
        current = load_record(dynamodb, table, reference)
        return (current and _closed_page(current, now_epoch)) or NOT_FROM_FORM
    token = old["task_token"]["S"]

    try:
        if decision == "approve":
            sfn.send_task_success(
                taskToken=token,
                output=json.dumps({"decision": decision, "reason": reason, "decided_at": decided_at}),
            )
        else:
            sfn.send_task_failure(taskToken=token, error=REJECTED_ERROR, cause=reason)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
    except BotoCoreError as error:  # no answer at all (network, timeout)
        code = type(error).__name__
    else:
        code = None
    if code in _TASK_CLOSED:
        _set_after_failed_delivery(dynamodb, table, key, decided_at, closed=True, token=token)
        logger.info("decision arrived after the run stopped waiting", extra={"run_id": summary.get("run_id"), "sfn_error": code})
        return ENDED
    if code is not None:
        _set_after_failed_delivery(dynamodb, table, key, decided_at, closed=False, token=token)
        logger.warning("decision not delivered; record reopened", extra={"run_id": summary.get("run_id"), "sfn_error": code})
        return TRY_AGAIN

    logger.info("decision delivered", extra={"run_id": summary.get("run_id"), "decision": decision})
    if decision == "approve":
        return Page(200, "Approved", f"<p>Run {_e(summary.get('run_id'))} is approved. The pipeline now updates "
                    f"production endpoint {_e(summary.get('production_endpoint'))}; a notification follows.</p>")
    return Page(200, "Rejected", f"<p>Run {_e(summary.get('run_id'))} is rejected. Production stays as it is.</p>")


def _set_after_failed_delivery(dynamodb, table: str, key: dict, decided_at: str, closed: bool, token: str) -> None:
    """The decision did not reach Step Functions: mark the record closed (the
    run ended) or put it back to pending with its token (a passing fault)."""
    if closed:
        update = "SET #s = :closed, closed_at = :t REMOVE decision, reason"
        values = {":closed": {"S": "closed"}, ":t": {"S": decided_at}}
    else:
        update = "SET #s = :pending, task_token = :token REMOVE decision, reason, decided_at"
        values = {":pending": {"S": "pending"}, ":token": {"S": token}}
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression=update,
        ConditionExpression="#s = :decided AND decided_at = :mine",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={**values, ":decided": {"S": "decided"}, ":mine": {"S": decided_at}},
    )


# ---------------------------------------------------------------- routes

def respond(page: Page) -> Response:
    return Response(status_code=page.status, content_type="text/html; charset=utf-8", body=document(page), headers=HEADERS)


@app.get("/approvals/<reference>")
def get_approval(reference: str):
    deps = dependencies()
    preselected = (app.current_event.query_string_parameters or {}).get("decision")
    return respond(show_request(deps.dynamodb, deps.table, reference, preselected))


@app.post("/approvals/<reference>")
def post_approval(reference: str):
    deps = dependencies()
    content_type = app.current_event.headers.get("content-type") or ""  # case-insensitive in Powertools v3
    return respond(decide(deps.dynamodb, deps.sfn, deps.table, reference, app.current_event.decoded_body, content_type))


@app.not_found
def not_found(_error):
    return respond(UNKNOWN)


@app.exception_handler(Exception)
def unexpected(error: Exception):
    # Only the type: messages of some AWS errors can echo request values.
    logger.error("approval request failed", extra={"error_type": type(error).__name__})
    return respond(Page(500, "Something went wrong", "<p>The request could not be handled. "
                        "Open the link from the email again in a few minutes.</p>"))


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    return app.resolve(event, context)
