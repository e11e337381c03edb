"""localmode.sfn: the adapter to moto's private ASL interpreter. These tests
pin what it relies on, so a moto upgrade fails here, loudly, first."""
from __future__ import annotations

import json
import threading

import boto3
import moto
import pytest

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
        sfn._state_fail.CustomErrorName,
        sfn._Execution.get_start_execution_details,
        sfn._SfnResponse.send_task_failure,
    )
    with sfn.install():
        with sfn.install():  # re-entrant
            assert sfn._factory.state_task_service_for is not originals[0]
        assert sfn._factory.state_task_service_for is not originals[0]
    assert (
        sfn._factory.state_task_service_for,
        sfn._retrier_decl.time,
        sfn._state_fail.CustomErrorName,
        sfn._Execution.get_start_execution_details,
        sfn._SfnResponse.send_task_failure,
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


def test_a_reraised_states_error_keeps_its_name_in_the_fail_state(sfn_local):
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

    assert (description["status"], description["error"], description["cause"]) == ("FAILED", "States.TaskFailed", "job broke")


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
