"""What the approval tests share: a run with a QA report, the approver's
mailbox, a caller that sends API Gateway proxy events to the real handler,
and a Step Functions stand-in at the HTTP boundary of a real botocore client.

FakeStepFunctions answers the callback API as the Step Functions API
reference documents it (https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html):
the first SendTaskSuccess/SendTaskFailure on a waiting task closes it with
that outcome; any later one answers 400 TaskTimedOut ("The task token has
either expired or the task associated with the token has already been
closed"). GetExecutionHistory (API_GetExecutionHistory.html, HistoryEvent.html)
lists the approval task's events, newest first on `reverseOrder`. Faults are
injected per callback request, in order: the botocore client, its retries and
its own logging run for real.
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
import urllib.parse
import uuid
from html.parser import HTMLParser

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

from lambda_fixtures import REGION, TABLE, make_run, put
from localmode.approval_server import links_in, proxy_event
from localmode.lambdas import LambdaContext
from pipeline_common.approvals import approval_key

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


@pytest.fixture
def api(approval_api, world, monkeypatch):
    """The approval handler wired to moto's DynamoDB and a stubbed Step
    Functions client; `api.calls` lists every Step Functions call made."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    calls: list[tuple[str, dict]] = []
    sfn.meta.events.register("provide-client-params", lambda params, model, **_: calls.append((model.name, dict(params))))
    stub = Stubber(sfn)
    stub.activate()
    call = make_caller(approval_api, monkeypatch, world["dynamodb"], sfn)
    call.stub = stub
    call.calls = calls
    yield call
    stub.deactivate()


def approval_event(world, timeout: int = 3600, run: dict | None = None, rows: int = 259) -> dict:
    run = run or world["run"]
    return {
        "task_token": TOKEN,
        "run": run,
        "names": {"production_endpoint": "car-evaluation-prod", "qa_endpoint": f"{run['run_id']}-qa"},
        "qa": {"accuracy": 0.984556, "threshold": 0.9, "rows": rows, "report_uri": world["run"]["run_prefix"] + "qa/report.json"},
        "approval_timeout_seconds": timeout,
    }


def emails(world) -> list[dict]:
    messages = world["sqs"].receive_message(QueueUrl=world["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def request(world, request_approval, now=None, timeout: int = 3600, base_url: str = API_BASE_URL,
            run: dict | None = None, rows: int = 259) -> dict:
    """Run request_approval; return the email and the reference from its links."""
    request_approval.request_approval(
        world["s3"], world["dynamodb"], world["sns"], approval_event(world, timeout, run, rows),
        TABLE, world["topic_arn"], base_url, now=now,
    )
    [email] = emails(world)
    links = links_in(email["Message"])
    reference = urllib.parse.urlsplit(links["approve"]).path.rsplit("/", 1)[-1]
    return {"email": email, "links": links, "reference": reference}


def record(world, reference: str) -> dict:
    return world["dynamodb"].get_item(TableName=TABLE, Key={"pk": {"S": approval_key(reference)}}).get("Item")


def make_caller(approval_api, monkeypatch, dynamodb, sfn):
    """call(method, reference, form=..., query=..., raw_body=..., ...) -> (status, html, response),
    through the real handler as API Gateway invokes it."""
    deps = approval_api.Dependencies(dynamodb, sfn, TABLE)
    monkeypatch.setattr(approval_api, "dependencies", lambda: deps)

    def call(method: str, reference: str, form: dict | None = None, query: str = "", raw_body: bytes | str | None = None,
             content_type: str = "application/x-www-form-urlencoded", base64_body: bool = False,
             timeout_seconds: float = 25.0):
        if raw_body is not None:
            body = raw_body if isinstance(raw_body, bytes) else raw_body.encode()
        else:
            body = urllib.parse.urlencode(form).encode() if form is not None else b""
        headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": "pytest"}
        if method == "POST":
            headers["Content-Type"] = content_type
        event = proxy_event(method, f"/approvals/{reference}{query}", headers, body, headers["Host"])
        if base64_body:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        response = approval_api.lambda_handler(event, LambdaContext("approval_api", REGION, timeout_seconds=timeout_seconds))
        # REST API responses carry headers as multiValueHeaders.
        response["headers"] = {
            **{name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()},
            **(response.get("headers") or {}),
        }
        return response["statusCode"], response["body"], response

    return call


class _FormReader(HTMLParser):
    """The fields a browser submits for the page's first form, as they are:
    hidden inputs, the radio button that is checked (if any), textareas."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self.radios: list[dict] = []
        self._textarea: str | None = None
        self._forms = 0

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "form":
            self._forms += 1
        if self._forms != 1:
            return
        if tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values.get("value") or ""
        elif tag == "input" and values.get("type") == "radio":
            self.radios.append(values)
            if "checked" in values:
                self.fields[values["name"]] = values.get("value") or ""
        elif tag == "textarea":
            self._textarea = values["name"]
            self.fields[self._textarea] = ""

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None


def form_as_submitted(page: str) -> tuple[dict[str, str], list[dict]]:
    """(what submitting the page's form unchanged sends, its radio buttons)."""
    reader = _FormReader()
    reader.feed(page)
    return reader.fields, reader.radios


# ---------------------------------------------------------------- Step Functions at the HTTP boundary

class FunctionKilled(BaseException):
    """Lambda stopping the function at its Timeout: nothing after this point
    of the handler runs (a BaseException: no `except Exception` catches it)."""


class _Body:
    def __init__(self, data: bytes):
        self._data = data

    def stream(self, **_):
        yield self._data


CALLBACK = {"resourceType": "lambda", "resource": "invoke.waitForTaskToken"}


class FakeStepFunctions:
    """One execution waiting in RequestApproval for `token`; see the module docstring.

    `faults` holds one entry per callback request (SendTaskSuccess/Failure), used in order:
    None (answer normally), "throttle" (400 ThrottlingException, nothing applied),
    "unavailable" (503, nothing applied), "no_connection" (the connection fails before
    anything is sent), "lose_answer" (applied, then the answer never arrives: a read
    timeout), "killed_before" / "killed_after" (Lambda ends the function before the
    request leaves / after it was applied), or a callable(params) run first (to
    interleave requests), whose non-None result is used as the fault.
    `thread_faults[thread name]`, when present, is used instead for requests
    made from that thread (botocore's own retry comes from the same thread).
    """

    def __init__(self, client, token: str = TOKEN, execution_arn: str | None = None):
        self.client = client
        self.token = token
        self.execution_arn = execution_arn
        self.task = "waiting"  # waiting | approve | reject | timed_out
        self.faults: list = []
        self.thread_faults: dict[str, list] = {}
        self.requests: list[tuple[str, dict]] = []
        self.history_error: str | None = None
        self._lock = threading.Lock()
        client.meta.events.register_first("before-send.sfn", self._on_send)

    @classmethod
    def with_function_config(cls, approval_api, **kwargs) -> FakeStepFunctions:
        """A fake behind a client built with the function's own configuration (timeouts, retries)."""
        return cls(boto3.client("stepfunctions", region_name=REGION, config=approval_api.SFN_CONFIG), **kwargs)

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.requests]

    # -- HTTP
    @staticmethod
    def _answer(request, status: int, payload: dict) -> AWSResponse:
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": str(uuid.uuid4())}
        return AWSResponse(request.url, status, headers, _Body(json.dumps(payload).encode()))

    def _error(self, request, status: int, code: str, message: str = "") -> AWSResponse:
        return self._answer(request, status, {"__type": f"com.amazonaws.swf.service.v2.model#{code}", "message": message})

    def _on_send(self, request, **_):
        target = request.headers["X-Amz-Target"]
        operation = (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[-1]
        params = json.loads(request.body or b"{}")
        with self._lock:
            self.requests.append((operation, params))
            if operation == "GetExecutionHistory":
                return self._history(request, params)
            faults = self.thread_faults.get(threading.current_thread().name, self.faults)
            fault = faults.pop(0) if faults else None
        if callable(fault):
            fault = fault(params)
        if fault == "killed_before":
            raise FunctionKilled()
        if fault == "no_connection":
            raise ConnectTimeoutError(endpoint_url=request.url)
        if fault == "throttle":
            return self._error(request, 400, "ThrottlingException", "Rate exceeded")
        if fault == "unavailable":
            return self._error(request, 503, "ServiceUnavailable", "Service unavailable")
        with self._lock:
            if params.get("taskToken") != self.token:
                return self._error(request, 400, "InvalidToken", "Invalid token")
            if self.task != "waiting":
                return self._error(request, 400, "TaskTimedOut", "Task Timed Out: 'Provided task does not exist anymore'")
            if operation == "SendTaskSuccess":
                self.task = "approve"
            else:
                self.task = "reject" if params.get("error") == "ApprovalRejected" else "failed"
        if fault == "lose_answer":
            raise ReadTimeoutError(endpoint_url=request.url)
        if fault == "killed_after":
            raise FunctionKilled()
        return self._answer(request, 200, {})

    def _history(self, request, params: dict) -> AWSResponse:
        if self.history_error:
            return self._error(request, 400, self.history_error, "no")
        if params.get("executionArn") != self.execution_arn:
            return self._error(request, 400, "ExecutionDoesNotExist", "Execution does not exist")
        events = [
            {"type": "ExecutionStarted", "executionStartedEventDetails": {}},
            {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "RequestApproval"}},
            {"type": "TaskScheduled", "taskScheduledEventDetails": {**CALLBACK, "region": REGION, "parameters": "{}"}},
            {"type": "TaskStarted", "taskStartedEventDetails": CALLBACK},
            {"type": "TaskSubmitted", "taskSubmittedEventDetails": CALLBACK},
        ]
        if self.task == "approve":
            events += [{"type": "TaskSucceeded", "taskSucceededEventDetails": dict(CALLBACK)},
                       {"type": "TaskStateExited", "stateExitedEventDetails": {"name": "RequestApproval"}},
                       {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "DeployProduction"}}]
        elif self.task in ("reject", "failed", "timed_out"):
            if self.task == "timed_out":
                events.append({"type": "TaskTimedOut", "taskTimedOutEventDetails": {**CALLBACK, "error": "States.Timeout"}})
            else:
                error = "ApprovalRejected" if self.task == "reject" else "SomethingElse"
                events.append({"type": "TaskFailed", "taskFailedEventDetails": {**CALLBACK, "error": error}})
            events += [{"type": "TaskStateExited", "stateExitedEventDetails": {"name": "RequestApproval"}},
                       {"type": "ExecutionFailed", "executionFailedEventDetails": {"error": "x"}}]
        for number, event in enumerate(events, start=1):
            event.update(id=number, previousEventId=number - 1, timestamp=1735700000 + number)
        if params.get("reverseOrder"):
            events.reverse()
        return self._answer(request, 200, {"events": events})
