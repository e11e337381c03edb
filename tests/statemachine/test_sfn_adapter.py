"""localmode.sfn: the adapter to moto's private ASL interpreter. These tests
pin what it relies on, so a moto upgrade fails here, loudly, first."""
from __future__ import annotations

import json
import re
import threading

import boto3
import moto
import pytest
from botocore.exceptions import ClientError

import asl_reference
from localmode import sfn


def machine(definition: dict, dispatcher: sfn.Dispatcher, name: str = "adapter") -> sfn.StateMachine:
    client = boto3.client("stepfunctions", region_name="us-east-1")
    return sfn.StateMachine.create(client, json.dumps(definition), {}, dispatcher, name=name)


def one_task(resource: str, **task) -> dict:
    return {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Task", "Resource": resource, "End": True, **task},
        },
    }


def run(definition: dict, dispatcher: sfn.Dispatcher, execution_input: dict | None = None) -> dict:
    m = machine(definition, dispatcher)
    try:
        arn = m.start("e1", execution_input or {})
        return m.wait(arn, timeout=30)
    finally:
        m.close()


def test_moto_is_the_pinned_version():
    assert moto.__version__ == sfn.MOTO_VERSION
    sfn.check_moto()


def test_a_different_moto_version_fails_loudly(monkeypatch):
    monkeypatch.setattr(moto, "__version__", "9.9.9")
    with pytest.raises(sfn.IncompatibleMoto, match=r"installed moto is 9\.9\.9.*Pin moto==5\.2\.5"):
        sfn.check_moto()


def test_a_moved_hook_fails_loudly(monkeypatch):
    monkeypatch.delattr(sfn._factory, "state_task_service_for")
    with pytest.raises(sfn.IncompatibleMoto, match="state_task_factory.state_task_service_for"):
        sfn.check_moto()


def test_install_restores_moto_when_done():
    originals = (
        sfn._factory.state_task_service_for,
        sfn._retrier_decl.time,
        sfn._Execution.get_start_execution_details,
        sfn._SfnResponse.send_task_failure,
        sfn._Preprocessor.visitPayload_binding_value,
    )
    with sfn.install():
        with sfn.install():  # re-entrant
            assert sfn._factory.state_task_service_for is not originals[0]
        assert sfn._factory.state_task_service_for is not originals[0]
    assert (
        sfn._factory.state_task_service_for,
        sfn._retrier_decl.time,
        sfn._Execution.get_start_execution_details,
        sfn._SfnResponse.send_task_failure,
        sfn._Preprocessor.visitPayload_binding_value,
    ) == originals


def test_split_resource():
    assert sfn.split_resource("arn:aws:states:::glue:startJobRun.sync") == ("glue:startJobRun", "sync")
    assert sfn.split_resource("arn:aws:states:::lambda:invoke.waitForTaskToken") == ("lambda:invoke", "waitForTaskToken")
    assert sfn.split_resource("arn:aws:states:::aws-sdk:sagemaker:describeEndpoint") == (
        "aws-sdk:sagemaker:describeEndpoint",
        None,
    )


def test_render_definition_names_missing_substitutions():
    assert sfn.render_definition('{"a": "${X}-${Y}"}', {"X": "1", "Y": "2"}) == '{"a": "1-2"}'
    with pytest.raises(KeyError, match="Missing1, Missing2"):
        sfn.render_definition("${Missing2} ${Missing1} ${X}", {"X": "1"})


def test_handler_lookup_prefers_the_pattern_specific_registration():
    dispatcher = sfn.Dispatcher()
    plain, waiting = (lambda r: "plain"), (lambda r: "waiting")
    dispatcher.register("lambda:invoke", plain)
    dispatcher.register("arn:aws:states:::lambda:invoke.waitForTaskToken", waiting)
    assert dispatcher.handler_for("arn:aws:states:::lambda:invoke") is plain
    assert dispatcher.handler_for("arn:aws:states:::lambda:invoke.waitForTaskToken") is waiting
    assert dispatcher.handler_for("arn:aws:states:::sns:publish") is None


def test_a_task_without_handler_is_refused_before_the_run(sfn_local):
    with pytest.raises(KeyError, match=r"Work \(arn:aws:states:::sns:publish\)"):
        machine(one_task("arn:aws:states:::sns:publish"), sfn.Dispatcher())


def test_request_response_and_sync_results_flow_into_the_state(sfn_local):
    dispatcher = sfn.Dispatcher()
    seen = []

    def job(request: sfn.TaskRequest):
        seen.append(request)
        return {"JobRunState": "SUCCEEDED", "Echo": request.parameters["Arguments"]["--x"]}

    dispatcher.register("glue:startJobRun.sync", job)
    definition = one_task(
        "arn:aws:states:::glue:startJobRun.sync",
        Parameters={"JobName": "j", "Arguments": {"--x.$": "$.x"}},
        ResultSelector={"state.$": "$.JobRunState", "echo.$": "$.Echo"},
        ResultPath="$.glue",
    )
    description = run(definition, dispatcher, {"x": "hello"})

    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"]) == {"x": "hello", "glue": {"state": "SUCCEEDED", "echo": "hello"}}
    [request] = seen
    assert (request.state_name, request.integration, request.pattern) == ("Work", "glue:startJobRun", "sync")
    assert request.execution_name == "e1"


def lexer_keywords() -> list[str]:
    """Every keyword of moto's vendored ASL lexer, as a field name (`"RoleArn.$"` is one of them, as `RoleArn`)."""
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer

    quoted = {name.strip("'\"") for name in ASLLexer.literalNames if name.startswith("'\"")}
    return sorted({name[:-2] if name.endswith(".$") else name for name in quoted})


def test_every_dollar_field_is_evaluated_whatever_its_name(sfn_local):
    # AWS evaluates every field whose name ends in .$, at any depth, in Parameters and ResultSelector alike
    # (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html). moto's lexer
    # reads some field names as keywords: each of them, with a path, a context path and an intrinsic function.
    names = lexer_keywords()
    assert "RoleArn" in names and len(names) > 100
    fields = {f"{name}.$": "$.v" for name in names}
    template = {
        **fields,
        "Nested": {"Deeper": fields},
        "List": [fields, "static"],
        "Context": {f"{name}.$": "$$.Execution.Name" for name in names},
        "Intrinsic": {f"{name}.$": "States.Format('<{}>', $.v)" for name in names},
    }
    dispatcher = sfn.Dispatcher()
    dispatcher.register("lambda:invoke", lambda request: {"v": "from the result"})
    definition = {
        "StartAt": "Shape",
        "States": {
            "Shape": {"Type": "Pass", "Parameters": template, "ResultPath": "$.passed", "Next": "Work"},
            "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": template,
                     "ResultSelector": template, "ResultPath": "$.selected", "End": True},
        },
    }
    description = run(definition, dispatcher, {"v": "from the input"})

    assert description["status"] == "SUCCEEDED", description
    output = json.loads(description["output"])
    context = {"Execution": {"Name": "e1"}}
    passed = asl_reference.evaluate_payload(template, {"v": "from the input"}, context)
    assert passed["RoleArn"] == "from the input" and passed["Context"]["RoleArn"] == "e1"
    assert output["passed"] == passed
    [call] = dispatcher.calls
    assert call.request.parameters == asl_reference.evaluate_payload(template, {"v": "from the input", "passed": passed}, context)
    assert output["selected"] == asl_reference.evaluate_payload(template, {"v": "from the result"}, context)


@pytest.mark.parametrize("field, value", [("RoleArn.$", "arn:aws:iam::123456789012:role/literal"), ("Name.$", "words"), ("RoleArn.$", 5)])
def test_a_dollar_field_that_is_neither_path_nor_intrinsic_is_refused_at_creation(sfn_local, field, value):
    # AWS refuses the definition ("The value for the field 'X.$' must be a valid JSONPath or a valid intrinsic
    # function call", as quoted in aws-cloudformation/cfn-lint#4643); moto accepted it and passed it on literally.
    definition = one_task("arn:aws:states:::lambda:invoke", Parameters={"FunctionName": "f", "Payload": {field: value}})
    dispatcher = sfn.Dispatcher()
    dispatcher.register("lambda:invoke", lambda request: {})
    with pytest.raises(ClientError, match=rf"The value for the field \\*'{re.escape(field)}\\*' must be a valid JSONPath"):
        machine(definition, dispatcher)


def test_task_failed_reaches_catch_with_its_error_and_cause(sfn_local):
    dispatcher = sfn.Dispatcher()

    def fail(request):
        raise sfn.TaskFailed("QualityBelowThreshold", '{"errorMessage": "too low"}')

    dispatcher.register("lambda:invoke", fail)
    definition = one_task(
        "arn:aws:states:::lambda:invoke",
        Parameters={"FunctionName": "f", "Payload": {}},
        Catch=[{"ErrorEquals": ["QualityBelowThreshold"], "ResultPath": "$.error", "Next": "Caught"}],
    )
    definition["States"]["Work"].pop("End")
    definition["States"]["Work"]["Next"] = "Caught"
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    description = run(definition, dispatcher)

    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"])["error"] == {
        "Error": "QualityBelowThreshold",
        "Cause": '{"errorMessage": "too low"}',
    }


def test_a_fail_state_may_not_reraise_a_states_error_locally_either(sfn_local):
    """The States Language: error names other than the predefined ones "MUST NOT begin with the prefix
    'States.'" (https://states-language.net/spec.html#error-names). moto's Fail state holds to it, and
    local mode no longer relaxes it: a definition that re-raises a caught States.* name fails here as on AWS,
    not under that name."""
    dispatcher = sfn.Dispatcher()
    dispatcher.register("glue:startJobRun.sync", lambda r: (_ for _ in ()).throw(sfn.TaskFailed("States.TaskFailed", "job broke")))
    definition = {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun.sync",
                "Parameters": {"JobName": "j"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
                "End": True,
            },
            "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
        },
    }
    description = run(definition, dispatcher)

    assert (description["error"], description["status"]) == ("States.Runtime", "FAILED")
    assert "MUST NOT begin with the prefix 'States.'" in description["cause"]


def test_an_unexpected_handler_exception_is_a_runtime_error(sfn_local):
    dispatcher = sfn.Dispatcher()
    dispatcher.register("sns:publish", lambda r: 1 / 0)
    description = run(one_task("arn:aws:states:::sns:publish", Parameters={"TopicArn": "t", "Message": "m"}), dispatcher)

    assert description["status"] == "FAILED"
    assert description["error"] == "States.Runtime"
    assert "ZeroDivisionError" in description["cause"]
    assert dispatcher.calls[0].error == "States.Runtime"


def test_wait_for_task_token_ends_with_send_task_success_output(sfn_local):
    dispatcher = sfn.Dispatcher()
    client = boto3.client("stepfunctions", region_name="us-east-1")

    def ask(request):
        token = request.parameters["Payload"]["token"]
        assert token == request.task_token
        threading.Timer(0.1, lambda: client.send_task_success(taskToken=token, output='{"ok": true}')).start()
        return {"Payload": None}

    dispatcher.register("lambda:invoke.waitForTaskToken", ask)
    definition = one_task(
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
        Parameters={"FunctionName": "f", "Payload": {"token.$": "$$.Task.Token"}},
        TimeoutSeconds=10,
    )
    description = run(definition, dispatcher)

    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"]) == {"ok": True}


def test_wait_for_task_token_failure_keeps_error_and_cause(sfn_local):
    dispatcher = sfn.Dispatcher()
    client = boto3.client("stepfunctions", region_name="us-east-1")

    def ask(request):
        token = request.task_token
        threading.Timer(0.1, lambda: client.send_task_failure(taskToken=token, error="ApprovalRejected", cause="no")).start()

    dispatcher.register("lambda:invoke.waitForTaskToken", ask)
    definition = one_task(
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
        Parameters={"FunctionName": "f", "Payload": {"token.$": "$$.Task.Token"}},
        TimeoutSeconds=10,
    )
    description = run(definition, dispatcher)

    assert (description["status"], description["error"], description["cause"]) == ("FAILED", "ApprovalRejected", "no")


def test_wait_for_task_token_times_out(sfn_local):
    dispatcher = sfn.Dispatcher()
    dispatcher.register("lambda:invoke.waitForTaskToken", lambda r: None)
    definition = one_task(
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
        Parameters={"FunctionName": "f", "Payload": {"token.$": "$$.Task.Token"}},
        TimeoutSecondsPath="$.timeout",
    )
    description = run(definition, dispatcher, {"timeout": 1})

    assert (description["status"], description["error"]) == ("FAILED", "States.Timeout")


def test_retry_back_off_is_scaled_locally(sfn_local):
    # sfn_local installs with retry_time_scale=0.001: a 100 s interval must not sleep 100 s.
    import time

    attempts = []

    def flaky(request):
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise sfn.TaskFailed("SNS.InternalErrorException", "try again")
        return {"MessageId": "1"}

    dispatcher = sfn.Dispatcher()
    dispatcher.register("sns:publish", flaky)
    definition = one_task(
        "arn:aws:states:::sns:publish",
        Parameters={"TopicArn": "t", "Message": "m"},
        Retry=[{"ErrorEquals": ["SNS.InternalErrorException"], "IntervalSeconds": 100, "MaxAttempts": 3}],
    )
    description = run(definition, dispatcher)

    assert description["status"] == "SUCCEEDED"
    assert len(attempts) == 3
    assert attempts[-1] - attempts[0] < 5
