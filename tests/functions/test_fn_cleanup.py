"""cleanup: deletes the QA endpoint when one was named, never production,
and can be run again without harm."""
from __future__ import annotations

from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber

from lambda_fixtures import ACCOUNT, REGION, ROLE_ARN, make_run

PRODUCTION = "car-evaluation-prod"


@pytest.fixture
def cleanup(load_function, monkeypatch):
    monkeypatch.setenv("PRODUCTION_ENDPOINT_NAME", PRODUCTION)
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


def test_success_path_deletes_the_qa_endpoint_only(cleanup, endpoints, context):
    sagemaker, run, qa = endpoints
    result = cleanup.lambda_handler({"run": run, "names": names_for(run)}, context)
    assert result == {"qa_endpoint": qa, "action": "deleted"}
    assert endpoint_names(sagemaker) == {PRODUCTION}

    # Again (a retry): nothing left to do, not an error.
    assert cleanup.lambda_handler({"run": run, "names": names_for(run)}, context) == {"qa_endpoint": qa, "action": "absent"}
    assert endpoint_names(sagemaker) == {PRODUCTION}


def test_failure_path_with_the_whole_state(cleanup, endpoints, context):
    sagemaker, run, qa = endpoints
    state = {
        "input_uri": run["input_uri"],
        "run": run,
        "glue": {"job_run_id": "jr_1", "state": "SUCCEEDED"},
        "plan": {"names": names_for(run), "training": {}, "manifest_uri": "s3://x/manifest.json"},
        "error": {"Error": "QualityBelowThreshold", "Cause": "..."},
        "failure": {"state": "RunQATests", "error": "QualityBelowThreshold", "cause": "..."},
    }
    assert cleanup.lambda_handler(state, context) == {"qa_endpoint": qa, "action": "deleted"}
    assert endpoint_names(sagemaker) == {PRODUCTION}


@pytest.mark.parametrize(
    "state",
    [
        {"input_uri": "s3://b/k", "run": make_run(), "failure": {"state": "PreprocessWithGlue"}},
        {"input_uri": "s3://b/k", "run": make_run(), "plan": {}},
        {},
        None,
    ],
)
def test_failure_before_anything_was_named_deletes_nothing(cleanup, endpoints, context, state):
    sagemaker, _, _ = endpoints
    assert cleanup.lambda_handler(state, context) == {"qa_endpoint": None, "action": "none_named"}
    assert len(endpoint_names(sagemaker)) == 2


def test_never_deletes_production(cleanup, endpoints, context):
    sagemaker, run, _ = endpoints
    names = {**names_for(run), "qa_endpoint": PRODUCTION}
    assert cleanup.lambda_handler({"run": run, "names": names}, context)["action"] == "refused"
    assert PRODUCTION in endpoint_names(sagemaker)


def description(status: str) -> dict:
    now = datetime(2025, 1, 2, tzinfo=timezone.utc)
    return {"EndpointName": "x-qa", "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/x-qa",
            "EndpointStatus": status, "CreationTime": now, "LastModifiedTime": now}


def test_an_endpoint_still_being_created_is_a_retryable_error(cleanup):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", description("Creating"))
        with pytest.raises(Exception, match="Creating") as raised:
            cleanup.cleanup(sagemaker, {"names": {"qa_endpoint": "x-qa"}}, PRODUCTION)
        stub.assert_no_pending_responses()
    assert type(raised.value).__name__ == "QAEndpointBusy"


@pytest.mark.parametrize("status, calls_delete", [("Failed", True), ("OutOfService", True), ("Deleting", False)])
def test_failed_endpoints_are_deleted_and_deleting_ones_left_alone(cleanup, status, calls_delete):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", description(status), {"EndpointName": "x-qa"})
        if calls_delete:
            stub.add_response("delete_endpoint", {}, {"EndpointName": "x-qa"})
        result = cleanup.cleanup(sagemaker, {"names": {"qa_endpoint": "x-qa"}}, PRODUCTION)
        stub.assert_no_pending_responses()
    assert result["action"] == ("deleted" if calls_delete else "already_deleting")


def test_aws_errors_propagate(cleanup):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_endpoint", "AccessDeniedException", "not authorized", http_status_code=403)
        with pytest.raises(Exception, match="AccessDenied"):
            cleanup.cleanup(sagemaker, {"names": {"qa_endpoint": "x-qa"}}, PRODUCTION)
