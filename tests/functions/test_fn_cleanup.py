"""cleanup: deletes the QA endpoint when one was named, never production,
stops an ended run's training job, hands an endpoint SageMaker cannot delete
yet to the cleanup state machine, writes the failure email, and can be run
again without harm."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber

from lambda_fixtures import ACCOUNT, REGION, ROLE_ARN, make_run

PRODUCTION = "car-evaluation-prod"
CLEANUP_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:car-cleanup"


@pytest.fixture
def cleanup(load_function, monkeypatch):
    monkeypatch.setenv("PRODUCTION_ENDPOINT_NAME", PRODUCTION)
    monkeypatch.setenv("CLEANUP_STATE_MACHINE_ARN", CLEANUP_MACHINE)
    monkeypatch.setenv("POLL_SECONDS", "30")
    monkeypatch.setenv("DEFAULT_DATASET", "car")
    monkeypatch.setenv("PRODUCTION_ENDPOINT_SUFFIX", "-prod")
    monkeypatch.setenv("INPUT_PREFIX", "input/")
    return load_function("cleanup")


@pytest.fixture
def endpoints(aws):
    """A QA endpoint and the production endpoint, both InService in moto."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model(ModelName="m", ExecutionRoleArn=ROLE_ARN, Containers=[{"Image": "xgboost"}])
    sagemaker.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1,
                             "InstanceType": "ml.m5.large"}],
    )
    run = make_run()
    qa = f"{run['run_id']}-qa"
    for name in (qa, PRODUCTION):
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="c")
    return sagemaker, run, qa


def names_for(run: dict) -> dict:
    base = run["run_id"]
    return {"training_job": f"{base}-train", "model": f"{base}-model", "endpoint_config": f"{base}-config",
            "qa_endpoint": f"{base}-qa", "production_endpoint": PRODUCTION}


def endpoint_names(sagemaker) -> set[str]:
    return {e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]}


def test_after_qa_deletes_the_qa_endpoint_only(cleanup, endpoints, context):
    sagemaker, run, qa = endpoints
    event = {"run": run, "names": names_for(run), "scope": "qa_endpoint"}
    result = cleanup.lambda_handler(event, context)
    assert result == {"qa_endpoint": qa, "action": "deleted", "pending": False, "poll_seconds": 30}
    assert endpoint_names(sagemaker) == {PRODUCTION}

    # Again (a retry): nothing left to do, not an error.
    assert cleanup.lambda_handler(event, context)["action"] == "absent"
    assert endpoint_names(sagemaker) == {PRODUCTION}


def test_failure_path_with_the_whole_state_writes_the_email(cleanup, endpoints, context):
    sagemaker, run, qa = endpoints
    state = {
        "input_uri": run["input_uri"],
        "run": run,
        "glue": {"job_run_id": "jr_1", "state": "SUCCEEDED"},
        "plan": {"names": names_for(run), "training": {}, "manifest_uri": "s3://x/manifest.json",
                 "approval_timeout_seconds": 86400},
        "error": {"Error": "States.Timeout", "Cause": ""},
        "failure": {"state": "RequestApproval", "error": "States.Timeout", "cause": ""},
    }
    result = cleanup.lambda_handler(state, context)
    assert result["action"] == "deleted" and result["training_action"] == "absent"
    assert endpoint_names(sagemaker) == {PRODUCTION}
    notice = result["notice"]
    assert notice["subject"] == f"Pipeline run {run['run_id']} failed in RequestApproval"
    assert "within the approval window (1 day)" in notice["message"]
    assert f"QA endpoint {qa}: deleted." in notice["message"]


@pytest.mark.parametrize(
    "state, action",
    [
        ({"input_uri": "s3://b/k", "run": make_run(), "failure": {"state": "PreprocessWithGlue"}}, "absent"),
        ({"input_uri": "s3://b/k", "run": make_run(), "plan": {}}, "absent"),
        ({}, "none_named"),
        (None, "none_named"),
    ],
)
def test_failure_before_anything_was_created_deletes_nothing(cleanup, aws, context, state, action):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert cleanup.lambda_handler(state, context)["action"] == action
    assert endpoint_names(sagemaker) == set()


def test_never_deletes_production(cleanup, endpoints, context):
    sagemaker, run, _ = endpoints
    names = {**names_for(run), "qa_endpoint": PRODUCTION}
    assert cleanup.lambda_handler({"run": run, "names": names}, context)["action"] == "refused"
    assert PRODUCTION in endpoint_names(sagemaker)


def test_the_execution_status_change_event_names_the_run(cleanup, endpoints, context):
    """The cleanup state machine's input when RunEndedRule started it: the event AWS documents
    (https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html); the
    execution name is the run id, from which every resource name is derived."""
    sagemaker, run, qa = endpoints
    event = {
        "version": "0", "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
        "account": ACCOUNT, "time": "2019-02-26T19:42:21Z", "region": REGION,
        "resources": [run["execution_arn"]],
        "detail": {"executionArn": run["execution_arn"],
                   "stateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:pipeline",
                   "name": run["run_id"], "status": "TIMED_OUT", "startDate": 1551224926156,
                   "stopDate": 1551224927157, "input": "{}", "inputDetails": {"included": True},
                   "output": None, "outputDetails": None},
    }
    result = cleanup.lambda_handler({"caller": "cleanup_workflow", "input": event}, context)
    assert result["qa_endpoint"] == qa and result["action"] == "deleted"
    assert endpoint_names(sagemaker) == {PRODUCTION}


def description(status: str) -> dict:
    now = datetime(2025, 1, 2, tzinfo=timezone.utc)
    return {"EndpointName": "x-qa", "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/x-qa",
            "EndpointStatus": status, "CreationTime": now, "LastModifiedTime": now}


def test_an_endpoint_still_being_created_is_handed_to_the_cleanup_state_machine(cleanup):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    names = {"qa_endpoint": "x-qa"}
    execution = CLEANUP_MACHINE.replace(":stateMachine:", ":execution:") + ":1"
    with Stubber(sagemaker) as stub, Stubber(sfn) as sfn_stub:
        stub.add_response("describe_endpoint", description("Creating"), {"EndpointName": "x-qa"})
        sfn_stub.add_response("start_execution", {"executionArn": execution, "startDate": datetime.now(timezone.utc)},
                              {"stateMachineArn": CLEANUP_MACHINE,
                               "input": json.dumps({"run_id": "x", "names": names})})
        result = cleanup.cleanup(sagemaker, {"run_id": "x", "names": names, "scope": "qa_endpoint"}, PRODUCTION,
                                 sfn=sfn, cleanup_state_machine=CLEANUP_MACHINE)
        stub.assert_no_pending_responses()
        sfn_stub.assert_no_pending_responses()
    assert result["action"] == "pending" and result["pending"] is True
    assert result["handed_over_to"] == execution


def test_the_cleanup_state_machine_itself_waits_instead_of_handing_over(cleanup):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", description("Updating"), {"EndpointName": "x-qa"})
        result = cleanup.cleanup(sagemaker, {"caller": "cleanup_workflow", "input": {"names": {"qa_endpoint": "x-qa"},
                                                                                   "scope": "qa_endpoint"}},
                                 PRODUCTION, sfn=None, poll_seconds=7)
        stub.assert_no_pending_responses()
    assert result == {"qa_endpoint": "x-qa", "action": "pending", "pending": True, "poll_seconds": 7, "registry": None}


@pytest.mark.parametrize("status, calls_delete", [("Failed", True), ("OutOfService", True), ("Deleting", False)])
def test_failed_endpoints_are_deleted_and_deleting_ones_left_alone(cleanup, status, calls_delete):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", description(status), {"EndpointName": "x-qa"})
        if calls_delete:
            stub.add_response("delete_endpoint", {}, {"EndpointName": "x-qa"})
        result = cleanup.cleanup(sagemaker, {"names": {"qa_endpoint": "x-qa"}, "scope": "qa_endpoint"}, PRODUCTION)
        stub.assert_no_pending_responses()
    assert result["action"] == ("deleted" if calls_delete else "already_deleting")


@pytest.mark.parametrize("status, stops", [("InProgress", True), ("Completed", False), ("Stopping", False)])
def test_an_ended_runs_training_job_is_stopped_if_it_still_runs(cleanup, status, stops):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "x-qa".')
        stub.add_response("describe_training_job", {
            "TrainingJobName": "x-train", "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/x-train",
            "TrainingJobStatus": status, "SecondaryStatus": "Training", "CreationTime": datetime.now(timezone.utc),
            "AlgorithmSpecification": {"TrainingInputMode": "File"}, "ModelArtifacts": {"S3ModelArtifacts": ""},
            "ResourceConfig": {"VolumeSizeInGB": 10}, "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        }, {"TrainingJobName": "x-train"})
        if stops:
            stub.add_response("stop_training_job", {}, {"TrainingJobName": "x-train"})
        result = cleanup.cleanup(sagemaker, {"names": {"qa_endpoint": "x-qa", "training_job": "x-train"}}, PRODUCTION)
        stub.assert_no_pending_responses()
    assert result["action"] == "absent"
    assert result["training_action"] == ("stopped" if stops else "not_running")


def test_a_missing_training_job_is_recognised_by_sagemakers_own_words(cleanup):
    # DescribeTrainingJob of an unknown job: ValidationException "Requested resource not found."
    # (https://github.com/aws/aws-sdk/issues/165), not "Could not find ...".
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "x-qa".')
        stub.add_client_error("describe_training_job", "ValidationException", "Requested resource not found.")
        result = cleanup.cleanup(sagemaker, {"names": {"qa_endpoint": "x-qa", "training_job": "x-train"}}, PRODUCTION)
    assert result["training_action"] == "absent"


def test_aws_errors_fail_under_their_names(cleanup, context, aws):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_endpoint", "AccessDeniedException", "not authorized", http_status_code=400)
        with pytest.raises(Exception, match="AccessDenied"):
            cleanup.cleanup(sagemaker, {"names": {"qa_endpoint": "x-qa"}}, PRODUCTION)


# --- the model version of a run that ended without a decision --------------------------------------

def ended_event(run_id: str, status: str, execution_input: dict) -> dict:
    """RunEndedRule's event for an execution that ended `status` (the shape Step Functions documents)."""
    return {"caller": "cleanup_workflow", "input": {
        "version": "0", "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
        "account": ACCOUNT, "region": REGION, "resources": [f"arn:aws:states:{REGION}:{ACCOUNT}:execution:p:{run_id}"],
        "detail": {"executionArn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:p:{run_id}", "name": run_id,
                   "status": status, "input": json.dumps(execution_input), "inputDetails": {"included": True}}}}


def register(sagemaker, group: str, run_id: str, status: str = "PendingManualApproval") -> str:
    try:
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    except sagemaker.exceptions.ClientError:
        pass
    return sagemaker.create_model_package(
        ModelPackageGroupName=group, ModelApprovalStatus=status, CustomerMetadataProperties={"run_id": run_id},
        InferenceSpecification={"Containers": [{"Image": "xgboost"}], "SupportedContentTypes": ["text/csv"],
                                "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"]


def package(sagemaker, arn: str) -> tuple[str, str | None]:
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    return described["ModelApprovalStatus"], described.get("ApprovalDescription")


@pytest.mark.parametrize("status, says", [("ABORTED", "the execution was stopped"), ("TIMED_OUT", "the execution timed out")])
def test_a_run_stopped_or_timed_out_during_approval_has_its_pending_version_rejected(cleanup, aws, context, status, says):
    # A stopped or timed-out execution runs no Catch: SettleModelPackage never ran for it.
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    mine = register(sagemaker, PRODUCTION, "car-0123456789ab")
    other = register(sagemaker, PRODUCTION, "car-ffffffffffff")
    result = cleanup.lambda_handler(ended_event("car-0123456789ab", status, {"input_uri": "s3://in/input/car.csv",
                                                                             "dataset": "car"}), context)
    assert result["registry"] == {"model_package_arn": mine, "status": "Rejected", "action": "rejected",
                                  "description": f"Not deployed: {says} before a decision."}
    assert package(sagemaker, mine) == ("Rejected", f"Not deployed: {says} before a decision.")
    assert package(sagemaker, other)[0] == "PendingManualApproval"


def test_another_datasets_run_is_settled_in_that_datasets_group(cleanup, aws, context):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    # A console start names only input_uri: the dataset is the key's folder, as start_run reads it.
    mine = register(sagemaker, "penguins-prod", "penguins-0123456789ab")
    result = cleanup.lambda_handler(ended_event("penguins-0123456789ab", "ABORTED",
                                                {"input_uri": "s3://in/input/penguins/p.csv"}), context)
    assert result["registry"]["model_package_arn"] == mine and package(sagemaker, mine)[0] == "Rejected"


def test_a_decided_version_and_a_run_that_registered_nothing_are_left_alone(cleanup, aws, context):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    approved = register(sagemaker, PRODUCTION, "car-0123456789ab", status="Approved")
    decided = cleanup.lambda_handler(ended_event("car-0123456789ab", "ABORTED", {"dataset": "car"}), context)
    assert decided["registry"] == {"model_package_arn": approved, "status": "Approved", "action": "unchanged"}
    assert package(sagemaker, approved) == ("Approved", None)
    for run_id, execution_input in (("car-aaaaaaaaaaaa", {"dataset": "car"}),  # stopped before RegisterModel
                                    ("rollback-v1-1234", {"rollback": {"model_package_version": 1}}),
                                    ("penguins-bbbbbbbbbbbb", {"dataset": "penguins"})):  # no group yet
        assert cleanup.lambda_handler(ended_event(run_id, "ABORTED", execution_input), context)["registry"] is None


def test_a_failed_rollbacks_email_is_a_rollbacks(cleanup, aws, context):
    """The cleanup knows a rollback by its state's `rollback` record: no upload, no QA endpoint."""
    state = {"input_uri": "rollback", "run": make_run(), "rollback": {"model_package_version": 1},
             "failure": {"state": "CheckProduction", "error": "ProductionRolledBack", "cause": "alarm"}}
    message = cleanup.lambda_handler(state, context)["notice"]["message"]
    assert "request the rollback again" in message and "upload" not in message.lower()
    assert "QA endpoint" not in message
