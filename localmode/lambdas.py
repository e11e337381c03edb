"""The real Lambda handlers from `functions/<name>/app.py`, invoked in-process
the way Step Functions' `lambda:invoke` would invoke them.

- Each handler is loaded by path under a unique module name (every folder has
  an `app.py`), with `functions/common` on sys.path (the shared layer).
- It runs with the environment the template gives that function (names from
  template.yaml when it exists; values supplied by local mode), for the
  duration of the import and of each call, seen by the calling thread only
  (`function_environment`). Invocations are serialized.
- The result is shaped like lambda:invoke's (`Payload`, `StatusCode`, ...).
  A handler exception fails the task with the exception's class name as the
  error and AWS's JSON (`errorMessage`, `errorType`, `stackTrace`) as the cause,
  exactly what a Catch sees on AWS.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

from localmode import REPO_ROOT
from localmode.asl import TaskFailed, TaskRequest

FUNCTIONS_DIR = REPO_ROOT / "functions"
COMMON_DIR = FUNCTIONS_DIR / "common"
ACCOUNT = "123456789012"


def folder_for_substitution(substitution: str) -> str | None:
    """`QATestFunctionArn` -> `qa_test`: the naming convention between the definition and functions/."""
    if not substitution.endswith("FunctionArn"):
        return None
    stem = substitution[: -len("FunctionArn")]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", stem).lower()


def local_function_arn(folder: str, region: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{folder}"


def function_name_from(function_name_or_arn: str) -> str:
    """FunctionName as lambda:invoke accepts it (name, ARN, partial ARN, with or without qualifier) -> name."""
    if function_name_or_arn.startswith("arn:"):
        parts = function_name_or_arn.split(":")
        return parts[6]
    return function_name_or_arn.split(":")[0]


class LambdaContext:
    """What a handler's `context` offers on AWS (the parts Powertools and handlers read)."""

    def __init__(self, function_name: str, region: str, timeout_seconds: float = 900.0, memory_mb: int = 512):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = local_function_arn(function_name, region)
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _PerThreadEnviron(os._Environ):
    """`os.environ` over the same variables, plus an overlay that only the thread that set it sees.

    A function's environment used to be written into the process environment for the call and taken out
    again after it. Other threads read that environment meanwhile: every boto3 client they create lists
    `os.environ` (urllib's proxy lookup), and a variable deleted between the listing and its lookup made
    that thread's call fail with KeyError (the training thread's job failed, or the run's own polling
    crashed). The overlay never touches the shared variables, so no other thread sees a change, and a
    function sees only its own environment, as on Lambda.
    """

    def __init__(self, base: os._Environ):
        super().__init__(base._data, base.encodekey, base.decodekey, base.encodevalue, base.decodevalue)
        self._local = threading.local()

    def overlay(self) -> dict | None:
        return getattr(self._local, "overlay", None)

    def set_overlay(self, overlay: dict | None) -> None:
        self._local.overlay = overlay

    def __getitem__(self, key):
        overlay = self.overlay()
        if overlay is not None and key in overlay:
            if overlay[key] is None:
                raise KeyError(key)
            return overlay[key]
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        overlay = self.overlay()
        if overlay is None:
            return super().__setitem__(key, value)
        self.encodekey(key), self.encodevalue(value)  # the type checks os.environ makes
        overlay[key] = value

    def __delitem__(self, key):
        overlay = self.overlay()
        if overlay is None:
            return super().__delitem__(key)
        self[key]  # KeyError when not set, as os.environ
        overlay[key] = None

    def __iter__(self):
        overlay = self.overlay()
        shared = list(super().__iter__())
        if overlay is None:
            yield from shared
            return
        yield from (key for key in shared if overlay.get(key, "") is not None)
        yield from (key for key, value in overlay.items() if value is not None and key not in shared)

    def __len__(self):
        return sum(1 for _ in self)

    def copy(self):
        return dict(self)


_environ_lock = threading.Lock()


@contextlib.contextmanager
def function_environment(values: dict[str, str]) -> Iterator[None]:
    """`values` added to the environment this thread sees, until the block ends (nested blocks add up)."""
    with _environ_lock:
        if not isinstance(os.environ, _PerThreadEnviron):
            os.environ = _PerThreadEnviron(os.environ)
    environ = os.environ
    previous = environ.overlay()
    environ.set_overlay({**(previous or {}), **{k: str(v) for k, v in values.items()}})
    try:
        yield
    finally:
        environ.set_overlay(previous)


@dataclass
class Invocation:
    function: str
    event: Any
    result: Any = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class LocalLambdas:
    """Loads and invokes the handlers in functions/, each with its own environment."""

    region: str
    environments: dict[str, dict[str, str]] = field(default_factory=dict)  # function folder -> env vars
    functions_dir: Path = FUNCTIONS_DIR
    invocations: list[Invocation] = field(default_factory=list)
    timeouts: dict[str, float] = field(default_factory=dict)  # function folder -> seconds (the template's Timeout)
    # Where the handlers' Powertools logs go (None: where Powertools puts them, stdout).
    log_stream: Any = None
    # The context a function's code runs in, by folder (local IAM: acting as the function's role).
    acting_as: Callable[[str], Any] | None = None
    _modules: dict[str, ModuleType] = field(default_factory=dict)
    _redirected: list = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def available(self) -> list[str]:
        return sorted(p.parent.name for p in self.functions_dir.glob("*/app.py"))

    def _environment(self, function: str):
        values = {"AWS_LAMBDA_FUNCTION_NAME": function, "AWS_REGION": self.region, **self.environments.get(function, {})}
        return function_environment(values)

    def _as(self, function: str):
        return self.acting_as(function) if self.acting_as else contextlib.nullcontext()

    def module(self, function: str) -> ModuleType:
        with self._lock:
            if function in self._modules:
                return self._modules[function]
            path = self.functions_dir / function / "app.py"
            if not path.is_file():
                raise FileNotFoundError(f"No Lambda handler at {path}")
            common = str(self.functions_dir / "common")
            if common not in sys.path:
                sys.path.insert(0, common)
            module_name = f"localmode_lambda_{function}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            with self._environment(function), self._as(function):
                spec.loader.exec_module(module)
            if self.log_stream is not None:
                self._redirected.extend(_redirect_powertools_logs(module, self.log_stream))
            self._modules[function] = module
            return module

    def invoke(self, function: str, event: Any) -> Any:
        """Call the handler; return its result or raise LambdaError (the handler's exception, AWS-shaped)."""
        with self._lock:
            record = Invocation(function=function, event=event)
            self.invocations.append(record)
            started = time.monotonic()
            try:
                handler = self.module(function).lambda_handler
                # The event crosses a JSON boundary on AWS: handlers never see Python objects from the caller.
                event_copy = json.loads(json.dumps(event))
                context = LambdaContext(function, self.region, self.timeouts.get(function, 900.0))
                with self._environment(function), self._as(function):
                    result = handler(event_copy, context)
                record.result = json.loads(json.dumps(result))
                return record.result
            except Exception as exc:
                record.error = type(exc).__name__
                raise LambdaError.from_exception(exc) from exc
            finally:
                record.seconds = time.monotonic() - started

    def restore_logs(self) -> None:
        """Give the Powertools log handlers back their own streams (before `log_stream` closes)."""
        for handler, previous in reversed(self._redirected):
            with _handler_lock(handler):
                if handler.stream is self.log_stream:
                    handler.stream = previous
        self._redirected.clear()

    def calls_to(self, function: str) -> list[Invocation]:
        return [i for i in self.invocations if i.function == function]

    def task_handler(self, arn_to_function: Callable[[str], str] = function_name_from) -> Callable[[TaskRequest], Any]:
        """The Step Functions handler for `lambda:invoke` (and `.waitForTaskToken`)."""

        def handle(request: TaskRequest) -> dict:
            function = arn_to_function(request.parameters["FunctionName"])
            try:
                payload = self.invoke(function, request.parameters.get("Payload", {}))
            except LambdaError as exc:
                raise TaskFailed(exc.error_type, exc.payload_json()) from exc
            return lambda_invoke_result(payload)

        return handle


def _redirect_powertools_logs(module: ModuleType, stream: Any) -> list[tuple[Any, Any]]:
    """Point the module's Powertools Logger(s) at `stream` (they write to stdout, the runner's terminal).
    Returns (handler, previous stream) pairs for `restore_logs`."""
    try:
        from aws_lambda_powertools import Logger
    except ImportError:  # pragma: no cover - Powertools is a dependency
        return []
    redirected = []
    for value in vars(module).values():
        if isinstance(value, Logger):
            handler = value.registered_handler
            if isinstance(handler, logging.StreamHandler):
                # Not setStream: it flushes the previous stream, which may be an earlier run's closed log.
                with _handler_lock(handler):
                    redirected.append((handler, handler.stream))
                    handler.stream = stream
    return redirected


@contextlib.contextmanager
def _handler_lock(handler: logging.Handler) -> Iterator[None]:
    handler.acquire()
    try:
        yield
    finally:
        handler.release()


def lambda_invoke_result(payload: Any) -> dict:
    """What `arn:aws:states:::lambda:invoke` returns (before ResultSelector)."""
    return {
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": {"HttpStatusCode": 200},
        "SdkResponseMetadata": {"RequestId": str(uuid.uuid4())},
        "StatusCode": 200,
    }


class LambdaError(Exception):
    """A handler raised: carries what the Lambda service reports (errorType, errorMessage, stackTrace)."""

    def __init__(self, error_type: str, message: str, stack: list[str]):
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.stack = stack

    @classmethod
    def from_exception(cls, exc: BaseException) -> "LambdaError":
        stack = [line.rstrip("\n") for line in traceback.format_tb(exc.__traceback__)]
        return cls(type(exc).__name__, str(exc), stack)

    def payload_json(self) -> str:
        return json.dumps({"errorMessage": self.message, "errorType": self.error_type, "stackTrace": self.stack})
