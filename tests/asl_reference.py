"""An independent reading of Amazon States Language payload templates
(JSONPath query language), to check what moto's interpreter hands each Task.

It shares nothing with moto: no ANTLR grammar, no jsonpath-ng. What it
evaluates follows the AWS documentation:
- payload templates: every field whose name ends in `.$`, however deeply
  nested (objects and arrays), takes the value its path or intrinsic function
  selects and loses the `.$`; other fields are copied as written
  https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html
- paths (`$...` on the state's effective input, `$$...` on the context object)
  https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-paths.html
  https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html
- `States.Format`, with `'`, `{`, `}` and `\\` escaped by a backslash inside
  string literals
  https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html

It is deliberately small. Anything else (wildcards, filters, slices, other
intrinsic functions, a context field the caller did not supply, an object
formatted into a string) raises `Unsupported` naming it, so a check built on
it fails rather than skipping a state. `check_task_parameters` is that check
for a finished local run.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any, Callable, Iterable

# What this reference can read after `$`: `.name`, `['name']`, `["name"]`, `[0]`.
_SEGMENT = re.compile(r"""\.(?P<name>[A-Za-z0-9_\-]+)|\[(?P<index>\d+)\]|\[(?P<quote>['"])(?P<key>[^'"]*)(?P=quote)\]""")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")


class Unsupported(Exception):
    """The template uses something this reference does not evaluate."""


class PathNotFound(Exception):
    """The path selects nothing: Step Functions fails the state (States.Runtime) instead of calling the task."""


class InvalidTemplate(Exception):
    """Step Functions would refuse this definition."""


def path_steps(path: str) -> list[str | int]:
    if not path.startswith("$"):
        raise InvalidTemplate(f"{path!r} is not a path")
    rest, steps, position = path[1:], [], 0
    while position < len(rest):
        match = _SEGMENT.match(rest, position)
        if match is None:
            raise Unsupported(f"path {path!r}: {rest[position:]!r} (only .name, ['name'] and [index] are evaluated here)")
        if match["index"] is not None:
            steps.append(int(match["index"]))
        else:
            steps.append(match["name"] if match["name"] is not None else match["key"])
        position = match.end()
    return steps


def select(path: str, data: Any) -> Any:
    """The single value `path` selects in `data`."""
    value = data
    for step in path_steps(path):
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                raise PathNotFound(f"{path}: no item {step}")
        elif not isinstance(value, dict) or step not in value:
            raise PathNotFound(f"{path}: no field {step!r}")
        value = value[step]
    return value


def select_context(path: str, context: dict) -> Any:
    try:
        return select(path[1:], context)
    except PathNotFound:
        raise Unsupported(f"context path {path!r} is not in the context this reference was given") from None


def evaluate_expression(expression: Any, data: Any, context: dict) -> Any:
    """The value of a `<name>.$` field."""
    if not isinstance(expression, str):
        raise InvalidTemplate(f"a .$ field's value must be a string, not {expression!r}")
    if expression.startswith("$$"):
        return select_context(expression, context)
    if expression.startswith("$"):
        return select(expression, data)
    if expression.startswith("States."):
        return evaluate_intrinsic(expression, data, context)
    raise InvalidTemplate(f"{expression!r} is neither a path nor an intrinsic function call")


def evaluate_payload(template: Any, data: Any, context: dict) -> Any:
    """A payload template (Parameters, ResultSelector, ...) evaluated against `data` and `context`."""
    if isinstance(template, dict):
        result = {}
        for key, value in template.items():
            if key.endswith(".$"):
                result[key[:-2]] = evaluate_expression(value, data, context)
            else:
                result[key] = evaluate_payload(value, data, context)
        return result
    if isinstance(template, list):
        return [evaluate_payload(item, data, context) for item in template]
    return template


def unresolved_fields(template: Any, received: Any, where: str = "") -> list[str]:
    """Where `received` still holds a field under the `<name>.$` name the template gave it."""
    found = []
    if isinstance(template, dict) and isinstance(received, dict):
        for key, value in template.items():
            if key.endswith(".$"):
                if key in received:
                    found.append(f"{where}/{key}")
            elif key in received:
                found += unresolved_fields(value, received[key], f"{where}/{key}")
    elif isinstance(template, list) and isinstance(received, list):
        for index, (item, got) in enumerate(zip(template, received)):
            found += unresolved_fields(item, got, f"{where}[{index}]")
    return found


# --- intrinsic functions ----------------------------------------------------------


class _Chars(list):
    """A string literal's characters, each with whether it was escaped (an escaped `{}` is no placeholder)."""


class _Intrinsic:
    def __init__(self, text: str, data: Any, context: dict):
        self.text, self.data, self.context, self.position = text, data, context, 0

    def fail(self, message: str) -> InvalidTemplate:
        return InvalidTemplate(f"{self.text!r} at {self.position}: {message}")

    def skip_spaces(self) -> None:
        while self.position < len(self.text) and self.text[self.position] == " ":
            self.position += 1

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.position)

    def call(self) -> Any:
        match = re.compile(r"States\.([A-Za-z0-9]+)\(").match(self.text, self.position)
        if match is None:
            raise self.fail("expected States.<Function>(")
        name = match[1]
        if name != "Format":
            raise Unsupported(f"intrinsic function States.{name} in {self.text!r}")
        self.position = match.end()
        arguments = []
        self.skip_spaces()
        if not self.peek(")"):
            while True:
                self.skip_spaces()
                arguments.append(self.argument())
                self.skip_spaces()
                if self.peek(","):
                    self.position += 1
                    continue
                break
        if not self.peek(")"):
            raise self.fail("expected , or )")
        self.position += 1
        return _format(arguments, self.text)

    def argument(self) -> Any:
        if self.peek("'"):
            return self.string_literal()
        if self.peek("$"):
            return self.path()
        if self.peek("States."):
            return self.call()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.peek(word):
                self.position += len(word)
                return value
        number = _NUMBER.match(self.text, self.position)
        if number is not None:
            self.position = number.end()
            return json.loads(number[0])
        raise self.fail("expected an argument")

    def string_literal(self) -> _Chars:
        self.position += 1
        chars = _Chars()
        while self.position < len(self.text):
            char = self.text[self.position]
            if char == "\\" and self.position + 1 < len(self.text):
                chars.append((self.text[self.position + 1], True))
                self.position += 2
            elif char == "'":
                self.position += 1
                return chars
            else:
                chars.append((char, False))
                self.position += 1
        raise self.fail("unterminated string literal")

    def path(self) -> Any:
        start, depth, quote = self.position, 0, None
        while self.position < len(self.text):
            char = self.text[self.position]
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"" and depth:
                quote = char
            elif char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
            elif char in ",)" and depth == 0:
                break
            self.position += 1
        path = self.text[start:self.position].rstrip()
        return select_context(path, self.context) if path.startswith("$$") else select(path, self.data)


def _as_text(value: Any) -> str:
    if isinstance(value, _Chars):
        return "".join(char for char, _ in value)
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    # AWS does not document how an object or array is written into the string.
    raise Unsupported(f"States.Format of a {type(value).__name__}")


def _format(arguments: list, text: str) -> str:
    if not arguments:
        raise InvalidTemplate(f"{text!r}: States.Format needs a template argument")
    template, values = arguments[0], arguments[1:]
    if isinstance(template, str):
        template = _Chars((char, False) for char in template)
    if not isinstance(template, _Chars):
        raise InvalidTemplate(f"{text!r}: the first argument of States.Format must be a string")
    pieces: list[str] = []
    remaining = iter(values)
    used, index = 0, 0
    while index < len(template):
        char, escaped = template[index]
        if char == "{" and not escaped and index + 1 < len(template) and template[index + 1] == ("}", False):
            try:
                pieces.append(_as_text(next(remaining)))
            except StopIteration:
                raise InvalidTemplate(f"{text!r}: more {{}} than arguments") from None
            used += 1
            index += 2
            continue
        pieces.append(char)
        index += 1
    if used != len(values):
        raise InvalidTemplate(f"{text!r}: {len(values)} arguments for {used} {{}}")
    return "".join(pieces)


def evaluate_intrinsic(text: str, data: Any, context: dict) -> Any:
    parser = _Intrinsic(text, data, context)
    value = parser.call()
    parser.skip_spaces()
    if parser.position != len(text):
        raise parser.fail("unexpected text after the call")
    return value


# --- the check of a local run ----------------------------------------------------------


def task_states(definition: dict) -> dict[str, dict]:
    """Every Task state of the definition, nested ones (Parallel branches, Map processors) included."""
    found: dict[str, dict] = {}
    for name, state in definition.get("States", {}).items():
        if state.get("Type") == "Task":
            found[name] = state
        for branch in state.get("Branches", []):
            found.update(task_states(branch))
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                found.update(task_states(state[key]))
    return found


def effective_input(state: dict, state_input: Any) -> Any:
    """The state's input after InputPath (null: an empty object)."""
    if "InputPath" not in state:
        return state_input
    if state["InputPath"] is None:
        return {}
    return select(state["InputPath"], state_input)


def check_task_parameters(definition: dict, calls: Iterable, history_of: Callable[[str], list[dict]]) -> list[str]:
    """Every problem with what the dispatcher's calls received, compared with an evaluation of each state's
    Parameters against its effective input (from the execution history) and the context object.

    `calls` are `localmode.sfn.TaskCall`s; `history_of(execution_arn)` returns the execution's whole history.
    """
    tasks = task_states(definition)
    problems: list[str] = []
    by_execution: dict[str, list] = defaultdict(list)
    for call in calls:
        by_execution[call.request.execution_arn].append(call)
    for execution_arn, execution_calls in by_execution.items():
        history = history_of(execution_arn)
        [started] = [e for e in history if e["type"] == "ExecutionStarted"]
        execution_input = json.loads(started["executionStartedEventDetails"]["input"])
        entered: dict[str, list[Any]] = defaultdict(list)
        for event in history:
            if event["type"] == "TaskStateEntered":
                details = event["stateEnteredEventDetails"]
                entered[details["name"]].append(json.loads(details["input"]))
        visits: dict[str, int] = defaultdict(lambda: -1)
        for call in execution_calls:
            request = call.request
            name = request.state_name
            where = f"{name} ({request.execution_name}, attempt {request.retry_count + 1})"
            if name not in tasks:
                problems.append(f"{where}: the definition has no Task state of that name")
                continue
            if request.retry_count == 0:
                visits[name] += 1
            if visits[name] < 0 or visits[name] >= len(entered[name]):
                problems.append(f"{where}: no TaskStateEntered event in the history for this call")
                continue
            state = tasks[name]
            context = {
                "Execution": {"Id": execution_arn, "Name": request.execution_name, "Input": execution_input},
                "StateMachine": {"Id": request.state_machine_arn},
                "State": {"Name": name, "RetryCount": request.retry_count},
            }
            if state["Resource"].endswith(".waitForTaskToken"):
                if not request.task_token:
                    problems.append(f"{where}: a .waitForTaskToken task without a task token")
                context["Task"] = {"Token": request.task_token}
            received = request.parameters
            literal = unresolved_fields(state.get("Parameters"), received)
            if literal:
                problems.append(f"{where}: unresolved field(s) {', '.join(literal)}")
            try:
                data = effective_input(state, entered[name][visits[name]])
                expected = evaluate_payload(state["Parameters"], data, context) if "Parameters" in state else data
            except Unsupported as exc:
                problems.append(f"{where}: cannot evaluate its Parameters independently: {exc}")
                continue
            except (PathNotFound, InvalidTemplate) as exc:
                problems.append(f"{where}: Step Functions would not have called the task: {exc}")
                continue
            if received != expected and not literal:
                problems.append(f"{where}: received {_differences(expected, received)}")
    return problems


def _differences(expected: Any, received: Any, where: str = "") -> str:
    if isinstance(expected, dict) and isinstance(received, dict):
        parts = [f"{where}/{k}: expected {expected[k]!r}, got nothing" for k in expected if k not in received]
        parts += [f"{where}/{k}: not expected, got {received[k]!r}" for k in received if k not in expected]
        parts += [_differences(expected[k], received[k], f"{where}/{k}") for k in expected if k in received
                  and expected[k] != received[k]]
        return "; ".join(parts)
    return f"{where or '/'}: expected {expected!r}, got {received!r}"


def tasks_not_called(definition: dict, calls: Iterable) -> list[str]:
    called = {call.request.state_name for call in calls}
    return sorted(set(task_states(definition)) - called)
