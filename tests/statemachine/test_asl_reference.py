"""The independent payload-template evaluator (tests/asl_reference.py) that
the local-run parameter checks rely on: it must agree with the AWS
documentation's own examples, and refuse what it cannot evaluate."""
from __future__ import annotations

import json

import pytest

import asl_reference as ref
from localmode import sfn


def test_the_parameters_example_of_the_aws_documentation():
    # https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html (Parameters)
    state_input = {
        "comment": "Example for Parameters.",
        "product": {
            "details": {"color": "blue", "size": "small", "material": "cotton"},
            "availability": "in stock",
            "sku": "2317",
            "cost": "$23",
        },
    }
    parameters = {
        "comment": "Selecting what I care about.",
        "MyDetails": {"size.$": "$.product.details.size", "exists.$": "$.product.availability", "StaticValue": "foo"},
    }
    assert ref.evaluate_payload(parameters, state_input, {}) == {
        "comment": "Selecting what I care about.",
        "MyDetails": {"size": "small", "exists": "in stock", "StaticValue": "foo"},
    }


def test_fields_are_evaluated_at_any_depth_arrays_included_and_whatever_their_name():
    data = {"v": {"x": [1, {"y": "deep"}]}}
    template = {
        "RoleArn.$": "$.v.x[1].y",
        "Credentials": {"RoleArn.$": "$['v']['x'][0]"},
        "List": [{"Type.$": "$.v.x[1]['y']"}, "static", 3],
        "Whole.$": "$",
    }
    assert ref.evaluate_payload(template, data, {}) == {
        "RoleArn": "deep",
        "Credentials": {"RoleArn": 1},
        "List": [{"Type": "deep"}, "static", 3],
        "Whole": data,
    }


def test_context_object_paths():
    context = {"Execution": {"Name": "run-1"}, "Task": {"Token": "tok"}}
    assert ref.evaluate_payload({"n.$": "$$.Execution.Name", "t.$": "$$.Task.Token"}, {}, context) == {"n": "run-1", "t": "tok"}
    with pytest.raises(ref.Unsupported, match=r"\$\$\.State\.EnteredTime"):
        ref.evaluate_payload({"e.$": "$$.State.EnteredTime"}, {}, context)


def test_states_format_as_the_aws_documentation_shows_it():
    # https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html (States.Format)
    data = {"name": "Arnav", "template": "Hello, my name is {}."}
    assert ref.evaluate_intrinsic("States.Format('Hello, my name is {}.', $.name)", data, {}) == "Hello, my name is Arnav."
    assert ref.evaluate_intrinsic("States.Format($.template, $.name)", data, {}) == "Hello, my name is Arnav."


def test_states_format_escapes_numbers_and_context():
    # Reserved characters in a literal are escaped with a backslash (one more for JSON in the definition file).
    text = json.loads(r'''"States.Format('It\\'s \\{\\} {} of {}, {} {} {}', $.n, $$.Execution.Name, true, null, 0.5)"''')
    assert ref.evaluate_intrinsic(text, {"n": 346}, {"Execution": {"Name": "run-1"}}) == "It's {} 346 of run-1, true null 0.5"
    nested = "States.Format('<{}>', States.Format('{}-{}', $.a, $.b))"
    assert ref.evaluate_intrinsic(nested, {"a": "x", "b": "y"}, {}) == "<x-y>"


@pytest.mark.parametrize(
    "template",
    [
        {"a.$": "$..x"},
        {"a.$": "$.list[*]"},
        {"a.$": "$.list[?(@.x)]"},
        {"a.$": "$.list[0:1]"},
        {"a.$": "States.Array($.x)"},
        {"a.$": "States.Format('{}', $.obj)"},
    ],
)
def test_what_it_cannot_evaluate_is_refused_not_skipped(template):
    with pytest.raises(ref.Unsupported):
        ref.evaluate_payload(template, {"x": 1, "list": [{"x": 1}], "obj": {"k": 1}}, {})


@pytest.mark.parametrize(
    "template, error",
    [
        ({"a.$": "$.missing"}, ref.PathNotFound),
        ({"a.$": "$.list[3]"}, ref.PathNotFound),
        ({"a.$": "plain words"}, ref.InvalidTemplate),
        ({"a.$": 5}, ref.InvalidTemplate),
        ({"a.$": "States.Format('{} {}', $.x)"}, ref.InvalidTemplate),
        ({"a.$": "States.Format('{}', $.x, $.x)"}, ref.InvalidTemplate),
    ],
)
def test_what_step_functions_would_refuse(template, error):
    with pytest.raises(error):
        ref.evaluate_payload(template, {"x": 1, "list": []}, {})


def test_unresolved_fields_follow_the_template():
    template = {"RoleArn.$": "$.r", "Payload": {"run.$": "$.run"}, "List": [{"k.$": "$.k"}], "Whole.$": "$"}
    received = {"RoleArn.$": "$.r", "Payload": {"run": {}}, "List": [{"k.$": "$.k"}], "Whole": {"data.$": "is data"}}
    assert ref.unresolved_fields(template, received) == ["/RoleArn.$", "/List[0]/k.$"]


def _call(state: str, parameters: dict, retry: int = 0, token: str | None = None) -> sfn.TaskCall:
    request = sfn.TaskRequest(
        state_name=state, resource="r", parameters=parameters, execution_arn="arn:exec", execution_name="run-1",
        state_machine_arn="arn:sm", task_token=token, retry_count=retry,
    )
    return sfn.TaskCall(request=request, started=0.0)


def _history(*entered: tuple[str, dict]) -> list[dict]:
    events = [{"type": "ExecutionStarted", "executionStartedEventDetails": {"input": json.dumps({"in": 1})}}]
    events += [{"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": n, "input": json.dumps(i)}} for n, i in entered]
    return events


DEFINITION = {
    "StartAt": "Work",
    "States": {
        "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "InputPath": "$.inner",
                 "Parameters": {"RoleArn.$": "$.role", "Name.$": "$$.Execution.Name", "Static": 1}, "Next": "Wait"},
        "Wait": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                 "Parameters": {"Payload": {"token.$": "$$.Task.Token"}}, "End": True},
    },
}


def test_the_check_passes_matching_calls_retries_included():
    calls = [
        _call("Work", {"RoleArn": "role-a", "Name": "run-1", "Static": 1}),
        _call("Work", {"RoleArn": "role-a", "Name": "run-1", "Static": 1}, retry=1),  # same visit, same input
        _call("Work", {"RoleArn": "role-b", "Name": "run-1", "Static": 1}),  # a second visit
        _call("Wait", {"Payload": {"token": "tok"}}, token="tok"),
    ]
    history = _history(("Work", {"inner": {"role": "role-a"}}), ("Work", {"inner": {"role": "role-b"}}), ("Wait", {}))
    assert ref.check_task_parameters(DEFINITION, calls, lambda arn: history) == []
    assert ref.tasks_not_called(DEFINITION, calls) == []
    assert ref.tasks_not_called(DEFINITION, calls[:1]) == ["Wait"]


def test_the_check_reports_literal_fields_mismatches_and_calls_aws_would_not_make():
    history = _history(("Work", {"inner": {"role": "role-a"}}), ("Wait", {}))
    literal = [_call("Work", {"RoleArn.$": "$.role", "Name": "run-1", "Static": 1})]
    [problem] = ref.check_task_parameters(DEFINITION, literal, lambda arn: history)
    assert "Work (run-1, attempt 1): unresolved field(s) /RoleArn.$" in problem
    wrong = [_call("Work", {"RoleArn": "role-x", "Name": "run-1", "Static": 1})]
    [problem] = ref.check_task_parameters(DEFINITION, wrong, lambda arn: history)
    assert "/RoleArn: expected 'role-a', got 'role-x'" in problem
    missing = _history(("Work", {"inner": {}}))
    [problem] = ref.check_task_parameters(DEFINITION, wrong, lambda arn: missing)
    assert "would not have called the task" in problem
    no_token = [_call("Wait", {"Payload": {"token": None}})]
    assert "without a task token" in ref.check_task_parameters(DEFINITION, no_token, lambda arn: history)[0]
    unvisited = [_call("Wait", {"Payload": {"token": "t"}}, token="t")]
    assert "no TaskStateEntered" in ref.check_task_parameters(DEFINITION, unvisited, lambda arn: _history())[0]
