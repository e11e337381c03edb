"""localmode.lambdas: handlers loaded by path, run with their own environment,
failing the way lambda:invoke reports failures."""
from __future__ import annotations

import json
import os
import textwrap
import time

import pytest

from localmode import lambdas, sfn


@pytest.fixture
def functions_dir(tmp_path):
    for name, body in {
        "alpha": """
            import os
            SEEN_AT_IMPORT = os.environ.get("SETTING")
            def lambda_handler(event, context):
                return {"setting": os.environ.get("SETTING"), "at_import": SEEN_AT_IMPORT,
                        "event": event, "function": context.function_name,
                        "remaining_ms": context.get_remaining_time_in_millis()}
        """,
        "beta": """
            class QualityBelowThreshold(Exception):
                pass
            def lambda_handler(event, context):
                raise QualityBelowThreshold(f"accuracy {event['accuracy']} is below 0.95")
        """,
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return tmp_path


def test_each_function_gets_its_own_environment(functions_dir, monkeypatch):
    monkeypatch.delenv("SETTING", raising=False)
    local = lambdas.LocalLambdas(region="us-east-1", functions_dir=functions_dir,
                                 environments={"alpha": {"SETTING": "a"}}, timeouts={"alpha": 30})

    result = local.invoke("alpha", {"x": 1})

    assert result["setting"] == result["at_import"] == "a"
    assert result["event"] == {"x": 1} and result["function"] == "alpha"
    assert 0 < result["remaining_ms"] <= 30_000
    assert "SETTING" not in os.environ  # restored after the call
    assert local.available() == ["alpha", "beta"]


def test_a_functions_environment_is_invisible_to_other_threads(functions_dir, monkeypatch):
    """While a function runs, another thread (the run's own polling, a training job, a server) sees the process
    environment unchanged and can list it: the functions' variables coming and going once made such a thread's
    boto3 client creation fail with KeyError (urllib's proxy lookup lists os.environ, then reads each name)."""
    import sys
    import threading
    import types
    import urllib.request

    monkeypatch.delenv("SETTING", raising=False)
    probe = types.SimpleNamespace(inside=threading.Event(), outside_done=threading.Event())
    monkeypatch.setitem(sys.modules, "environment_probe", probe)
    (functions_dir / "gamma").mkdir()
    (functions_dir / "gamma" / "app.py").write_text(textwrap.dedent("""
        import os
        import environment_probe
        def lambda_handler(event, context):
            environment_probe.inside.set()
            environment_probe.outside_done.wait(10)
            return {"setting": os.environ.get("SETTING"), "listed": dict(os.environ).get("SETTING")}
    """), encoding="utf-8")
    local = lambdas.LocalLambdas(region="us-east-1", functions_dir=functions_dir, environments={"gamma": {"SETTING": "g"}})
    seen = {}
    worker = threading.Thread(target=lambda: seen.update(local.invoke("gamma", {})))
    worker.start()
    try:
        assert probe.inside.wait(10)
        assert "SETTING" not in os.environ and "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
        urllib.request.getproxies()
    finally:
        probe.outside_done.set()
        worker.join(10)
    assert seen == {"setting": "g", "listed": "g"}


def test_listing_the_environment_while_functions_come_and_go_never_fails(functions_dir):
    import threading
    import urllib.request

    local = lambdas.LocalLambdas(region="us-east-1", functions_dir=functions_dir,
                                 environments={"alpha": {f"SETTING_{i}": str(i) for i in range(50)}})
    stop, failures = threading.Event(), []

    def list_environment():
        while not stop.is_set():
            try:
                urllib.request.getproxies()  # what every new boto3 client does
                dict(os.environ)
            except Exception as error:  # noqa: BLE001 - any failure is the finding
                failures.append(repr(error))
                return

    readers = [threading.Thread(target=list_environment) for _ in range(2)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 3  # the old code failed within a second here
    try:
        while time.monotonic() < deadline and not failures:
            local.invoke("alpha", {})
    finally:
        stop.set()
        for reader in readers:
            reader.join(10)
    assert failures == []


def test_handlers_with_the_same_file_name_do_not_collide(functions_dir):
    local = lambdas.LocalLambdas(region="us-east-1", functions_dir=functions_dir)
    assert local.module("alpha") is not local.module("beta")
    assert local.module("alpha").__name__ != local.module("beta").__name__


def test_an_exception_becomes_the_task_error_as_on_aws(functions_dir):
    local = lambdas.LocalLambdas(region="us-east-1", functions_dir=functions_dir)
    handle = local.task_handler()
    request = sfn.TaskRequest(
        state_name="RunQATests", resource="arn:aws:states:::lambda:invoke",
        parameters={"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:beta", "Payload": {"accuracy": 0.5}},
        execution_arn="arn", execution_name="e", state_machine_arn="sm",
    )
    with pytest.raises(sfn.TaskFailed) as raised:
        handle(request)
    assert raised.value.error == "QualityBelowThreshold"
    cause = json.loads(raised.value.cause)
    assert cause["errorType"] == "QualityBelowThreshold"
    assert cause["errorMessage"] == "accuracy 0.5 is below 0.95"
    assert isinstance(cause["stackTrace"], list) and cause["stackTrace"]
    assert local.calls_to("beta")[0].error == "QualityBelowThreshold"


def test_a_result_is_shaped_like_lambda_invoke(functions_dir):
    local = lambdas.LocalLambdas(region="us-east-1", functions_dir=functions_dir)
    request = sfn.TaskRequest(
        state_name="S", resource="arn:aws:states:::lambda:invoke",
        parameters={"FunctionName": "alpha", "Payload": {"k": "v"}},
        execution_arn="arn", execution_name="e", state_machine_arn="sm",
    )
    result = local.task_handler()(request)
    assert result["StatusCode"] == 200 and result["ExecutedVersion"] == "$LATEST"
    assert result["Payload"]["event"] == {"k": "v"}


@pytest.mark.parametrize(
    "name, expected",
    [("arn:aws:lambda:us-east-1:123456789012:function:qa_test", "qa_test"),
     ("arn:aws:lambda:us-east-1:123456789012:function:qa_test:live", "qa_test"),
     ("qa_test", "qa_test"), ("qa_test:3", "qa_test")],
)
def test_function_names_from_arns(name, expected):
    assert lambdas.function_name_from(name) == expected


def test_substitution_names_map_to_folders():
    assert lambdas.folder_for_substitution("QATestFunctionArn") == "qa_test"
    assert lambdas.folder_for_substitution("CreateEndpointConfigFunctionArn") == "create_endpoint_config"
    assert lambdas.folder_for_substitution("ArtifactsBucketName") is None


def test_every_function_the_definition_calls_exists(repo_root):
    from localmode.stack import LocalStack

    folders = LocalStack.from_file().substitution_folders()
    template = (repo_root / "statemachine" / "pipeline.asl.json").read_text(encoding="utf-8")
    called = {name for name in sfn.substitution_names(template) if name.endswith("FunctionArn")}
    assert called == set(folders)
    assert set(folders.values()) <= set(lambdas.LocalLambdas(region="us-east-1").available())
