"""cleanup's decisions one by one: which names it trusts, what it refuses to
delete, how it reads SageMaker's refusals, and what the failure email says.

cleanup deletes endpoints, so its mistakes are the expensive kind: deleting
production, deleting nothing and leaving a QA endpoint billing, or calling a
race "done". Each test here drives `cleanup.cleanup` with botocore's Stubber
on a real SageMaker client (the AWS boundary) and checks the answer the state
machine and the failure email get. A Stubber with nothing queued fails any
call, so "no SageMaker call" is checked too.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from lambda_fixtures import ACCOUNT, REGION, stubbed_client
from pipeline_common.names import resource_names

PRODUCTION = "car-evaluation-prod"
CLEANUP_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:car-cleanup"
RUN_ID = "car-0123456789ab"
NOW = datetime(2025, 1, 2, tzinfo=timezone.utc)
# SageMaker's refusal to change an endpoint while it is changing (the wording deploy_production's tests use too).
IN_PROGRESS = 'Cannot update in-progress endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x-qa".'


@pytest.fixture
def cleanup(load_function):
    return load_function("cleanup")


@pytest.fixture
def sagemaker():
    with stubbed_client("sagemaker") as pair:
        yield pair


@pytest.fixture
def sfn():
    with stubbed_client("stepfunctions") as pair:
        yield pair


def endpoint(name: str, status: str) -> dict:
    return {"EndpointName": name, "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name}",
            "EndpointStatus": status, "CreationTime": NOW, "LastModifiedTime": NOW}


def training_job(name: str, status: str) -> dict:
    return {"TrainingJobName": name, "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}",
            "TrainingJobStatus": status, "SecondaryStatus": "Training", "CreationTime": NOW,
            "AlgorithmSpecification": {"TrainingInputMode": "File"}, "ModelArtifacts": {"S3ModelArtifacts": ""},
            "ResourceConfig": {"VolumeSizeInGB": 10}, "StoppingCondition": {"MaxRuntimeInSeconds": 60}}


def expect_deleted(stub, name: str) -> None:
    stub.add_response("describe_endpoint", endpoint(name, "InService"), {"EndpointName": name})
    stub.add_response("delete_endpoint", {}, {"EndpointName": name})


# ------------------------------------------------------------------ which names

def test_the_planned_names_are_used_when_the_state_has_no_run_id(cleanup, sagemaker):
    """The failure path passes the whole state: `plan.names` is what the pipeline named, and is used as it is."""
    client, stub = sagemaker
    expect_deleted(stub, "planned-qa")
    result = cleanup.cleanup(client, {"plan": {"names": {"qa_endpoint": "planned-qa"}}}, PRODUCTION)
    assert (result["qa_endpoint"], result["action"]) == ("planned-qa", "deleted")


def test_the_planned_names_win_over_names_derived_from_the_run_id(cleanup, sagemaker):
    client, stub = sagemaker
    expect_deleted(stub, "planned-qa")
    result = cleanup.cleanup(client, {"run": {"run_id": RUN_ID}, "plan": {"names": {"qa_endpoint": "planned-qa"}},
                                      "scope": "qa_endpoint"}, PRODUCTION)
    assert result["action"] == "deleted"


def test_empty_names_fall_back_to_the_names_the_run_id_gives(cleanup, sagemaker):
    """`names: {}` (nothing planned yet) must not mean "nothing to delete" when the run id is known."""
    client, stub = sagemaker
    qa = resource_names(RUN_ID, PRODUCTION)["qa_endpoint"]
    expect_deleted(stub, qa)
    result = cleanup.cleanup(client, {"run_id": RUN_ID, "names": {}, "scope": "qa_endpoint"}, PRODUCTION)
    assert (result["qa_endpoint"], result["action"]) == (qa, "deleted")


@pytest.mark.parametrize("event", [
    # An execution status change without its detail, or with a name that is not a string.
    {"detail-type": "Step Functions Execution Status Change", "source": "aws.states"},
    {"detail-type": "Step Functions Execution Status Change", "detail": "FAILED"},
    {"detail-type": "Step Functions Execution Status Change", "detail": {"name": 42}},
    # A run id that is not a string, at the top or in `run`, and names that are not a mapping.
    {"run_id": 42},
    {"run": {"run_id": 42}},
    {"run_id": None, "names": ["x-qa"]},
])
def test_an_event_without_a_usable_run_id_deletes_nothing_and_does_not_crash(cleanup, sagemaker, event):
    client, _ = sagemaker  # nothing queued: any SageMaker call would fail the test
    result = cleanup.cleanup(client, {**event, "scope": "qa_endpoint"}, PRODUCTION)
    assert result == {"qa_endpoint": None, "action": "none_named", "pending": False, "poll_seconds": 60}


@pytest.mark.parametrize("qa_endpoint", ["", 42])
def test_a_blank_or_non_string_qa_endpoint_name_is_not_looked_up(cleanup, sagemaker, qa_endpoint):
    client, _ = sagemaker
    result = cleanup.cleanup(client, {"names": {"qa_endpoint": qa_endpoint}, "scope": "qa_endpoint"}, PRODUCTION)
    assert result["action"] == "none_named"


# ------------------------------------------------------------------ never production

def test_the_production_name_the_event_carries_is_refused_too(cleanup, sagemaker):
    """A run planned under an earlier PRODUCTION_ENDPOINT_NAME carries that name: an endpoint called like it is
    production for that run, even though the function's own setting now names another."""
    client, _ = sagemaker  # refused before any SageMaker call
    names = {"qa_endpoint": "car-evaluation-old", "production_endpoint": "car-evaluation-old"}
    result = cleanup.cleanup(client, {"names": names, "scope": "qa_endpoint"}, PRODUCTION)
    assert result["action"] == "refused"


def test_derived_names_carry_production_to_the_cleanup_state_machine(cleanup, sagemaker, sfn):
    """When names come from the run id, what is handed over names production, so the guard holds on every
    later call of the cleanup state machine as well."""
    client, stub = sagemaker
    sfn_client, sfn_stub = sfn
    names = resource_names(RUN_ID, PRODUCTION)
    stub.add_response("describe_endpoint", endpoint(names["qa_endpoint"], "Creating"),
                      {"EndpointName": names["qa_endpoint"]})
    execution = CLEANUP_MACHINE.replace(":stateMachine:", ":execution:") + ":1"
    sfn_stub.add_response("start_execution", {"executionArn": execution, "startDate": NOW},
                          {"stateMachineArn": CLEANUP_MACHINE,
                           "input": json.dumps({"run_id": RUN_ID, "names": names})})
    result = cleanup.cleanup(client, {"run_id": RUN_ID, "scope": "qa_endpoint"}, PRODUCTION, sfn=sfn_client,
                             cleanup_state_machine=CLEANUP_MACHINE)
    assert names["production_endpoint"] == PRODUCTION
    assert (result["action"], result["handed_over_to"]) == ("pending", execution)


# ------------------------------------------------------------------ SageMaker's answers to the delete

def test_an_endpoint_deleted_by_someone_else_meanwhile_is_absent(cleanup, sagemaker):
    client, stub = sagemaker
    stub.add_response("describe_endpoint", endpoint("x-qa", "InService"), {"EndpointName": "x-qa"})
    stub.add_client_error("delete_endpoint", "ValidationException",
                          f'Could not find endpoint "arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/x-qa".')
    result = cleanup.cleanup(client, {"names": {"qa_endpoint": "x-qa"}, "scope": "qa_endpoint"}, PRODUCTION)
    assert result["action"] == "absent"


@pytest.mark.parametrize("message", [IN_PROGRESS, "An update of endpoint x-qa is in progress."])
def test_an_endpoint_that_started_changing_meanwhile_is_pending(cleanup, sagemaker, message):
    client, stub = sagemaker
    stub.add_response("describe_endpoint", endpoint("x-qa", "InService"), {"EndpointName": "x-qa"})
    stub.add_client_error("delete_endpoint", "ValidationException", message)
    result = cleanup.cleanup(client, {"caller": "cleanup_workflow",
                                      "input": {"names": {"qa_endpoint": "x-qa"}, "scope": "qa_endpoint"}}, PRODUCTION)
    assert (result["action"], result["pending"]) == ("pending", True)


@pytest.mark.parametrize("code, message", [("ThrottlingException", "Rate exceeded"),
                                           ("AccessDeniedException", "not authorized to perform: sagemaker:DeleteEndpoint"),
                                           ("ValidationException", "Endpoint x-qa is not valid.")])
def test_any_other_refused_delete_fails_instead_of_being_reported_done(cleanup, sagemaker, code, message):
    client, stub = sagemaker
    stub.add_response("describe_endpoint", endpoint("x-qa", "InService"), {"EndpointName": "x-qa"})
    stub.add_client_error("delete_endpoint", code, message)
    with pytest.raises(ClientError) as raised:
        cleanup.cleanup(client, {"names": {"qa_endpoint": "x-qa"}, "scope": "qa_endpoint"}, PRODUCTION)
    assert raised.value.response["Error"]["Code"] == code


# ------------------------------------------------------------------ the training job

def test_no_training_job_named_is_none_named(cleanup, sagemaker):
    client, stub = sagemaker
    stub.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "x-qa".')
    result = cleanup.cleanup(client, {"names": {"qa_endpoint": "x-qa", "training_job": ""}}, PRODUCTION)
    assert (result["training_job"], result["training_action"]) == ("", "none_named")


def test_the_answer_names_the_training_job_it_acted_on(cleanup, sagemaker):
    client, stub = sagemaker
    stub.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "x-qa".')
    stub.add_response("describe_training_job", training_job("x-train", "InProgress"), {"TrainingJobName": "x-train"})
    stub.add_response("stop_training_job", {}, {"TrainingJobName": "x-train"})
    result = cleanup.cleanup(client, {"names": {"qa_endpoint": "x-qa", "training_job": "x-train"}}, PRODUCTION)
    assert (result["training_job"], result["training_action"]) == ("x-train", "stopped")


def test_a_job_that_ended_between_describe_and_stop_is_not_running(cleanup, sagemaker):
    client, stub = sagemaker
    stub.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "x-qa".')
    stub.add_response("describe_training_job", training_job("x-train", "InProgress"), {"TrainingJobName": "x-train"})
    stub.add_client_error("stop_training_job", "ValidationException",
                          "The request was rejected because the training job is in status Completed.")
    result = cleanup.cleanup(client, {"names": {"qa_endpoint": "x-qa", "training_job": "x-train"}}, PRODUCTION)
    assert result["training_action"] == "not_running"


def test_a_throttled_stop_fails_instead_of_being_reported_not_running(cleanup, sagemaker):
    client, stub = sagemaker
    stub.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "x-qa".')
    stub.add_response("describe_training_job", training_job("x-train", "InProgress"), {"TrainingJobName": "x-train"})
    stub.add_client_error("stop_training_job", "ThrottlingException", "Rate exceeded")
    with pytest.raises(ClientError, match="ThrottlingException"):
        cleanup.cleanup(client, {"names": {"qa_endpoint": "x-qa", "training_job": "x-train"}}, PRODUCTION)


def test_a_stop_error_without_an_error_block_is_raised_as_it_is(cleanup):
    """botocore's ClientError tolerates a response without "Error": the original error must surface (and get its
    name from named_aws_errors), not an AttributeError from reading it."""
    class Stops:
        def describe_training_job(self, **_):
            return {"TrainingJobStatus": "InProgress"}

        def stop_training_job(self, **_):
            raise ClientError({}, "StopTrainingJob")

    with pytest.raises(ClientError):
        cleanup.stop_training_job(Stops(), "x-train")


# ------------------------------------------------------------------ defaults and the failure email

def test_the_default_poll_interval_is_a_minute(cleanup, sagemaker):
    client, stub = sagemaker
    stub.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "x-qa".')
    result = cleanup.cleanup(client, {"names": {"qa_endpoint": "x-qa"}, "scope": "qa_endpoint"}, PRODUCTION)
    assert result["poll_seconds"] == 60


QUOTA_FAILURE = {"state": "TrainXGBoost", "error": "QuotaExceeded",
                 "cause": "An error occurred (ResourceLimitExceeded) when calling the CreateTrainingJob operation: "
                          "The account-level service limit 'ml.m5.large for training job usage' is 0 Instances, with "
                          "current utilization of 0 Instances and a request delta of 1 Instances. Please contact AWS "
                          "support to request an increase for this limit."}


def test_the_failure_email_names_the_region_of_the_quota(cleanup, sagemaker):
    client, _ = sagemaker
    result = cleanup.cleanup(client, {"failure": QUOTA_FAILURE, "plan": {}}, PRODUCTION, region="eu-west-1")
    assert "eu-west-1" in result["notice"]["message"]


def test_without_a_region_the_failure_email_says_this_region(cleanup, sagemaker):
    client, _ = sagemaker
    message = cleanup.cleanup(client, {"failure": QUOTA_FAILURE}, PRODUCTION)["notice"]["message"]
    assert "this region" in message and "XX" not in message


def test_a_failure_before_the_run_had_an_id_is_mailed_as_run_question_mark(cleanup, sagemaker):
    client, _ = sagemaker
    notice = cleanup.cleanup(client, {"failure": {"state": "StartRun", "error": "States.TaskFailed", "cause": ""}},
                             PRODUCTION)["notice"]
    assert notice["subject"] == "Pipeline run ? failed in StartRun"
