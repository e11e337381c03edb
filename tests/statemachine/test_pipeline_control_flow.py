"""The definition's control flow, tested by running it: the real
statemachine/pipeline.asl.json (and cleanup.asl.json) in moto's interpreter,
each Task answered by a stand-in (standins.py; the SageMaker-facing Lambdas
are the real functions' code against a modelled SageMaker). Every path must
end the way a user expects: the QA endpoint gone, a notification saying what
happened and what to do, production as it was, and a Failed execution with
an error under the pipeline's own prefix."""
from __future__ import annotations

import json
import time

import pytest

import standins
from localmode import faults, sfn
from standins import PRODUCTION, World, client_error, lambda_failure

DEFINITION = json.loads(standins.DEFINITION.read_text(encoding="utf-8"))
STATES = DEFINITION["States"]
PREVIOUS_CONFIG = "previous-run-config"
QA = "run-0001-qa"


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


def the_mail(outcome) -> dict:
    [mail] = outcome.notifications()
    return mail


def assert_failed_cleanly(outcome, state: str, error: str, cause: str | None = None) -> str:
    """The failure contract: Failed with the pipeline's name for the error, QA endpoint gone,
    one notification naming the state and saying what to do. Returns the mail's text."""
    assert outcome.status == "FAILED", outcome.states
    assert outcome.error == f"Pipeline.{error}"
    if cause is not None:
        assert outcome.cause == cause
    # Gone now, or once SageMaker let the cleanup state machine delete it.
    assert QA not in outcome.world.endpoints
    assert all(c["status"] == "SUCCEEDED" for c in outcome.cleanups)
    assert len(outcome.calls("CleanupAfterFailure")) == 1
    mail = the_mail(outcome)
    assert mail["Subject"] == f"Pipeline run run-0001 failed in {state}"
    assert mail["Message"].startswith(f"Run run-0001 failed in {state}.")
    assert f"Error: {error}" in mail["Message"]
    assert "What to do: " in mail["Message"]
    assert outcome.states[-1] == "Failed"
    return mail["Message"]


def test_happy_path_creates_production_and_removes_qa_before_the_approval_wait(sfn_local):
    world = World()
    seen_at_approval = {}
    ask = world.fn_request_approval

    def fn_request_approval(payload, request):
        seen_at_approval.update(world.endpoints)
        return ask(payload, request)

    world.fn_request_approval = fn_request_approval
    outcome = standins.run(world)

    assert outcome.status == "SUCCEEDED"
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint("run-0001-config", "InService")}
    # Nothing but production runs (or costs) while a person decides.
    assert seen_at_approval == {}
    assert outcome.states.index("DeleteQAEndpoint") < outcome.states.index("RequestApproval")
    assert outcome.output["production"]["endpoint_name"] == PRODUCTION
    assert outcome.output["production"]["action"] == "created"
    assert outcome.output["approval"] == {"decision": "approved", "by": "tester"}
    assert outcome.output["training"]["model_artifacts"] == "s3://artifacts/runs/run-0001/training/run-0001-train/output/model.tar.gz"
    assert outcome.world.training_jobs["run-0001-train"].status == "Completed"
    # Training is one createTrainingJob.sync; the endpoint wait loops went round until each was done.
    assert len(outcome.calls("TrainXGBoost")) == 1
    assert not outcome.calls("RecoverTraining") and not outcome.calls("CheckTraining")
    assert len(outcome.calls("CheckQAEndpoint")) == 2
    assert len(outcome.calls("CheckProduction")) == 2
    mail = the_mail(outcome)
    assert mail["Subject"] == "Pipeline deployed car to production"
    assert PRODUCTION in mail["Message"] and "QA accuracy 0.97 (threshold 0.95)" in mail["Message"]
    # What DeployProduction said of data capture reaches the email through CheckProduction.
    assert mail["Message"].endswith("Data capture: on: requests and responses are captured.")
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

    text = assert_failed_cleanly(outcome, "RunQATests", "QualityBelowThreshold")
    assert json.loads(outcome.cause)["errorMessage"] == "accuracy 0.8 is below the threshold 0.95"
    assert "accuracy 0.8 is below the threshold 0.95" in text
    assert not outcome.calls("RequestApproval") and not outcome.calls("DeployProduction")
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService")}


def test_rejection_fails_with_the_reviewers_reason(sfn_local):
    outcome = standins.run(world_with_production(approval="reject"))

    text = assert_failed_cleanly(outcome, "RequestApproval", "ApprovalRejected", cause="metrics look off")
    assert "The reviewer rejected the model: metrics look off." in text
    assert not outcome.calls("DeployProduction")
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService")}


def test_approval_window_running_out_is_explained_in_words(sfn_local):
    started = time.monotonic()
    outcome = standins.run(world_with_production(approval="none", approval_timeout_seconds=1))

    # A task-token timeout's Cause is empty: the mail must still say what happened.
    text = assert_failed_cleanly(outcome, "RequestApproval", "States.Timeout")
    assert time.monotonic() - started >= 1.0
    assert "Nobody approved or rejected the model within the approval window (1 second)" in text
    assert "with States.Timeout: ." not in text and ": ." not in text
    assert not outcome.calls("DeployProduction")
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService")}


def test_every_failing_state_is_covered():
    # Guards the parametrization below: a new Task state with a Catch gets tested automatically.
    assert {"PreprocessWithGlue", "TrainXGBoost", "CheckTraining", "CreateQAEndpoint", "CheckQAEndpoint", "RunQATests",
            "DeleteQAEndpoint", "RegisterModel", "RequestApproval", "RecordApproval", "DeployProduction",
            "CheckProduction", "PrepareRollback", "ConfirmRollback"} <= set(catching_task_states())


def the_version(outcome) -> dict:
    [package] = outcome.world.packages.values()
    return package


def test_an_approved_run_deploys_its_registered_version_once_approved(sfn_local):
    outcome = standins.run(world_with_production())

    assert outcome.status == "SUCCEEDED"
    package = the_version(outcome)
    assert package["status"] == "Approved" and package["description"].startswith("Approved on the approval page")
    assert outcome.states.index("RegisterModel") < outcome.states.index("RequestApproval") \
        < outcome.states.index("RecordApproval") < outcome.states.index("DeployProduction")
    # What DeployProduction was told to deploy is the registered version, not a run's config.
    [deploy] = outcome.calls("DeployProduction")
    assert deploy.request.parameters["Payload"]["model_package_arn"] == outcome.output["registry"]["model_package_arn"]
    # The lineage gets the execution input (the uploaded object's version comes from there).
    assert package["execution_input"] == {"input_uri": "s3://input/uploads/car.data"}
    assert "as version 1 of model group car-production" in the_mail(outcome)["Message"]


def test_a_rejected_run_leaves_its_version_rejected_with_the_reason(sfn_local):
    outcome = standins.run(world_with_production(approval="reject"))

    assert outcome.error == "Pipeline.ApprovalRejected"
    package = the_version(outcome)
    assert (package["status"], package["description"]) == ("Rejected", "Rejected by the reviewer: metrics look off")


def test_an_approval_window_that_ran_out_rejects_the_version(sfn_local):
    outcome = standins.run(world_with_production(approval="none", approval_timeout_seconds=1))

    assert outcome.error == "Pipeline.States.Timeout"
    package = the_version(outcome)
    assert package["status"] == "Rejected"
    assert package["description"].startswith("No decision within the approval window (1 seconds)")


def test_a_failure_after_approval_leaves_the_version_approved(sfn_local):
    outcome = standins.run(world_with_production(rollback=True))

    assert outcome.error == "Pipeline.ProductionRolledBack"
    assert the_version(outcome)["status"] == "Approved"


def test_a_rollback_redeploys_an_approved_version_after_its_own_confirmation(sfn_local):
    outcome = standins.run(world_with_approved_version(), ROLLBACK_INPUT)

    assert outcome.status == "SUCCEEDED", outcome.states
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService")}
    # The rollback's dataset is resolved first (DefaultDataset here): it names the endpoint PrepareRollback checks.
    assert outcome.states[:5] == ["ValidateInput", "InitializeRollback", "ResolveRollbackDataset", "PrepareRollback",
                                  "RollbackTarget"]
    [prepare] = outcome.calls("PrepareRollback")
    assert prepare.request.parameters["Payload"]["dataset"]["production_endpoint"] == PRODUCTION
    assert "ConfirmRollback" in outcome.states and "PreprocessWithGlue" not in outcome.states
    [confirm] = outcome.calls("ConfirmRollback")
    assert confirm.request.parameters["Payload"]["kind"] == "rollback"
    # The same guardrails: the deployment waits for the endpoint like any other.
    assert outcome.calls("DeployProduction") and outcome.calls("CheckProduction")
    mail = the_mail(outcome)
    assert mail["Subject"] == f"{PRODUCTION} rolled back to version 1"
    assert "Data capture: on: requests and responses are captured." in mail["Message"]
    # A rollback's version is not the run's own: nothing changed its status.
    assert outcome.world.packages[APPROVED_V1]["status"] == "Approved"


def test_a_rejected_rollback_confirmation_leaves_production_as_it_is(sfn_local):
    outcome = standins.run(world_with_approved_version(approval="reject"), ROLLBACK_INPUT)

    assert_failed_cleanly(outcome, "ConfirmRollback", "ApprovalRejected", cause="metrics look off")
    assert not outcome.calls("DeployProduction")
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint("newer-run-config", "InService")}
    assert outcome.world.packages[APPROVED_V1]["status"] == "Approved"


def test_a_rollback_to_a_version_that_is_not_approved_is_refused_before_anyone_is_asked(sfn_local):
    world = world_with_approved_version()
    world.packages[APPROVED_V1]["status"] = "Rejected"
    outcome = standins.run(world, ROLLBACK_INPUT)

    assert_failed_cleanly(outcome, "PrepareRollback", "ModelPackageNotApproved")
    assert not outcome.calls("ConfirmRollback") and not outcome.calls("DeployProduction")


def test_a_rollback_of_an_unknown_dataset_is_refused_before_anyone_is_asked(sfn_local):
    """ResolveRollbackDataset checks the named dataset's spec like an upload's; its Catch shares PrepareRollback's
    recorder, so the mail names the rollback's preparation."""
    outcome = standins.run(world_with_approved_version(),
                           {"rollback": {"model_package_version": 1, "dataset": "penguins"}})

    text = assert_failed_cleanly(outcome, "PrepareRollback", "UnknownDataset")
    assert "penguins" in text
    assert not outcome.calls("PrepareRollback") and not outcome.calls("ConfirmRollback")
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint("newer-run-config", "InService")}


ROLLBACK_ONLY = reachable_from("InitializeRollback") - reachable_from("Initialize")
APPROVED_V1 = "arn:aws:sagemaker:us-east-1:123456789012:model-package/car-production/1"


def world_with_approved_version(**kwargs) -> World:
    """Production serves a newer model; version 1 (PREVIOUS_CONFIG's) is approved and can be rolled back to."""
    world = World(**kwargs)
    world.endpoints[PRODUCTION] = standins.Endpoint("newer-run-config", "InService")
    world.packages[APPROVED_V1] = {"version": 1, "status": "Approved", "description": "Approved on the page",
                                   "run_id": "previous-run", "config": PREVIOUS_CONFIG}
    return world


ROLLBACK_INPUT = {"rollback": {"model_package_version": 1}}


# States the run reaches only after TrainXGBoost's answer was lost (RecoverTraining found the job).
AFTER_A_LOST_ANSWER = reachable_from("RecoverTraining") - reachable_from("TrainXGBoost")


@pytest.mark.parametrize("state", catching_task_states())
def test_failure_in_each_task_state(sfn_local, state):
    # The failure the service itself would report (the same one LOCAL_FAULTS injects in local runs).
    failure = faults.failure_for(state, STATES[state]["Resource"])
    if state in ROLLBACK_ONLY:
        world = world_with_approved_version(failures={state: failure})
        outcome = standins.run(world, ROLLBACK_INPUT)
        assert_failed_cleanly(outcome, state, failure.error, cause=failure.cause)
        assert not outcome.calls("DeployProduction")
        assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint("newer-run-config", "InService")}
        return
    lost = {"CreateTrainingJob"} if state in AFTER_A_LOST_ANSWER else set()
    outcome = standins.run(world_with_production(failures={state: failure}, lost_responses=lost))

    assert_failed_cleanly(outcome, state, failure.error, cause=failure.cause)
    assert not outcome.error.startswith("States.")
    assert outcome.output is None
    deploy_ran = bool(outcome.calls("DeployProduction")) and state != "DeployProduction"
    assert deploy_ran == (state in reachable_from("DeployProduction") - {"DeployProduction"})
    if not deploy_ran:
        # Nothing after a failure before the production step may touch production.
        assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService")}
    # Only errors the definition treats as transient were retried (as many times as its Retry says).
    retriers = [r for r in STATES[state].get("Retry", []) if failure.error in r["ErrorEquals"]]
    expected_attempts = 1 + sum(r.get("MaxAttempts", 3) for r in retriers)
    assert len(outcome.calls(state)) == expected_attempts


def test_a_caught_states_error_ends_the_run_under_the_pipelines_prefix(sfn_local):
    """A Fail state may not raise a `States.*` name (custom error names must not start with it):
    moto's Fail enforces that, as the States Language says. The pipeline prefixes its own.
    https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html ("Error names")."""
    glue_failure = faults.failure_for("PreprocessWithGlue", STATES["PreprocessWithGlue"]["Resource"])
    outcome = standins.run(World(failures={"PreprocessWithGlue": glue_failure}))

    assert glue_failure.error == "States.TaskFailed"
    assert outcome.status == "FAILED"
    assert outcome.error == "Pipeline.States.TaskFailed"


def test_production_rollback_is_reported_as_a_rollback(sfn_local):
    outcome = standins.run(world_with_production(rollback=True))

    text = assert_failed_cleanly(outcome, "CheckProduction", "ProductionRolledBack")
    assert "the previous model is still serving" in text
    assert "alarm car-production-5xx" in text
    assert outcome.world.endpoints[PRODUCTION].config == PREVIOUS_CONFIG
    assert outcome.world.endpoints[PRODUCTION].status == "InService"


def test_a_newer_run_deploying_first_is_not_called_a_rollback(sfn_local):
    outcome = standins.run(world_with_production(newer_run_deploys=True))

    text = assert_failed_cleanly(outcome, "CheckProduction", "Superseded")
    assert "run run-0002" in text and "rolled back" not in text
    # Production is the newer run's business now: this run stopped waiting and left it alone.
    assert outcome.world.endpoints[PRODUCTION].config != "run-0001-config"


def test_production_endpoint_failing_is_reported(sfn_local):
    outcome = standins.run(World(production_end_status="Failed"))

    assert_failed_cleanly(outcome, "CheckProduction", "ProductionEndpointFailed")
    assert "is Failed" in json.loads(outcome.cause)["errorMessage"]


def test_a_qa_endpoint_stuck_out_of_service_ends_the_wait(sfn_local):
    outcome = standins.run(World(qa_end_status="OutOfService", polls_until_ready=0, endpoint_wait_seconds=1))

    text = assert_failed_cleanly(outcome, "CheckQAEndpoint", "WaitTimeExpired")
    assert "was still OutOfService" in text and "EndpointWaitSeconds" in text
    assert len(outcome.calls("CheckQAEndpoint")) >= 2
    assert not outcome.calls("RunQATests")


def test_a_production_update_that_never_finishes_ends_the_wait(sfn_local):
    outcome = standins.run(world_with_production(production_end_status="Updating", endpoint_wait_seconds=1))

    text = assert_failed_cleanly(outcome, "CheckProduction", "WaitTimeExpired")
    assert "was still Updating" in text
    assert "this run's update had not finished" in text


def test_a_failed_training_job_reports_its_reason(sfn_local):
    """A job that fails after it started: the .sync integration's States.TaskFailed, with the job's
    DescribeTrainingJob output as the cause; the email quotes its FailureReason and is not retried.
    .sync waits for the job to complete: https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html"""
    outcome = standins.run(World(training_end_status="Failed"))

    text = assert_failed_cleanly(outcome, "TrainXGBoost", "States.TaskFailed")
    assert "What happened: The training job did not complete: AlgorithmError: the training data has no label column" in text
    assert "/aws/sagemaker/TrainingJobs" in text
    assert len(outcome.calls("TrainXGBoost")) == 1 and not outcome.calls("RecoverTraining")
    assert not outcome.calls("CreatePipelineModel")


def test_a_job_stopped_from_outside_is_reported_as_stopped(sfn_local):
    outcome = standins.run(World(training_end_status="Stopped"))

    text = assert_failed_cleanly(outcome, "TrainXGBoost", "States.TaskFailed")
    assert "training job run-0001-train ended Stopped" in text


def test_a_job_failing_after_a_lost_answer_reports_its_reason(sfn_local):
    outcome = standins.run(World(lost_responses={"CreateTrainingJob"}, training_end_status="Failed"))

    text = assert_failed_cleanly(outcome, "CheckTraining", "TrainingJobFailed")
    assert "AlgorithmError: the training data has no label column" in text


def test_transient_lambda_service_error_is_retried(sfn_local):
    transient = sfn.TaskFailed("Lambda.ServiceException", "Lambda was unable to respond (Service: AWSLambda; Status Code: 500)")
    outcome = standins.run(World(transient={"PrepareTraining": [transient, transient]}))

    assert outcome.status == "SUCCEEDED"
    assert len(outcome.calls("PrepareTraining")) == 3


# Real error texts SageMaker sends (botocore's "An error occurred (...)" comes from them):
# throttling, https://github.com/aws/sagemaker-python-sdk/issues/645 ("Rate exceeded");
# access denied, https://github.com/aws-samples/aws-modern-application-workshop/issues/253;
# endpoint quota, https://github.com/awsdocs/amazon-sagemaker-developer-guide/issues/70.
THROTTLED = client_error("ThrottlingException", "Rate exceeded", "CreateTrainingJob")
# What the state machine's role is told when it may not create the job (the principal is the role Step Functions assumes).
ACCESS_DENIED = client_error(
    "AccessDeniedException",
    "User: arn:aws:sts::123456789012:assumed-role/car-StateMachineRole-1A2B3C4D5E6F/StatesExecutionSession is not "
    "authorized to perform: sagemaker:CreateTrainingJob on resource: arn:aws:sagemaker:us-east-1:123456789012:"
    "training-job/run-0001-train because no identity-based policy allows the sagemaker:CreateTrainingJob action",
    "CreateTrainingJob")
# https://github.com/gabehollombe-aws/jupyter-notebooks/issues/1
TRAINING_QUOTA = client_error(
    "ResourceLimitExceeded",
    "The account-level service limit 'ml.p3.2xlarge for training job usage' is 0 Instances, with current utilization of 0 "
    "Instances and a request delta of 1 Instances. Please contact AWS support to request an increase for this limit.",
    "CreateTrainingJob")
ENDPOINT_QUOTA = client_error(
    "ResourceLimitExceeded",
    "The account-level service limit 'ml.m4.xlarge for endpoint usage' is 0 Instances, with current utilization of 0 "
    "Instances and a request delta of 1 Instances. Please contact AWS support to request an increase for this limit.",
    "CreateEndpoint")
SAGEMAKER_ERROR = "SageMaker.AmazonSageMakerException"


def test_throttling_is_retried_and_the_run_goes_on(sfn_local):
    # createTrainingJob.sync reports throttling as SageMaker.AmazonSageMakerException, ThrottlingException only in
    # the Cause, which no Retry can match on (https://github.com/aws/aws-step-functions-data-science-sdk-python/issues/191):
    # RecoverTraining reads the Cause and sends the run back to TrainXGBoost.
    outcome = standins.run(World(sagemaker_errors={"CreateTrainingJob": [THROTTLED, THROTTLED]}))

    assert outcome.status == "SUCCEEDED"
    assert [c.error for c in outcome.calls("TrainXGBoost")] == [SAGEMAKER_ERROR, SAGEMAKER_ERROR, None]
    assert len(outcome.calls("RecoverTraining")) == 2
    assert list(outcome.world.training_jobs) == ["run-0001-train"]
    # Each retry waited (the stand-in draws no jitter, so 0 s here) before TrainXGBoost ran again.
    assert outcome.states.count("WaitBeforeRetryingTraining") == 2


def test_throttling_that_never_ends_fails_after_the_bounded_retries(sfn_local):
    recover = standins.function_module("recover_training")
    outcome = standins.run(World(sagemaker_errors={"CreateTrainingJob": [THROTTLED] * 20}))

    text = assert_failed_cleanly(outcome, "TrainXGBoost", "ServiceThrottled")
    assert len(outcome.calls("TrainXGBoost")) == 1 + recover.MAX_RETRIES
    assert "AWS kept throttling in TrainXGBoost after the pipeline's retries" in text
    assert "Rate exceeded" in text


def test_access_denied_fails_at_once_and_names_the_permission(sfn_local):
    outcome = standins.run(World(sagemaker_errors={"CreateTrainingJob": [ACCESS_DENIED] * 10}))

    text = assert_failed_cleanly(outcome, "TrainXGBoost", "AccessDenied")
    assert len(outcome.calls("TrainXGBoost")) == 1 and len(outcome.calls("RecoverTraining")) == 1
    assert "may not call sagemaker:CreateTrainingJob" in text and "car-StateMachineRole-1A2B3C4D5E6F" in text
    assert "Grant sagemaker:CreateTrainingJob" in text


def test_a_training_quota_error_fails_at_once_and_names_quota_and_region(sfn_local):
    outcome = standins.run(World(sagemaker_errors={"CreateTrainingJob": [TRAINING_QUOTA] * 10}))

    text = assert_failed_cleanly(outcome, "TrainXGBoost", "QuotaExceeded")
    assert len(outcome.calls("TrainXGBoost")) == 1
    assert "the account quota 'ml.p3.2xlarge for training job usage' in us-east-1 is 0 Instances" in text
    assert "Request an increase of 'ml.p3.2xlarge for training job usage' for us-east-1" in text
    assert "Service Quotas" in text and "TrainingInstanceType" in text


def test_a_quota_error_fails_at_once_and_names_quota_and_region(sfn_local):
    outcome = standins.run(World(sagemaker_errors={"CreateEndpoint": [ENDPOINT_QUOTA] * 10}))

    text = assert_failed_cleanly(outcome, "CreateQAEndpoint", "QuotaExceeded")
    assert len(outcome.calls("CreateQAEndpoint")) == 1
    assert "'ml.m4.xlarge for endpoint usage'" in text and "us-east-1" in text and "Service Quotas" in text


def test_a_training_job_created_before_its_response_was_lost_is_not_created_twice(sfn_local):
    """CreateTrainingJob made the job but its answer was lost (a 500): a retried CreateTrainingJob would fail
    on the job's own name, so the run waits for the job it has instead."""
    # The job answers InProgress to RecoverTraining's look and the first poll, then Completed.
    outcome = standins.run(World(lost_responses={"CreateTrainingJob"}, polls_until_ready=2))

    assert outcome.status == "SUCCEEDED"
    assert [c.error for c in outcome.calls("TrainXGBoost")] == [SAGEMAKER_ERROR]
    assert list(outcome.world.training_jobs) == ["run-0001-train"]
    assert len(outcome.calls("CheckTraining")) == 2
    assert outcome.output["training"]["model_artifacts"] == (
        "s3://artifacts/runs/run-0001/training/run-0001-train/output/model.tar.gz")
    assert outcome.world.endpoints[PRODUCTION].config == "run-0001-config"


def test_a_retry_that_meets_the_job_its_lost_answer_made_waits_for_it(sfn_local):
    """Throttled first, then the retried CreateTrainingJob's answer is lost: the next attempt would meet
    ResourceInUse on the run's own job name; the run finds the job and waits for it instead."""
    outcome = standins.run(World(sagemaker_errors={"CreateTrainingJob": [THROTTLED]}, lost_responses={"CreateTrainingJob"}))

    assert outcome.status == "SUCCEEDED"
    assert [c.error for c in outcome.calls("TrainXGBoost")] == [SAGEMAKER_ERROR, SAGEMAKER_ERROR]
    assert list(outcome.world.training_jobs) == ["run-0001-train"]
    assert outcome.calls("CheckTraining")


def test_a_crashing_recovery_is_reported_as_a_training_failure(sfn_local):
    crash = lambda_failure("Lambda.Unknown", "Task timed out after 3.00 seconds")
    outcome = standins.run(World(sagemaker_errors={"CreateTrainingJob": [THROTTLED]}, failures={"RecoverTraining": crash}))

    text = assert_failed_cleanly(outcome, "TrainXGBoost", "Lambda.Unknown")
    assert "The function behind TrainXGBoost crashed or ran out of time" in text


def test_a_qa_endpoint_still_creating_at_failure_is_handed_to_the_cleanup_workflow(sfn_local):
    # The polls fail (through every retry) while SageMaker is still creating the endpoint.
    unavailable = lambda_failure("ServiceUnavailable", "An error occurred (ServiceUnavailable) when calling the "
                                 "DescribeEndpoint operation (reached max retries: 3): Service unavailable")
    outcome = standins.run(World(failures={"CheckQAEndpoint": unavailable}))

    text = assert_failed_cleanly(outcome, "CheckQAEndpoint", "ServiceUnavailable")
    [handed] = outcome.world.handed_over
    assert handed["input"] == {"run_id": "run-0001", "names": outcome.world.handed_over[0]["input"]["names"]}
    assert handed["input"]["names"]["qa_endpoint"] == QA
    assert "QA endpoint run-0001-qa: still being created; a cleanup workflow deletes it" in text
    # The cleanup state machine deleted it once it was out of Creating.
    [cleanup] = outcome.cleanups
    assert cleanup["status"] == "SUCCEEDED"


def test_failing_cleanup_still_notifies_with_the_original_error(sfn_local):
    outcome = standins.run(
        World(accuracy=0.5, failures={"CleanupAfterFailure": lambda_failure("AccessDenied", "no DescribeEndpoint")})
    )

    assert outcome.status == "FAILED"
    assert outcome.error == "Pipeline.QualityBelowThreshold"
    mail = the_mail(outcome)
    assert "failed in state RunQATests with error QualityBelowThreshold" in mail["Message"]
    assert "Its cleanup failed too (AccessDenied)" in mail["Message"]


def test_failing_failure_notification_still_fails_the_execution_with_the_original_error(sfn_local):
    outcome = standins.run(
        World(accuracy=0.5, failures={"NotifyFailure": sfn.TaskFailed("SNS.AuthorizationErrorException", "denied")})
    )

    assert outcome.status == "FAILED"
    assert outcome.error == "Pipeline.QualityBelowThreshold"
    assert QA not in outcome.world.endpoints


@pytest.mark.parametrize("execution_input", [{}, {"input_uri": 42}, {"input_uri": "s3://input/uploads/x.csv", "dataset": 7}])
def test_input_without_an_s3_uri_fails_before_anything_runs(sfn_local, execution_input):
    outcome = standins.run(World(), execution_input=execution_input)

    assert outcome.status == "FAILED"
    assert outcome.error == "Pipeline.InvalidInput"
    assert outcome.dispatcher.calls == []
    assert outcome.notifications() == []


# ---------------------------------------------------------------- issue 11: one dataset per run

def test_a_run_of_another_dataset_deploys_to_its_own_endpoint_and_leaves_car_alone(sfn_local):
    world = world_with_production(dataset_specs={"car": {"name": "car"}, "penguins": {"name": "penguins"}})
    outcome = standins.run(world, execution_input={"input_uri": "s3://input/uploads/penguins/p.csv", "dataset": "penguins"})

    assert outcome.status == "SUCCEEDED", outcome.states
    assert outcome.world.endpoints == {PRODUCTION: standins.Endpoint(PREVIOUS_CONFIG, "InService"),
                                       "penguins-prod": standins.Endpoint("run-0001-config", "InService")}
    [glue] = outcome.calls("PreprocessWithGlue")
    assert glue.request.parameters["Arguments"]["--spec"] == "s3://artifacts/deps/datasets/penguins.json"
    assert outcome.output["dataset"] == {"name": "penguins", "spec_uri": "s3://artifacts/deps/datasets/penguins.json",
                                         "production_endpoint": "penguins-prod"}
    assert the_mail(outcome)["Subject"] == "Pipeline deployed penguins to production"


def test_the_upload_key_names_the_dataset_when_the_input_does_not(sfn_local):
    world = World(dataset_specs={"car": {"name": "car"}, "diabetes": {"name": "diabetes"}})
    outcome = standins.run(world, execution_input={"input_uri": "s3://input/uploads/diabetes/d.csv"})
    assert outcome.status == "SUCCEEDED"
    assert outcome.output["production"]["endpoint_name"] == "diabetes-prod"


def test_an_unknown_dataset_fails_at_once_naming_it_and_where_specs_live(sfn_local):
    outcome = standins.run(World(), execution_input={"input_uri": "s3://input/uploads/wine/w.csv"})

    text = assert_failed_cleanly(outcome, "ResolveDataset", "UnknownDataset")
    # Nothing was computed: no Glue job, no training job, no endpoint.
    assert not outcome.calls("PreprocessWithGlue") and not outcome.world.training_jobs
    assert outcome.world.endpoints == {}
    assert "dataset 'wine' has no spec at s3://artifacts/deps/datasets/wine.json" in text
    assert "datasets there now: car" in text and "make deploy" in text
