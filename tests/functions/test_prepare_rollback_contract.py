"""prepare_rollback one decision at a time: which request names a version, which version
may be rolled back to (and the exact reason a person reads when not), what production
serves now, and the whole answer the confirmation email and page are built from.

SageMaker and S3 are moto with local mode's registry corrections
(localmode.aws.model_registry_installed), driven through the real register_model,
record_decision and deploy_production as in tests/functions/test_fn_registry.py.
"""
from __future__ import annotations

import json

import pytest
from test_fn_registry import (  # noqa: F401 (fixtures)
    ENDPOINT,
    SPARKML,
    decide,
    fns,
    register,
    registry,
    two_deployed_versions,
)

from lambda_fixtures import ARTIFACTS, ROLE_ARN, make_run
from pipeline_common.errors import InvalidEvent

ROLLBACK_RUN = make_run("rollback-v1-0001", "2025-03-04T05:06:07Z")


def prepare(fns, s3, registry, version, **event) -> dict:
    return fns["prepare_rollback"].prepare_rollback(
        registry, s3, {"run": ROLLBACK_RUN, "rollback": {"model_package_version": version},
                       "dataset": {"name": "car", "production_endpoint": ENDPOINT}, **event}, 30, 3600)


def refused(fns, s3, registry, version, **event) -> Exception:
    with pytest.raises(Exception) as caught:
        prepare(fns, s3, registry, version, **event)
    return caught.value


def expected_summary(registry, registered: dict, run_id: str, approved_on: str) -> dict:
    """What the confirmation shows of a version registered by test_fn_registry.register()."""
    package = registry.describe_model_package(ModelPackageName=registered["model_package_arn"])
    return {
        "version": registered["version"], "arn": registered["model_package_arn"], "status": "Approved",
        "approval_description": f"Approved on the approval page at {approved_on}.",
        "created": str(package["CreationTime"]),
        "run_id": run_id, "input_uri": "s3://input-bucket/input/car.data", "input_version_id": "v-42",
        "glue_job_run_id": "jr_0123", "training_job": f"{run_id}-train",
        # The QA figures as the report had them (numbers), without the report's runs/ address.
        "qa": {"accuracy": 0.97, "threshold": 0.95, "rows": 259},
        "qa_report_uri": f"s3://{ARTIFACTS}/models/{run_id}/registry/qa-report.json",
        "model_files": [f"s3://{ARTIFACTS}/models/{run_id}/{part}/model.tar.gz"
                        for part in ("preprocess", "xgboost", "postprocess")],
    }


# ------------------------------------------------------------------ the whole answer

def test_a_rollback_answer_names_the_target_what_serves_and_the_runs_settings(fns, s3, registry, state_table):
    first, second = two_deployed_versions(fns, s3, registry, state_table)
    serving_config = registry.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]

    assert prepare(fns, s3, registry, 1) == {
        "names": {"production_endpoint": ENDPOINT},
        "registry": {"model_package_arn": first["model_package_arn"], "model_package_group": ENDPOINT,
                     "version": 1, "status": "Approved", "kind": "rollback"},
        "summary": {
            "kind": "rollback", "run_id": "rollback-v1-0001", "started_at": "2025-03-04T05:06:07Z", "dataset": "car",
            "production_endpoint": ENDPOINT, "model_package_group": ENDPOINT,
            "target": expected_summary(registry, first, "car-first-000000000001", "day 1"),
            "serving": {"endpoint_config": serving_config, "status": "InService",
                        **expected_summary(registry, second, "car-second-00000000002", "day 2")},
        },
        "poll_seconds": 30,
        "approval_timeout_seconds": 3600,
    }


@pytest.mark.parametrize("spoil", ["delete", "not json"])
def test_without_its_lineage_document_a_version_is_shown_from_its_metadata(fns, s3, registry, state_table, spoil):
    # The metadata values are escaped text: the QA figures read back as text, the report's own address left out.
    first, _ = two_deployed_versions(fns, s3, registry, state_table)
    key = "models/car-first-000000000001/registry/lineage.json"
    if spoil == "delete":
        s3.delete_object(Bucket=ARTIFACTS, Key=key)
    else:
        s3.put_object(Bucket=ARTIFACTS, Key=key, Body=b"{not json")
    target = prepare(fns, s3, registry, 1)["summary"]["target"]
    assert target == {**expected_summary(registry, first, "car-first-000000000001", "day 1"),
                      "qa": {"accuracy": "0.97", "threshold": "0.95", "rows": "259"}}


def test_a_run_record_that_is_not_an_object_leaves_the_summarys_run_fields_empty(fns, s3, registry, state_table):
    two_deployed_versions(fns, s3, registry, state_table)
    summary = prepare(fns, s3, registry, 1, run="rollback-v1-0001")["summary"]
    assert (summary["run_id"], summary["started_at"]) == (None, None)


def test_a_version_number_given_as_text_is_read_as_the_number(fns, s3, registry, state_table):
    # An execution input typed in the console: {"rollback": {"model_package_version": "1"}}.
    two_deployed_versions(fns, s3, registry, state_table)
    assert prepare(fns, s3, registry, " 1 ")["registry"]["version"] == 1


# ------------------------------------------------------------------ what serves now

def single_container_production(registry, image: str) -> None:
    """Production running a one-container model (PrimaryContainer), as a hand-made endpoint would."""
    container = {"Image": image, "ModelDataUrl": f"s3://{ARTIFACTS}/handmade/model.tar.gz"}
    registry.create_model(ModelName="handmade", ExecutionRoleArn=ROLE_ARN, PrimaryContainer=container)
    registry.create_endpoint_config(EndpointConfigName="handmade-config", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "handmade", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    registry.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="handmade-config")


def test_a_production_model_that_is_no_registered_version_is_said_to_be_so(fns, s3, registry):
    registered = register(fns, s3, registry, make_run())
    decide(fns, registry, registered, approval={"decided_at": "day 1"})
    single_container_production(registry, "xgboost:1.7-1")

    serving = prepare(fns, s3, registry, 1)["summary"]["serving"]
    assert serving == {"endpoint_config": "handmade-config", "status": "InService", "version": None}


def test_a_one_container_version_in_production_is_recognised_as_serving(fns, s3, registry):
    # A version whose single container is what production's PrimaryContainer runs: asking for it is refused.
    s3.put_object(Bucket=ARTIFACTS, Key="handmade/model.tar.gz", Body=b"model")
    registry.create_model_package_group(ModelPackageGroupName=ENDPOINT)
    arn = registry.create_model_package(
        ModelPackageGroupName=ENDPOINT, ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": SPARKML, "ModelDataUrl": f"s3://{ARTIFACTS}/handmade/model.tar.gz"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]
    assert registry.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"] == 1
    single_container_production(registry, SPARKML)

    error = refused(fns, s3, registry, 1)
    assert type(error).__name__ == "AlreadyServing"


# ------------------------------------------------------------------ refusals, with what the person reads

def test_the_version_production_serves_is_refused(fns, s3, registry, state_table):
    two_deployed_versions(fns, s3, registry, state_table)
    error = refused(fns, s3, registry, 2)
    assert type(error).__name__ == "AlreadyServing"
    assert str(error) == f"production endpoint {ENDPOINT} already serves version 2 of {ENDPOINT}"


def test_an_unknown_version_is_refused_with_the_versions_there_are(fns, s3, registry, state_table):
    two_deployed_versions(fns, s3, registry, state_table)
    error = refused(fns, s3, registry, 7)
    assert type(error).__name__ == "ModelPackageNotFound"
    assert str(error) == f"group {ENDPOINT} has no version 7 (versions: 1, 2)"


def test_a_version_of_an_empty_group_is_refused_saying_there_are_none(fns, s3, registry):
    registry.create_model_package_group(ModelPackageGroupName=ENDPOINT)
    error = refused(fns, s3, registry, 1)
    assert str(error) == f"group {ENDPOINT} has no version 1 (versions: none)"


def test_an_endpoint_without_a_registry_is_refused(fns, s3, registry):
    error = refused(fns, s3, registry, 1)
    assert type(error).__name__ == "ModelPackageNotFound"
    assert str(error) == f"production endpoint {ENDPOINT} has no model registry yet (group {ENDPOINT})"


def test_a_rollback_when_production_does_not_exist_is_refused(fns, s3, registry):
    registered = register(fns, s3, registry, make_run())
    decide(fns, registry, registered, approval={"decided_at": "day 1"})
    error = refused(fns, s3, registry, 1)
    assert type(error).__name__ == "InvalidRollback"
    assert str(error) == f"production endpoint {ENDPOINT} does not exist: there is nothing to roll back"


# ------------------------------------------------------------------ the request itself (no AWS call)

@pytest.fixture
def prepare_rollback(load_function):
    return load_function("prepare_rollback")


DATASET = {"name": "car", "production_endpoint": ENDPOINT}


@pytest.mark.parametrize("version, expected", [(1, 1), (12, 12), ("3", 3), (" 4 ", 4)])
def test_a_request_names_its_endpoint_and_version(prepare_rollback, version, expected):
    assert prepare_rollback.requested({"rollback": {"model_package_version": version}, "dataset": DATASET}) == \
        (ENDPOINT, expected)


@pytest.mark.parametrize("event", [None, [], "rollback", {}, {"rollback": 1}, {"rollback": [1]}])
def test_a_request_without_a_rollback_object_is_refused(prepare_rollback, event):
    with pytest.raises(prepare_rollback.InvalidRollback) as caught:
        prepare_rollback.requested(event)
    assert str(caught.value) == 'the execution input must be {"rollback": {"model_package_version": N}}'


@pytest.mark.parametrize("version", [0, -1, True, 1.0, "one", "", None, "1.5"])
def test_a_request_that_names_no_version_number_is_refused(prepare_rollback, version):
    with pytest.raises(prepare_rollback.InvalidRollback) as caught:
        prepare_rollback.requested({"rollback": {"model_package_version": version}, "dataset": DATASET})
    assert str(caught.value) == ("rollback.model_package_version must be a version number (1, 2, ...), "
                                 f"got {version!r}")


@pytest.mark.parametrize("dataset", [None, "car", {"name": "car"}, {"production_endpoint": "car evaluation!"},
                                     {"production_endpoint": 7}])
def test_a_request_without_a_valid_production_endpoint_is_refused(prepare_rollback, dataset):
    with pytest.raises(InvalidEvent) as caught:
        prepare_rollback.requested({"rollback": {"model_package_version": 1}, "dataset": dataset})
    endpoint = dataset.get("production_endpoint") if isinstance(dataset, dict) else None
    assert str(caught.value) == ("the event needs dataset.production_endpoint (ResolveRollbackDataset's answer), "
                                 f"got {endpoint!r}")


def test_the_lineage_document_is_read_from_the_metadatas_address(prepare_rollback, s3):
    # The exact lineage wins over the (escaped, perhaps cut) metadata.
    s3.put_object(Bucket=ARTIFACTS, Key="lineage.json", Body=json.dumps(
        {"run_id": "car-1", "input_uri": "s3://in/a,b.csv", "qa": {"r2": 0.8, "report_uri": "s3://x/runs/r.json"},
         "qa_r2": 0.1}).encode())
    package = {"ModelPackageVersion": 5, "ModelPackageArn": "arn", "ModelApprovalStatus": "Approved",
               "CustomerMetadataProperties": {"run_id": "car-1", "input_uri": "s3://in/a=2Cb.csv",
                                              "lineage_uri": f"s3://{ARTIFACTS}/lineage.json"},
               "InferenceSpecification": {"Containers": [{"Image": "i"}]}}
    summary = prepare_rollback.version_summary(s3, package)
    assert (summary["input_uri"], summary["qa"], summary["model_files"], summary["created"]) == \
        ("s3://in/a,b.csv", {"r2": 0.8}, [None], "")
