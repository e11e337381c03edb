"""The definition's control flow, tested by running it: the real
statemachine/pipeline.asl.json in moto's interpreter, each Task answered by a
stand-in (standins.py). Every path must end the way a user expects: the QA
endpoint gone, a notification naming the failed state and cause, production
as it was, and a Failed execution with a named error."""
from __future__ import annotations

import json
import time

import pytest

import standins
from localmode import faults, sfn
from standins import PRODUCTION, World, lambda_failure

DEFINITION = json.loads(standins.DEFINITION.read_text(encoding="utf-8"))
STATES = DEFINITION["States"]
PREVIOUS_CONFIG = "previous-run-config"


def catching_task_states() -> list[str]:
    """Task states whose Catch sends failures down the failure path (Record<State>Failure)."""
    return [
        name
        for name, state in STATES.items()
        if state["Type"] == "Task" and any(c["Next"] == f"Record{name}Failure" for c in state.get("Catch", []))
    ]


def reachable_from(start: str) -> set[str]:
    """States reachable from `start` through Next/Default/Choices (the success edges, not Catch)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = STATES[name]
        todo += [n for n in [state.get("Next"), state.get("Default")] if n]
        todo += [choice["Next"] for choice in state.get("Choices", [])]
    return seen


def world_with_production(**kwargs) -> World:
    world = World(**kwargs)
    world.endpoints[PRODUCTION] = standins.Endpoint(PREVIOUS_CONFIG, "InService")
    return world


def qa_endpoint_of(outcome) -> str:
    return f"{outcome.output['run']['run_id']}-qa" if outcome.output else "run-0001-qa"


def assert_failed_cleanly(outcome, state: str, error: str, cause: str | None = None) -> None:
    """The failure contract: Failed with the error, QA endpoint gone, one notification naming state and error."""
    assert outcome.status == "FAILED", outcome.states
    assert outcome.error == error
    if cause is not None:
        assert outcome.cause == cause
    assert "run-0001-qa" not in outcome.world.endpoints
    assert len(outcome.calls("CleanupAfterFailure")) == 1
    [mail] = outcome.notifications()
    assert mail["Subject"] == f"Pipeline run run-0001 failed in {state}"
    assert f"failed in state {state} with {error}" in mail["Message"]
    assert outcome.states[-1] == "Failed"


def test_happy_path_creates_production_and_removes_qa(sfn_local):
    outcome = standins.run(World())

    assert outcome.status == "SUCCEEDED"
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint("run-0001-config", "InService")}
    assert outcome.output["production"] == {"endpoint_name": PRODUCTION, "action": "created"}
    assert outcome.output["approval"] == {"decision": "approved", "by": "tester"}
    assert outcome.output["run"]["run_prefix"] == "s3://artifacts/runs/run-0001/"
    # The Wait/Describe loops went round until the endpoints reported InService.
    assert len(outcome.calls("DescribeQAEndpoint")) == 2
    assert len(outcome.calls("DescribeProduction")) == 2
    [mail] = outcome.notifications()
    assert mail["Subject"] == "Pipeline run run-0001 deployed"
    assert PRODUCTION in mail["Message"] and "0.97" in mail["Message"]
    assert not outcome.calls("CleanupAfterFailure")


def test_execution_start_time_is_an_iso_string(sfn_local):
    outcome = standins.run(World())
    started = outcome.output["run"]["started_at"]
    assert isinstance(started, str) and started.endswith("Z") and "T" in started


def test_update_of_existing_production_switches_its_config(sfn_local):
    outcome = standins.run(world_with_production())

    assert outcome.status == "SUCCEEDED"
    assert outcome.output["production"]["action"] == "updated"
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint("run-0001-config", "InService")}


def test_quality_below_threshold_fails_before_approval(sfn_local):
    outcome = standins.run(world_with_production(accuracy=0.80))

    assert_failed_cleanly(outcome, "RunQATests", "QualityBelowThreshold")
    assert json.loads(outcome.cause)["errorMessage"] == "accuracy 0.8 is below the threshold 0.95"
    assert not outcome.calls("RequestApproval") and not outcome.calls("DeployProduction")
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService")}


def test_rejection_fails_with_the_reviewers_reason(sfn_local):
    outcome = standins.run(world_with_production(approval="reject"))

    assert_failed_cleanly(outcome, "RequestApproval", "ApprovalRejected", cause="metrics look off")
    assert not outcome.calls("DeployProduction")
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService")}


def test_approval_window_running_out_is_a_timeout(sfn_local):
    started = time.monotonic()
    outcome = standins.run(world_with_production(approval="none", approval_timeout_seconds=1))

    assert_failed_cleanly(outcome, "RequestApproval", "States.Timeout")
    assert time.monotonic() - started >= 1.0
    assert not outcome.calls("DeployProduction")
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService")}


def test_every_failing_state_is_covered():
    # Guards the parametrization below: a new Task state with a Catch gets tested automatically.
    assert {"PreprocessWithGlue", "TrainXGBoost", "RunQATests", "RequestApproval", "DeployProduction"} <= set(
        catching_task_states()
    )


@pytest.mark.parametrize("state", catching_task_states())
def test_failure_in_each_task_state(sfn_local, state):
    # The failure the service itself would report (the same one LOCAL_FAULTS injects in local runs).
    failure = faults.failure_for(state, STATES[state]["Resource"])
    outcome = standins.run(world_with_production(failures={state: failure}))

    assert_failed_cleanly(outcome, state, failure.error, cause=failure.cause)
    assert outcome.output is None
    deploy_ran = bool(outcome.calls("DeployProduction")) and state != "DeployProduction"
    assert deploy_ran == (state in reachable_from("DeployProduction") - {"DeployProduction"})
    if not deploy_ran:
        # Nothing after a failure before the production step may touch production.
        assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService")}
    # Service errors the definition treats as transient were retried (as many times as its Retry says) first.
    retriers = [r for r in STATES[state].get("Retry", []) if failure.error in r["ErrorEquals"]]
    expected_attempts = 1 + sum(r.get("MaxAttempts", 3) for r in retriers)
    assert len(outcome.calls(state)) == expected_attempts


def test_production_rollback_is_reported_as_a_failure(sfn_local):
    outcome = standins.run(world_with_production(rollback=True))

    assert_failed_cleanly(outcome, "DeployProduction", "ProductionRolledBack")
    assert "previous model is still serving" in outcome.cause
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService")}


def test_production_endpoint_failing_is_reported(sfn_local):
    outcome = standins.run(World(production_end_status="Failed"))

    assert_failed_cleanly(outcome, "DeployProduction", "ProductionEndpointFailed")
    assert outcome.cause == "The production endpoint reached status Failed."


def test_transient_lambda_service_error_is_retried(sfn_local):
    transient = sfn.TaskFailed("Lambda.ServiceException", "Lambda was unable to respond (Service: AWSLambda; Status Code: 500)")
    outcome = standins.run(World(transient={"PrepareTraining": [transient, transient]}))

    assert outcome.status == "SUCCEEDED"
    assert len(outcome.calls("PrepareTraining")) == 3


def test_failing_cleanup_still_notifies_with_the_original_error(sfn_local):
    outcome = standins.run(
        World(accuracy=0.5, failures={"CleanupAfterFailure": lambda_failure("ClientError", "AccessDenied")})
    )

    assert outcome.status == "FAILED"
    assert outcome.error == "QualityBelowThreshold"
    [mail] = outcome.notifications()
    assert "failed in state RunQATests with QualityBelowThreshold" in mail["Message"]


def test_failing_failure_notification_still_fails_the_execution_with_the_original_error(sfn_local):
    outcome = standins.run(
        World(accuracy=0.5, failures={"NotifyFailure": sfn.TaskFailed("SNS.AuthorizationErrorException", "denied")})
    )

    assert outcome.status == "FAILED"
    assert outcome.error == "QualityBelowThreshold"
    assert "run-0001-qa" not in outcome.world.endpoints


@pytest.mark.parametrize("execution_input", [{}, {"input_uri": 42}])
def test_input_without_an_s3_uri_fails_before_anything_runs(sfn_local, execution_input):
    outcome = standins.run(World(), execution_input=execution_input)

    assert outcome.status == "FAILED"
    assert outcome.error == "InvalidInput"
    assert outcome.dispatcher.calls == []
    assert outcome.notifications() == []
