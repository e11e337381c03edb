"""The approval page behind the email links (API Gateway REST, proxy).

GET shows the run's QA summary and a form with nothing selected; it never
decides, because mail scanners open every link (and some submit what they
find). Only a POST of that form, with the nonce stored alongside the record
and a decision the person chose, decides.

The record moves `pending -> deciding -> decided`. `deciding` is written,
with the decision, the reason and a random attempt id, *before* Step
Functions is called, and it keeps the task token; `decided` (token removed)
is written only once SendTaskSuccess/SendTaskFailure is known to have landed.
When that cannot be known (the answer was lost; the function ran out of time
mid-call) the record stays `deciding`: the page says the decision may have
been applied, and opening the link again delivers the same decision again.
That is safe: Step Functions answers a callback on a task that is already
closed with TaskTimedOut, and the execution's history then tells whether the
decision landed. A decision Step Functions refused puts the record back to
`pending`; a run that no longer waits closes it (`closed`). The link
reference, nonce and token are never logged.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import html
import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable
from urllib.parse import parse_qs

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipeline_common.approvals import approval_key, is_wellformed_reference, new_attempt_id
from pipeline_common.config import env_str
from pipeline_common.logs import quiet_library_loggers
from pipeline_common.summary import (
    classification_sections,
    html_value,
    is_rollback,
    regression_sections,
    render_html,
    rollback_sections,
    summary_sections,
    versus_sections,
)
from pipeline_common.text import printable
from pipeline_common.timeutil import from_epoch, iso, utc_now

# botocore's DEBUG lines hold request bodies (task token, nonce), Powertools' route
# matching the path (reference): quiet whatever the root level or POWERTOOLS_DEBUG says.
quiet_library_loggers()
logger = Logger()
tracer = Tracer()

app = APIGatewayRestResolver(debug=False)

DECISIONS = ("approve", "reject")
REJECTED_ERROR = "ApprovalRejected"
MAX_REASON = 2000
# Step Functions answers these when the task no longer waits for this token
# (TaskTimedOut: "the task token has either expired or the task associated
# with the token has already been closed", API_SendTaskSuccess).
_TASK_CLOSED = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}

# Every call gives up early enough for the function to record what happened
# and answer the page within its Timeout (template.yaml; a test checks the
# arithmetic). Standard mode retries a lost answer (a read timeout) and 5xx
# once; a retried callback is exactly the case the history check resolves.
SFN_CONFIG = Config(connect_timeout=1, read_timeout=4, retries={"mode": "standard", "total_max_attempts": 2})
DYNAMODB_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2})


def worst_case_seconds(config: Config) -> float:
    """The longest one call with `config` can take before it gives up: every
    attempt connecting and reading up to its timeouts, plus the largest
    backoff of botocore's standard retry mode between attempts
    (rand(0,1) * min(2 ** (attempt - 1), 20))."""
    attempts = config.retries["total_max_attempts"]
    backoff = sum(min(2 ** (attempt - 1), 20) for attempt in range(1, attempts))
    return attempts * (config.connect_timeout + config.read_timeout) + backoff


# What one delivery needs: the Step Functions call and the DynamoDB update that records its outcome.
DELIVERY_BUDGET_SECONDS = worst_case_seconds(SFN_CONFIG) + worst_case_seconds(DYNAMODB_CONFIG)

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
    return Dependencies(
        boto3.client("dynamodb", config=DYNAMODB_CONFIG),
        boto3.client("stepfunctions", config=SFN_CONFIG),
        env_str("STATE_TABLE"),
    )


# ---------------------------------------------------------------- rendering

_e = html_value


def rollback_summary_html(summary: dict) -> str:
    """A rollback's confirmation: the version it deploys next to what serves now."""
    return render_html(rollback_sections(summary))


def classification_html(summary: dict) -> str:
    return render_html(classification_sections(summary))


def regression_html(summary: dict) -> str:
    return render_html(regression_sections(summary))


def versus_html(summary: dict) -> str:
    """Champion versus challenger as request_approval summarised it (see its versus_production)."""
    return render_html(versus_sections(summary))


def approval_title(summary: dict) -> str:
    if is_rollback(summary):
        return f"Roll {summary.get('production_endpoint')} back to version {(summary.get('target') or {}).get('version')}?"
    dataset = f"{summary['dataset']} " if summary.get("dataset") else ""
    return f"Approve {dataset}run {summary.get('run_id')} for production?"


def summary_html(summary: dict) -> str:
    return render_html(summary_sections(summary))


def form_html(record: dict, error: str | None = None, reason: str = "") -> str:
    # Nothing is pre-selected, whichever link was opened: a mail sandbox that
    # submits the form it finds must not decide anything.
    def option(value: str, text: str) -> str:
        return f'<label><input type="radio" name="decision" value="{value}" required> {text}</label><br>'

    # No action attribute: the form posts back to the URL the page was served
    # from, whatever the API stage prefix is.
    approve = ("Approve: roll production back to this version" if is_rollback(record.get("summary") or {})
               else "Approve: deploy this model to production")
    return (
        (f'<p class="error">{_e(error)}</p>' if error else "")
        + '<form method="post">'
        + option("approve", approve)
        + option("reject", "Reject: keep production as it is")
        + f'<p><label>Reason (required to reject)<br><textarea name="reason" rows="4" cols="60" maxlength="{MAX_REASON}">'
        + html.escape(reason, quote=True)
        + "</textarea></label></p>"
        + f'<input type="hidden" name="nonce" value="{_e(record["nonce"])}">'
        + '<p><button type="submit">Submit decision</button></p></form>'
        + f"<p>This request expires at {_e(iso(from_epoch(record['expires_at'])))}.</p>"
    )


def redeliver_form_html(record: dict) -> str:
    """The form that sends the decision already recorded once more (and nothing else)."""
    decision = record["decision"]
    return (
        '<form method="post">'
        f'<input type="hidden" name="decision" value="{_e(decision)}">'
        f'<input type="hidden" name="nonce" value="{_e(record["nonce"])}">'
        f'<p><button type="submit">Deliver the decision to {_e(decision)} again</button></p></form>'
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
ENDED = Page(410, "The run no longer waits for a decision", "<p>The pipeline run no longer waits for a decision "
             "from this link (its approval window ran out or it was stopped). No decision from this link was "
             "applied; the run did not update production because of it.</p>")
NOT_FROM_FORM = Page(400, "Decision not accepted", "<p>A decision must be submitted from the confirmation "
                     "page. Open the link from the email again. Nothing was changed.</p>")
UNREADABLE = Page(400, "Decision not accepted", "<p>The submitted data could not be read as the confirmation "
                  "page's form (UTF-8 form fields). Open the link from the email again and submit the form "
                  "from that page. Nothing was changed.</p>")
TRY_AGAIN = Page(503, "Please try again", "<p>The decision could not be delivered to the pipeline just now. "
                 "Nothing was changed; submit the form again in a minute.</p>")


def _decision_word(decision: str | None) -> str:
    return "approved" if decision == "approve" else "rejected"


def already_decided(record: dict) -> Page:
    return Page(409, "Already decided", f"<p>This run was already {_decision_word(record.get('decision'))} at "
                f"{_e(record.get('decided_at'))}. A decision counts once; nothing was changed.</p>")


def delivered(record: dict) -> Page:
    summary = record["summary"]
    if record["decision"] == "approve" and is_rollback(summary):
        return Page(200, "Approved", f"<p>The rollback of {_e(summary.get('production_endpoint'))} to version "
                    f"{_e((summary.get('target') or {}).get('version'))} is approved. The pipeline now deploys it; "
                    "a notification follows.</p>")
    if record["decision"] == "approve":
        return Page(200, "Approved", f"<p>Run {_e(summary.get('run_id'))} is approved. The pipeline now updates "
                    f"production endpoint {_e(summary.get('production_endpoint'))}; a notification follows.</p>")
    return Page(200, "Rejected", f"<p>Run {_e(summary.get('run_id'))} is rejected. Production stays as it is.</p>")


def _unconfirmed_text(record: dict) -> str:
    return (
        f"<p>Your decision to {_e(record['decision'])} run {_e(record['summary'].get('run_id'))} was submitted at "
        f"{_e(record.get('submitted_at'))}, but whether it reached the pipeline is not known: the pipeline's "
        "answer did not arrive. <strong>Your decision may have been applied.</strong> The run's outcome email "
        "(deployed, or failed with the reason) will confirm it.</p>"
        "<p>If no such email arrives within a few minutes, deliver the same decision again below, or open the "
        "link from the email again later. Delivering it twice is safe: it counts once, and it cannot be "
        "changed into the other decision.</p>"
    )


def unconfirmed(record: dict) -> Page:
    """The answer to a POST whose decision may or may not have landed."""
    return Page(202, "Your decision may have been applied", _unconfirmed_text(record) + redeliver_form_html(record))


def in_delivery(record: dict) -> Page:
    """What the link shows while a decision is recorded but not confirmed delivered."""
    return Page(200, "A decision was submitted; its delivery is not confirmed",
                _unconfirmed_text(record) + redeliver_form_html(record))


def decision_locked(record: dict) -> Page:
    return Page(409, "A decision was already submitted",
                f"<p>A decision to {_e(record['decision'])} this run was already submitted at "
                f"{_e(record.get('submitted_at'))} and may have been applied; it cannot be changed. "
                "Nothing else was sent to the pipeline.</p>" + redeliver_form_html(record))


# ---------------------------------------------------------------- records

def load_record(dynamodb, table: str, reference: str) -> dict | None:
    if not is_wellformed_reference(reference):
        return None
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": approval_key(reference)}}, ConsistentRead=True).get("Item")
    if not item:
        return None
    record = {name: (value.get("S") if "S" in value else int(value["N"]) if "N" in value else None) for name, value in item.items()}
    record["summary"] = json.loads(record.get("summary") or "{}")
    return record


def page_for(record: dict | None, now_epoch: int) -> Page | None:
    """The page for a record that cannot take a new decision now, else None."""
    if record is None:
        return UNKNOWN
    status = record.get("status")
    if status == "decided":
        return already_decided(record)
    if status == "deciding":
        return in_delivery(record)
    if status != "pending":
        return ENDED
    if record["expires_at"] <= now_epoch:
        return EXPIRED
    return None


def where_it_is_now(dynamodb, table: str, reference: str, now_epoch: int, otherwise: Page) -> Page:
    """After a conditional write lost to another request: the page for the record as that request left it."""
    return page_for(load_record(dynamodb, table, reference), now_epoch) or otherwise


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _update(dynamodb, table: str, reference: str, update: str, condition: str, values: dict,
            remove: str = "") -> bool:
    """One conditional update of the record; False when the condition did not hold."""
    try:
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": approval_key(reference)}},
            UpdateExpression=update + (f" REMOVE {remove}" if remove else ""),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={name: {"N": str(v)} if isinstance(v, int) else {"S": v} for name, v in values.items()},
        )
    except ClientError as error:
        if _condition_failed(error):
            return False
        raise
    return True


# ---------------------------------------------------------------- Step Functions

DELIVERED, CLOSED, REFUSED, UNCERTAIN = "delivered", "closed", "refused", "uncertain"


# What each attempt of the current callback got back: an HTTP status, or None
# for no answer at all. botocore retries inside one call; only this log tells
# a throttled first attempt (nothing applied) from a lost answer (maybe applied).
_attempts = threading.local()


def _note_attempt(response=None, caught_exception=None, **_):
    log = getattr(_attempts, "statuses", None)
    if log is not None:
        log.append(None if caught_exception is not None or response is None else response[0].status_code)
    # None: this handler never asks for a retry itself.


def _send(sfn, record: dict) -> str:
    """Call back the waiting task once (botocore may try twice); what is known
    afterwards: DELIVERED, CLOSED (the task no longer waits and this call
    changed nothing), REFUSED (every attempt was refused: nothing applied) or
    UNCERTAIN (an attempt may have been applied)."""
    for operation in ("SendTaskSuccess", "SendTaskFailure"):
        sfn.meta.events.register(f"needs-retry.sfn.{operation}", _note_attempt, unique_id=f"approval-attempts-{operation}")
    _attempts.statuses = []
    decision = record["decision"]
    try:
        if decision == "approve":
            sfn.send_task_success(
                taskToken=record["task_token"],
                output=json.dumps({"decision": decision, "reason": record.get("reason", ""),
                                   "decided_at": record["submitted_at"]}),
            )
        else:
            sfn.send_task_failure(taskToken=record["task_token"], error=REJECTED_ERROR, cause=record.get("reason", ""))
    except ClientError as error:
        metadata = error.response.get("ResponseMetadata", {})
        earlier = _attempts.statuses[:-1]
        if any(status is None or status >= 500 for status in earlier) or (metadata.get("RetryAttempts") and not earlier):
            # An earlier attempt got no answer or a 5xx: it may have landed,
            # and then this one meets the task already closed.
            return UNCERTAIN
        if error.response.get("Error", {}).get("Code") in _TASK_CLOSED:
            return CLOSED
        if 400 <= int(metadata.get("HTTPStatusCode") or 500) < 500:
            return REFUSED
        return UNCERTAIN  # a 5xx: the service may have applied it before failing
    except BotoCoreError:  # no answer at all (connection, read timeout after the retry)
        return UNCERTAIN
    finally:
        _attempts.statuses = None
    return DELIVERED


_EXECUTION_ENDED = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}
_TASK_DETAILS = {
    "TaskScheduled": "taskScheduledEventDetails",
    "TaskSucceeded": "taskSucceededEventDetails",
    "TaskFailed": "taskFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
}
# An execution runs one lambda:invoke.waitForTaskToken task: RequestApproval, or ConfirmRollback in a rollback.
_CALLBACK_TASK = ("lambda", "invoke.waitForTaskToken")
_HISTORY_PAGES = 3


def approval_outcome(sfn, execution_arn: str) -> str | None:
    """What the execution's history says became of its approval task:
    "approve" (the callback succeeded), "reject" (it failed with
    ApprovalRejected), "ended" (the task closed otherwise, or the run ended
    while it waited), or None when the history does not tell (still waiting,
    or unreadable). Newest events first: the latest approval task counts."""
    ended = False
    request = {"executionArn": execution_arn, "reverseOrder": True, "includeExecutionData": False, "maxResults": 1000}
    for _ in range(_HISTORY_PAGES):
        answer = sfn.get_execution_history(**request)
        for event in answer.get("events", []):
            kind = event.get("type")
            if kind in _EXECUTION_ENDED:
                ended = True
                continue
            details = event.get(_TASK_DETAILS.get(kind, ""))
            if not details or (details.get("resourceType"), details.get("resource")) != _CALLBACK_TASK:
                continue
            if kind == "TaskSucceeded":
                return "approve"
            if kind == "TaskScheduled":  # the latest approval task has no outcome yet
                return "ended" if ended else None
            error = details.get("error")
            if error is None:
                return None  # cannot tell a rejection from a timeout
            return "reject" if kind == "TaskFailed" and error == REJECTED_ERROR else "ended"
        if not answer.get("nextToken"):
            break
        request["nextToken"] = answer["nextToken"]
    return "ended" if ended else None


def _resolve_from_history(sfn, record: dict) -> str:
    execution_arn = record.get("execution_arn")
    if not execution_arn:
        return UNCERTAIN
    try:
        outcome = approval_outcome(sfn, execution_arn)
    except (ClientError, BotoCoreError) as error:
        logger.warning("execution history unavailable", extra={"error_type": type(error).__name__})
        return UNCERTAIN
    if outcome == record["decision"]:
        return DELIVERED
    if outcome is None:
        return UNCERTAIN
    return CLOSED  # ended without it, or (another link of the run) decided otherwise


# ---------------------------------------------------------------- deciding

def _form_fields(body: str | None) -> dict:
    # Strict: a form field that is not UTF-8 once percent-decoded is not from the page.
    fields = parse_qs(body or "", keep_blank_values=True, max_num_fields=20, errors="strict")
    return {name: values[0] for name, values in fields.items()}


def _one_line(text: str) -> str:
    """The reason as it travels on (SendTaskFailure's cause lands in the
    failure email): line breaks and other whitespace runs become one space,
    other control characters visible escapes."""
    return printable(" ".join(text.split()))


def decide(dynamodb, sfn, table: str, reference: str, body: str | None, content_type: str, now=None, *,
           remaining_seconds: Callable[[], float]) -> Page:
    now = now or utc_now()
    now_epoch = int(now.timestamp())
    record = load_record(dynamodb, table, reference)
    if record is None:
        return UNKNOWN
    status = record.get("status")
    if status == "decided":
        return already_decided(record)
    if status not in ("pending", "deciding"):
        return ENDED
    if status == "pending" and record["expires_at"] <= now_epoch:
        return EXPIRED
    if not content_type.lower().startswith("application/x-www-form-urlencoded"):
        return NOT_FROM_FORM
    try:
        form = _form_fields(body)
    except ValueError:
        return UNREADABLE
    if not hmac.compare_digest(form.get("nonce", "").encode(), record["nonce"].encode()):
        return NOT_FROM_FORM
    decision = form.get("decision")

    if status == "deciding":
        # The decision is already recorded and may have landed: only that same
        # decision can be delivered again.
        if decision != record["decision"]:
            return decision_locked(record)
        attempt = new_attempt_id()
        if not _update(dynamodb, table, reference, "SET attempt_id = :a, attempted_at = :t",
                       "#s = :deciding AND nonce = :n AND decision = :d",
                       {":a": attempt, ":t": iso(now), ":deciding": "deciding", ":n": record["nonce"], ":d": decision}):
            return where_it_is_now(dynamodb, table, reference, now_epoch, otherwise=NOT_FROM_FORM)
        return _deliver(dynamodb, sfn, table, reference, {**record, "attempt_id": attempt}, True, now, remaining_seconds)

    reason = _one_line(form.get("reason", ""))
    summary = record["summary"]

    def again(error: str) -> Page:
        return Page(400, approval_title(summary),
                    summary_html(summary) + form_html(record, error, reason[:MAX_REASON]))

    if decision not in DECISIONS:
        return again("Choose approve or reject.")
    if decision == "reject" and not reason:
        return again("Give a reason for the rejection: it is sent to the pipeline and the failure notification.")
    if len(reason) > MAX_REASON:
        return again(f"The reason is longer than {MAX_REASON} characters.")
    if remaining_seconds() < DELIVERY_BUDGET_SECONDS:
        return TRY_AGAIN  # too little time left to call Step Functions and record its answer

    # Recorded before Step Functions is called, token kept: if this function
    # dies mid-call, the record still holds the decision and what it needs
    # to deliver it again.
    attempt = new_attempt_id()
    submitted_at = iso(now)
    if not _update(dynamodb, table, reference,
                   "SET #s = :deciding, decision = :d, reason = :r, attempt_id = :a, submitted_at = :t, attempted_at = :t",
                   "#s = :pending AND nonce = :n AND expires_at > :now",
                   {":deciding": "deciding", ":d": decision, ":r": reason, ":a": attempt, ":t": submitted_at,
                    ":pending": "pending", ":n": record["nonce"], ":now": now_epoch}):
        # Someone decided (or the window closed) between our read and write.
        return where_it_is_now(dynamodb, table, reference, now_epoch, otherwise=NOT_FROM_FORM)
    deciding = {**record, "decision": decision, "reason": reason, "attempt_id": attempt,
                "submitted_at": submitted_at}
    return _deliver(dynamodb, sfn, table, reference, deciding, False, now, remaining_seconds)


def _deliver(dynamodb, sfn, table: str, reference: str, record: dict, earlier_attempts: bool, now,
             remaining_seconds: Callable[[], float]) -> Page:
    """Deliver the recorded decision and record what became of it.
    `earlier_attempts`: an earlier request may already have delivered it."""
    run_id = record["summary"].get("run_id")
    if remaining_seconds() < DELIVERY_BUDGET_SECONDS:
        result = UNCERTAIN if earlier_attempts else REFUSED  # nothing sent by this request
    else:
        result = _send(sfn, record)
    if earlier_attempts and result in (CLOSED, REFUSED):
        # Closed may be the earlier attempt's doing; refused says nothing about it.
        result = UNCERTAIN
    if result == UNCERTAIN and remaining_seconds() >= DELIVERY_BUDGET_SECONDS:
        result = _resolve_from_history(sfn, record)

    try:
        if result == DELIVERED:
            # Any attempt landing settles it: the decision itself cannot change while deciding.
            if not _update(dynamodb, table, reference, "SET #s = :decided, decided_at = :t",
                           "#s = :deciding AND decision = :d", {":decided": "decided", ":t": iso(now),
                                                               ":deciding": "deciding", ":d": record["decision"]},
                           remove="task_token"):
                logger.warning("decision delivered; the record had already moved on", extra={"run_id": run_id})
            logger.info("decision delivered", extra={"run_id": run_id, "decision": record["decision"]})
            return delivered(record)
        if result == CLOSED:
            if _update(dynamodb, table, reference, "SET #s = :closed, closed_at = :t",
                       "#s = :deciding AND attempt_id = :a",
                       {":closed": "closed", ":t": iso(now), ":deciding": "deciding", ":a": record["attempt_id"]},
                       remove="task_token"):
                logger.info("decision arrived after the run stopped waiting", extra={"run_id": run_id})
                return ENDED
        elif result == REFUSED:
            if _update(dynamodb, table, reference, "SET #s = :pending",
                       "#s = :deciding AND attempt_id = :a",
                       {":pending": "pending", ":deciding": "deciding", ":a": record["attempt_id"]},
                       remove="decision, reason, attempt_id, submitted_at, attempted_at"):
                logger.warning("decision refused by Step Functions; record reopened", extra={"run_id": run_id})
                return TRY_AGAIN
        else:
            logger.warning("decision delivery unconfirmed", extra={"run_id": run_id})
            return unconfirmed(record)
    except (ClientError, BotoCoreError) as error:
        # The table could not record the outcome: say what is known of the decision itself.
        logger.warning("approval record not updated", extra={"run_id": run_id, "error_type": type(error).__name__})
        return {DELIVERED: delivered(record), CLOSED: ENDED}.get(result, unconfirmed(record))
    # Another request moved the record meanwhile (a newer attempt): show where it is now.
    return where_it_is_now(dynamodb, table, reference, int(now.timestamp()), otherwise=unconfirmed(record))


def show_request(dynamodb, table: str, reference: str, now=None) -> Page:
    now = now or utc_now()
    record = load_record(dynamodb, table, reference)
    closed = page_for(record, int(now.timestamp()))
    if closed:
        return closed
    summary = record["summary"]
    return Page(200, approval_title(summary), summary_html(summary) + form_html(record))


# ---------------------------------------------------------------- routes

class UnreadableBody(ValueError):
    pass


def form_body(event) -> str | None:
    """The request body as text; UnreadableBody when it is not UTF-8 (or not base64 when it says it is)."""
    body = event.body
    if body is None:
        return None
    try:
        if event.is_base64_encoded:
            return base64.b64decode(body, validate=True).decode("utf-8")
        return body
    except (binascii.Error, UnicodeDecodeError):
        raise UnreadableBody from None


def respond(page: Page) -> Response:
    return Response(status_code=page.status, content_type="text/html; charset=utf-8", body=document(page), headers=HEADERS)


def _remaining_seconds() -> float:
    context = app.lambda_context
    return context.get_remaining_time_in_millis() / 1000 if context is not None else float("inf")


@app.get("/approvals/<reference>")
def get_approval(reference: str):
    deps = dependencies()
    # Any ?decision= on the link is ignored: nothing is pre-selected.
    return respond(show_request(deps.dynamodb, deps.table, reference))


@app.post("/approvals/<reference>")
def post_approval(reference: str):
    deps = dependencies()
    content_type = app.current_event.headers.get("content-type") or ""  # case-insensitive in Powertools v3
    try:
        body = form_body(app.current_event)
    except UnreadableBody:
        return respond(UNREADABLE)
    return respond(decide(deps.dynamodb, deps.sfn, deps.table, reference, body, content_type,
                          remaining_seconds=_remaining_seconds))


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
    quiet_library_loggers()
    return app.resolve(event, context)
