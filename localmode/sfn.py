"""Run the real `statemachine/pipeline.asl.json` in moto's ASL interpreter,
with every Task's `service:action` handed to a Python callable.

moto (5.2.x) interprets ASL with LocalStack's interpreter, but it cannot run
this pipeline's integrations by itself (REFERENCE.md 5): no Lambda without
Docker, a crashing `glue:startJobRun.sync`, no SageMaker at all. It has no
public hook either, so this module swaps one private factory
(`state_task_factory.state_task_service_for`) for one that returns
`_LocalTaskService`, a `StateTaskServiceCallback` whose request goes to a
`Dispatcher` and whose `.sync` resolves to the handler's own result. Everything
else stays moto's: parameters, paths, intrinsic functions, Choice, Wait,
Retry/Catch, task tokens (SendTaskSuccess/SendTaskFailure through moto's
public Step Functions API), TimeoutSecondsPath, history events.

`install()` makes four more small, local-only corrections, each where moto
differs from what the definition relies on:
- a payload-template field named `RoleArn.$` is evaluated like any other
  `<name>.$` field (moto's vendored lexer reads `"RoleArn.$"` as the
  Credentials keyword, so Parameters, ResultSelector and Pass Parameters
  passed it through literally: TrainXGBoost's `RoleArn.$` reached the
  training worker unresolved and `RoleArn` was missing);
- Retry back-off sleeps scaled by `retry_time_scale` (moto really sleeps
  `IntervalSeconds`; a local transient error should not wait minutes), and
  each Wait state's seconds by `wait_time_scale`;
- `$$.Execution.StartTime` is an ISO-8601 string as on AWS (moto passes a
  datetime, which then breaks DescribeExecution of a succeeded run);
- SendTaskFailure keeps its `cause` (moto's API handler drops it).

The private symbols this depends on are checked by `check_moto()` (called on
every `install()`), so a moto upgrade fails loudly here instead of running
the pipeline wrongly.

Handler contract: `handler(request: TaskRequest) -> result`.
- request-response tasks: the result is the service's response.
- `.sync`: the result is what Step Functions returns once the job is done
  (GetJobRun's JobRun, DescribeTrainingJob's output); the handler runs the job.
- `.waitForTaskToken`: the result is ignored, as AWS ignores it; the task ends
  when someone calls SendTaskSuccess/SendTaskFailure with `request.task_token`
  or when TimeoutSecondsPath runs out (`States.Timeout`).
A handler fails the task by raising `TaskFailed(error, cause)` with the error
name AWS would report, so the definition's Retry and Catch see what they
would see on AWS. Any other exception becomes `States.Runtime`, as moto does
for integration bugs.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator

from localmode.asl import (  # noqa: F401 (the adapter's public names: handlers import them from here too)
    RESOURCE_PREFIX,
    SUBSTITUTION,
    TaskFailed,
    TaskRequest,
    render_definition,
    split_resource,
    substitution_names,
    task_resources,
)

MOTO_VERSION = "5.2.5"



class IncompatibleMoto(RuntimeError):
    """The moto internals this adapter hooks moved: local mode must be re-checked."""


def _incompatible(detail: str) -> IncompatibleMoto:
    import moto

    return IncompatibleMoto(
        f"localmode.sfn hooks private parts of moto {MOTO_VERSION}'s Step Functions interpreter, "
        f"but the installed moto is {moto.__version__} and {detail}. "
        f"Pin moto=={MOTO_VERSION} (uv.lock) or port localmode/sfn.py to the new internals "
        "and run tests/statemachine/test_sfn_adapter.py."
    )


try:
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl as _retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction as _WaitFunction,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory as _factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser as _ASLParser
    from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadbinding.payload_binding import (
        PayloadBindingStringExpressionSimple,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor as _Preprocessor
    from moto.stepfunctions.parser.backend.execution import Execution as _Execution
    from moto.stepfunctions.responses import StepFunctionResponse as _SfnResponse
except ImportError as _exc:  # pragma: no cover - only when moto moves
    raise _incompatible(f"an import failed ({_exc})") from _exc


def check_moto() -> None:
    """Fail with a clear message unless the hooked moto internals are where this adapter expects them."""
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise _incompatible("the version differs")
    expected = {
        "state_task_factory.state_task_service_for": callable(getattr(_factory, "state_task_service_for", None)),
        "state_task_factory.state_task_for": callable(getattr(_factory, "state_task_for", None)),
        "StateTaskServiceCallback._eval_service_task": hasattr(StateTaskServiceCallback, "_eval_service_task"),
        "StateTaskServiceCallback._build_sync_resolver": hasattr(StateTaskServiceCallback, "_build_sync_resolver"),
        "StateTaskServiceCallback._from_error": hasattr(StateTaskServiceCallback, "_from_error"),
        "StateTaskServiceCallback._validate_service_integration_is_supported": hasattr(
            StateTaskServiceCallback, "_validate_service_integration_is_supported"
        ),
        "ResourceCondition.Sync/WaitForTaskToken": (ResourceCondition.Sync, ResourceCondition.WaitForTaskToken)
        == ("sync", "waitForTaskToken"),
        "retrier_decl.time.sleep": hasattr(getattr(_retrier_decl, "time", None), "sleep"),
        "WaitFunction._wait_interval": callable(getattr(_WaitFunction, "_wait_interval", None)),
        "Execution.get_start_execution_details": callable(getattr(_Execution, "get_start_execution_details", None)),
        "StepFunctionResponse.send_task_failure": callable(getattr(_SfnResponse, "send_task_failure", None)),
        "Preprocessor.visitPayload_binding_value": callable(getattr(_Preprocessor, "visitPayload_binding_value", None)),
        "Preprocessor.visitString_expression_simple": callable(
            getattr(_Preprocessor, "visitString_expression_simple", None)
        ),
        "ASLParser payload value -> string_expression_simple": all(
            callable(getattr(getattr(_ASLParser, ctx, None), method, None))
            for ctx, method in (
                ("Payload_binding_valueContext", "string_literal"),
                ("Payload_binding_valueContext", "payload_value_decl"),
                ("Payload_value_strContext", "string_literal"),
                ("String_literalContext", "string_expression"),
                ("String_expressionContext", "string_expression_simple"),
            )
        ),
    }
    missing = [name for name, ok in expected.items() if not ok]
    if missing:
        raise _incompatible(f"these hooked symbols are missing or changed: {', '.join(missing)}")


Handler = Callable[[TaskRequest], Any]


@dataclass
class TaskCall:
    """What the dispatcher saw: for tests and the run report."""

    request: TaskRequest
    started: float
    ended: float | None = None
    error: str | None = None
    cause: str | None = None


@dataclass
class Dispatcher:
    """Routes each Task to the handler registered for its `service:action` (or `service:action.pattern`)."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[TaskCall] = field(default_factory=list)
    # Called before the handler: may raise TaskFailed to inject a fault into a chosen state.
    before_call: Callable[[TaskRequest], None] | None = None
    # The context the handler runs in (local IAM: the state machine's role, in this state).
    around_call: Callable[[TaskRequest], ContextManager] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def register(self, resource: str, handler: Handler) -> None:
        self.handlers[RESOURCE_PREFIX.sub("", resource)] = handler

    def handler_for(self, resource: str) -> Handler | None:
        short = RESOURCE_PREFIX.sub("", resource)
        return self.handlers.get(short) or self.handlers.get(split_resource(short)[0])

    def missing_handlers(self, definition: dict) -> dict[str, str]:
        """Task states (state name -> resource) that no handler would serve."""
        return {name: res for name, res in task_resources(definition).items() if self.handler_for(res) is None}

    def dispatch(self, request: TaskRequest) -> Any:
        handler = self.handler_for(request.resource)
        call = TaskCall(request=request, started=time.time())
        with self._lock:
            self.calls.append(call)
        try:
            if handler is None:
                raise TaskFailed("States.Runtime", f"No local handler for {request.resource} (state {request.state_name}).")
            if self.before_call is not None:
                self.before_call(request)
            with self.around_call(request) if self.around_call else contextlib.nullcontext():
                result = handler(request)
            # Step Functions carries JSON only: a handler returning anything else is a bug to see now.
            return json.loads(json.dumps(result, default=_json_default))
        except TaskFailed as exc:
            call.error, call.cause = exc.error, exc.cause
            raise
        except Exception as exc:
            call.error, call.cause = "States.Runtime", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            call.ended = time.time()

    def calls_to(self, state_name: str) -> list[TaskCall]:
        with self._lock:
            return [c for c in self.calls if c.request.state_name == state_name]


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# --- the hook -----------------------------------------------------------------

_dispatchers: dict[str, Dispatcher] = {}
_install_lock = threading.Lock()
_install_depth = 0
_original_service_for: Callable | None = None
_original_time: Any = None
_original_start_details: Callable | None = None
_original_send_task_failure: Callable | None = None
_original_payload_binding_value: Callable | None = None
_retry_time_scale = 1.0
_wait_time_scale = 1.0
_original_wait_interval: Callable | None = None


def _scaled_wait_interval(self, env, wait_seconds: int) -> None:
    """A Wait state's wait, times `wait_time_scale`: the states still run in their order and every
    loop keeps its bound (a polling loop counts its polls, or compares the clock with its deadline),
    only the local clock time between polls shrinks. A stopped execution ends the wait at once, as
    moto's own wait does (the event is set)."""
    if wait_seconds > 0:
        env.program_state_event.wait(wait_seconds * _wait_time_scale)


class _ScaledSleep:
    """Stands in for the `time` module inside moto's retrier, so Retry back-off can be shortened locally."""

    def __init__(self, real_time: Any):
        self._real = real_time

    def sleep(self, seconds: float) -> None:
        self._real.sleep(max(0.0, seconds) * _retry_time_scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _LocalTaskService(StateTaskServiceCallback):
    """A Task state whose service call is a Python handler."""

    def __init__(self) -> None:
        super().__init__(supported_integration_patterns={ResourceCondition.Sync, ResourceCondition.WaitForTaskToken})

    def _validate_service_integration_is_supported(self) -> None:
        # The runner checks every Task has a handler before it starts (Dispatcher.missing_handlers).
        pass

    def _get_supported_parameters(self) -> set[str] | None:
        # None: pass every parameter through, as AWS validates them, not the interpreter.
        return None

    def _get_sfn_resource_type(self) -> str:
        if self.resource.service_name == "aws-sdk":
            return f"aws-sdk:{self.resource.api_name}"
        return self.resource.service_name

    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials) -> None:
        context = env.states.context_object.context_object_data
        state_machine_arn = context["StateMachine"]["Id"]
        dispatcher = _dispatchers.get(state_machine_arn)
        if dispatcher is None:
            raise TaskFailed("States.Runtime", f"No local dispatcher is attached to state machine {state_machine_arn}.")
        request = TaskRequest(
            state_name=context["State"]["Name"],
            resource=self.resource.resource_arn,
            # Through JSON as on AWS: the context's StartTime is a datetime inside moto, a string on the wire.
            parameters=json.loads(json.dumps(normalised_parameters, default=_json_default)),
            execution_arn=context["Execution"]["Id"],
            execution_name=context["Execution"]["Name"],
            state_machine_arn=state_machine_arn,
            task_token=(context.get("Task") or {}).get("Token"),
            retry_count=context["State"].get("RetryCount", 0),
        )
        env.stack.append(dispatcher.dispatch(request))

    def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):
        # The handler already ran the job to completion: its result is the .sync output.
        result = env.stack.pop()
        return lambda: result

    def _from_error(self, env, ex: Exception):
        if not isinstance(ex, (TaskFailed, TimeoutError)) and type(ex).__module__.split(".")[0] != "moto":
            # A bug in a local handler: say which exception, not only its message.
            ex = TaskFailed("States.Runtime", f"{type(ex).__name__}: {ex}")
        if isinstance(ex, TaskFailed):
            error_name = _error_name(ex.error)
            return FailureEvent(
                env=env,
                error_name=error_name,
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=ex.error,
                        cause=ex.cause,
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                    )
                ),
            )
        return super()._from_error(env=env, ex=ex)


def _local_service_for(service_name: str):
    return _LocalTaskService()


def _start_details_with_iso_time(self):
    """`$$.Execution.StartTime` as AWS gives it: an ISO-8601 string.

    moto passes the datetime itself, which then sits in the state data (the
    definition's Initialize copies it into `run.started_at`) and makes
    DescribeExecution crash on a succeeded execution's output.
    """
    details = _original_start_details(self)
    start = details.start_time
    if hasattr(start, "astimezone"):
        details.start_time = start.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{start.microsecond // 1000:03d}Z"
    return details


def _send_task_failure_with_cause(self):
    """SendTaskFailure keeping its `cause` (moto's response handler drops it): a rejection's reason must arrive."""
    from moto.core.responses import EmptyResult

    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


def _payload_binding_value(self, ctx):
    """A payload-template binding whose name ends in `.$`, evaluated whatever the name.

    moto's grammar turns `"<name>.$": "<path>"` into an evaluated binding only
    when the lexer produces a STRINGDOLLAR token for the name. For
    `"RoleArn.$"` it produces the ROLEARNPATH keyword (from the Task's
    `Credentials` block) instead, and the parser falls back to a literal
    binding: `RoleArn.$` and its path string reach the task as they are
    written, in Parameters, ResultSelector and Pass Parameters, at any depth.
    It is the only keyword of moto 5.2.5's lexer that ends in `.$`, but the
    rule below holds for any name: AWS evaluates every field whose name ends in
    `.$` (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html)
    and refuses a definition whose `.$` field is not a path or an intrinsic
    function call, which is what this does at CreateStateMachine too (moto
    left such a field literal, whatever its name).
    """
    field_name = self.visitString_literal(ctx.string_literal()).literal_value
    if not field_name.endswith(".$"):
        return _original_payload_binding_value(self, ctx)
    value = ctx.payload_value_decl().getChild(0)
    literal = value.string_literal() if isinstance(value, _ASLParser.Payload_value_strContext) else None
    expression = literal.string_expression() if literal is not None else None
    simple = expression.string_expression_simple() if expression is not None else None
    if simple is None:
        # AWS's own wording at CreateStateMachine (quoted in aws-cloudformation/cfn-lint#4643).
        raise ValueError(
            f"The value for the field '{field_name}' must be a valid JSONPath or a valid intrinsic function call "
            f"(got {ctx.payload_value_decl().getText()})"
        )
    return PayloadBindingStringExpressionSimple(
        field=field_name[:-2], string_expression_simple=self.visitString_expression_simple(simple)
    )


def _error_name(error: str):
    """moto's typed error name: the built-in `States.*` type when there is one, else a custom name."""
    if error.startswith("States."):
        try:
            return StatesErrorName.from_name(error)
        except Exception:  # a States.* name moto has no type for
            return ErrorName(error_name=error)
    return CustomErrorName(error)


@contextlib.contextmanager
def install(retry_time_scale: float = 1.0, wait_time_scale: float = 1.0) -> Iterator[None]:
    """Route every service-integration Task in this process to the attached dispatchers while active.

    `retry_time_scale` multiplies the definition's Retry intervals (1.0 = as
    written; local runs use a small value so a transient local error does not
    sleep for minutes); `wait_time_scale` multiplies each Wait state's seconds.
    Re-entrant; the outermost call's scales win.
    """
    global _install_depth, _original_service_for, _original_time, _original_start_details, _original_send_task_failure
    global _original_payload_binding_value, _retry_time_scale, _wait_time_scale, _original_wait_interval
    check_moto()
    with _install_lock:
        if _install_depth == 0:
            _original_service_for = _factory.state_task_service_for
            _original_time = _retrier_decl.time
            _factory.state_task_service_for = _local_service_for
            _retrier_decl.time = _ScaledSleep(_original_time)
            _original_start_details = _Execution.get_start_execution_details
            _Execution.get_start_execution_details = _start_details_with_iso_time
            _original_send_task_failure = _SfnResponse.send_task_failure
            _SfnResponse.send_task_failure = _send_task_failure_with_cause
            _original_payload_binding_value = _Preprocessor.visitPayload_binding_value
            _Preprocessor.visitPayload_binding_value = _payload_binding_value
            _retry_time_scale = retry_time_scale
            _wait_time_scale = wait_time_scale
            _original_wait_interval = _WaitFunction._wait_interval
            _WaitFunction._wait_interval = _scaled_wait_interval
        _install_depth += 1
    try:
        yield
    finally:
        with _install_lock:
            _install_depth -= 1
            if _install_depth == 0:
                _factory.state_task_service_for = _original_service_for
                _retrier_decl.time = _original_time
                _Execution.get_start_execution_details = _original_start_details
                _SfnResponse.send_task_failure = _original_send_task_failure
                _Preprocessor.visitPayload_binding_value = _original_payload_binding_value
                _WaitFunction._wait_interval = _original_wait_interval


def attach(state_machine_arn: str, dispatcher: Dispatcher) -> None:
    _dispatchers[state_machine_arn] = dispatcher


def detach(state_machine_arn: str) -> None:
    _dispatchers.pop(state_machine_arn, None)


# --- driving an execution through moto's public Step Functions API -------------

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@dataclass
class StateMachine:
    """The rendered definition, created in moto's Step Functions, with its dispatcher attached."""

    arn: str
    definition: dict
    dispatcher: Dispatcher
    client: Any

    @classmethod
    def create(
        cls,
        client: Any,
        definition_template: str,
        substitutions: dict[str, str],
        dispatcher: Dispatcher,
        name: str = "pipeline",
        role_arn: str = "arn:aws:iam::123456789012:role/local-state-machine",
    ) -> "StateMachine":
        """`definition_template` is the file's text, `${...}` substitutions unfilled."""
        rendered = render_definition(definition_template, substitutions)
        definition = json.loads(rendered)
        missing = dispatcher.missing_handlers(definition)
        if missing:
            raise KeyError("No local handler for: " + ", ".join(f"{s} ({r})" for s, r in sorted(missing.items())))
        arn = client.create_state_machine(name=name, definition=rendered, roleArn=role_arn)["stateMachineArn"]
        attach(arn, dispatcher)
        return cls(arn=arn, definition=definition, dispatcher=dispatcher, client=client)

    def start(self, name: str, execution_input: dict) -> str:
        return self.client.start_execution(stateMachineArn=self.arn, name=name, input=json.dumps(execution_input))[
            "executionArn"
        ]

    def history(self, execution_arn: str) -> list[dict]:
        return self.client.get_execution_history(executionArn=execution_arn)["events"]

    def wait(
        self,
        execution_arn: str,
        timeout: float = 600.0,
        on_events: Callable[[list[dict]], None] | None = None,
        poll: float = 0.05,
    ) -> dict:
        """Poll until the execution ends; `on_events` gets each batch of new history events."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            description = self.client.describe_execution(executionArn=execution_arn)
            if on_events is not None:
                events = self.history(execution_arn)
                if len(events) > seen:
                    on_events(events[seen:])
                    seen = len(events)
            if description["status"] in TERMINAL:
                return description
            if time.monotonic() > deadline:
                raise TimeoutError(f"Execution {execution_arn} still {description['status']} after {timeout:.0f} s")
            time.sleep(poll)

    def close(self) -> None:
        detach(self.arn)
