"""The model registry's functions against moto's SageMaker with local mode's
corrections (localmode.aws.model_registry_installed): registration with the
run's lineage, the decision, deployment only of Approved versions whose files
exist, and the rollback's checks."""
from __future__ import annotations

import json

import boto3
import botocore.session
import pytest
import regex

from lambda_fixtures import ARTIFACTS, REGION, ROLE_ARN, TABLE, make_run, put
from localmode.aws import model_registry_installed, update_endpoint_installed

ENDPOINT = "car-evaluation"
SPARKML, XGBOOST = "sparkml:3.3", "xgboost:1.7-1"
ODD_KEY = "s3://input-bucket/input/car data,v2 (1)+é%.csv"


@pytest.fixture
def registry(aws):
    with model_registry_installed(), update_endpoint_installed():
        yield boto3.client("sagemaker", region_name=REGION)


@pytest.fixture
def fns(load_function):
    return {name: load_function(name) for name in
            ("register_model", "record_decision", "deploy_production", "prepare_rollback")}


def stored_model(s3, sagemaker, run: dict) -> str:
    """What create_model leaves: three model files under models/<run>/ (with their origin) and the model."""
    containers = []
    for part, image in (("preprocess", SPARKML), ("xgboost", XGBOOST), ("postprocess", SPARKML)):
        key = f"models/{run['run_id']}/{part}/model.tar.gz"
        s3.put_object(Bucket=ARTIFACTS, Key=key, Body=b"model", Metadata={"source": f"{run['run_prefix']}{part}"})
        container = {"Image": image, "ModelDataUrl": f"s3://{ARTIFACTS}/{key}"}
        if image == SPARKML:
            container["Environment"] = {"SAGEMAKER_SPARKML_SCHEMA": json.dumps({"input": [], "output": {}})}
        containers.append(container)
    name = f"{run['run_id']}-model"
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE_ARN, Containers=containers)
    put(s3, f"{run['run_prefix']}qa/report.json", {"accuracy": 0.97, "labels": ["acc", "unacc"]})
    return name


def register_event(run: dict, model_name: str) -> dict:
    return {
        "run": run,
        "names": {"production_endpoint": ENDPOINT, "training_job": f"{run['run_id']}-train"},
        "manifest_uri": run["run_prefix"] + "manifest.json",
        "model_name": model_name,
        "glue_job_run_id": "jr_0123",
        "qa": {"accuracy": 0.97, "threshold": 0.95, "rows": 259, "report_uri": run["run_prefix"] + "qa/report.json"},
        "execution_input": {"input_uri": run["input_uri"], "input_version_id": "v-42", "input_etag": "abc"},
    }


def register(fns, s3, registry, run) -> dict:
    return fns["register_model"].register_model(s3, registry, register_event(run, stored_model(s3, registry, run)),
                                                instance_type="ml.m5.large")


def decide(fns, registry, registered: dict, **event) -> dict:
    return fns["record_decision"].record_decision(registry, {"registry": registered, **event})


# ---------------------------------------------------------------- metadata limits

def botocore_metadata_rules():
    """CustomerMetadataMap as botocore's model of CreateModelPackage states it (an independent encoding
    of SageMaker's limits), with its Java-style pattern run by the `regex` module."""
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("CustomerMetadataMap")
    return shape.metadata["max"], shape.key.metadata, shape.value.metadata


@pytest.mark.parametrize("text", [ODD_KEY, "s3://b/" + "k" * 1000, "a=b", "tab\there\nnewline", "😀 emoji", "é" * 300])
def test_lineage_values_fit_sagemakers_metadata_rules(text, load_function):
    from pipeline_common.registry import customer_metadata, metadata_text

    max_entries, key_rules, value_rules = botocore_metadata_rules()
    entries = customer_metadata({"input_uri": text, "run_id": "car-1"})
    for key, value in entries.items():
        assert key_rules["min"] <= len(key) <= key_rules["max"] and regex.fullmatch(key_rules["pattern"], key)
        assert value_rules["min"] <= len(value) <= value_rules["max"]
        assert regex.fullmatch(value_rules["pattern"], value), value
    assert len(entries) <= max_entries
    # Readable back: exactly, or (cut) as its beginning plus a hash of the whole.
    back = metadata_text(entries["input_uri"])
    assert back == text or (text.startswith(back.split("@sha256=")[0]) and "@sha256=" in back)


def test_botocore_would_reject_the_raw_key(load_function):
    _, _, value_rules = botocore_metadata_rules()
    assert not regex.fullmatch(value_rules["pattern"], ODD_KEY), "the escape would be needless"


# ---------------------------------------------------------------- register

def test_a_run_that_passed_qa_becomes_a_pending_version_with_its_lineage(fns, s3, registry):
    run = make_run("car-first-000000000001")
    registered = register(fns, s3, registry, dict(run, input_uri=ODD_KEY))

    assert (registered["version"], registered["status"], registered["kind"]) == (1, "PendingManualApproval", "registered")
    package = registry.describe_model_package(ModelPackageName=registered["model_package_arn"])
    assert package["ModelPackageGroupName"] == ENDPOINT
    model = registry.describe_model(ModelName=f"{run['run_id']}-model")
    assert [c["ModelDataUrl"] for c in package["InferenceSpecification"]["Containers"]] == \
        [c["ModelDataUrl"] for c in model["Containers"]]
    metadata = package["CustomerMetadataProperties"]
    assert metadata["run_id"] == run["run_id"] and metadata["input_version_id"] == "v-42"
    assert metadata["glue_job_run_id"] == "jr_0123" and metadata["training_job"] == f"{run['run_id']}-train"
    assert metadata["container_2_source"] == f"{run['run_prefix']}xgboost"
    assert metadata["qa_accuracy"] == "0.97"
    # The description names the gate's metric: a regression run has no accuracy to show.
    assert package["ModelPackageDescription"].endswith(": QA accuracy 0.97 on 259 held-out rows")
    # The exact lineage (the odd key included) and the metrics outlive runs/.
    lineage = json.loads(s3.get_object(Bucket=ARTIFACTS, Key=f"models/{run['run_id']}/registry/lineage.json")["Body"].read())
    assert lineage["input_uri"] == ODD_KEY
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == \
        f"s3://{ARTIFACTS}/models/{run['run_id']}/registry/qa-report.json"


def test_a_retried_registration_registers_nothing_twice(fns, s3, registry):
    run = make_run("car-first-000000000001")
    first = register(fns, s3, registry, run)
    again = fns["register_model"].register_model(s3, registry, register_event(run, f"{run['run_id']}-model"),
                                                 instance_type="ml.m5.large")
    assert again == first
    assert len(registry.list_model_packages(ModelPackageGroupName=ENDPOINT)["ModelPackageSummaryList"]) == 1


def test_a_second_run_is_the_next_version(fns, s3, registry):
    register(fns, s3, registry, make_run("car-first-000000000001"))
    assert register(fns, s3, registry, make_run("car-second-00000000002"))["version"] == 2


# ---------------------------------------------------------------- decisions

def test_approval_sets_approved_and_keeps_the_lineage(fns, s3, registry):
    registered = register(fns, s3, registry, make_run())
    decided = decide(fns, registry, registered, approval={"decision": "approve", "reason": "", "decided_at": "2025-01-02T10:00:00Z"})

    package = registry.describe_model_package(ModelPackageName=registered["model_package_arn"])
    assert decided["status"] == package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"] == "Approved on the approval page at 2025-01-02T10:00:00Z."
    # moto 5.2.5's own UpdateModelPackage would have wiped these (localmode.aws corrects it).
    assert package["CustomerMetadataProperties"]["run_id"] == "car-0123456789ab"


@pytest.mark.parametrize("failure, description", [
    ({"state": "RequestApproval", "error": "ApprovalRejected", "cause": "too few rows"}, "Rejected by the reviewer: too few rows"),
    ({"state": "RequestApproval", "error": "States.Timeout", "cause": ""},
     "No decision within the approval window (86400 seconds): the run ended without deploying it."),
    ({"state": "RequestApproval", "error": "AccessDenied", "cause": "no sns:Publish"},
     "Not deployed: the run failed in RequestApproval with AccessDenied before a decision. no sns:Publish"),
])
def test_a_run_ending_without_approval_rejects_its_version_with_the_reason(fns, s3, registry, failure, description):
    registered = register(fns, s3, registry, make_run())
    decide(fns, registry, registered, failure=failure, approval_timeout_seconds=86400)

    package = registry.describe_model_package(ModelPackageName=registered["model_package_arn"])
    assert (package["ModelApprovalStatus"], package["ApprovalDescription"]) == ("Rejected", description)


def test_an_approved_version_stays_approved_when_its_deployment_fails(fns, s3, registry):
    registered = register(fns, s3, registry, make_run())
    decide(fns, registry, registered, approval={"decided_at": "now"})
    result = decide(fns, registry, registered, failure={"state": "CheckProduction", "error": "ProductionRolledBack"})
    assert result["action"] == "unchanged"
    assert registry.describe_model_package(ModelPackageName=registered["model_package_arn"])["ModelApprovalStatus"] == "Approved"


def test_a_rollbacks_target_is_never_changed(fns, s3, registry):
    registered = register(fns, s3, registry, make_run())
    result = decide(fns, registry, {**registered, "kind": "rollback"}, failure={"error": "ApprovalRejected"})
    assert result["action"] == "unchanged"
    assert registry.describe_model_package(ModelPackageName=registered["model_package_arn"])["ModelApprovalStatus"] \
        == "PendingManualApproval"


# ---------------------------------------------------------------- deployment

CAPTURE = {"EnableCapture": True, "InitialSamplingPercentage": 20, "DestinationS3Uri": f"s3://{ARTIFACTS}/capture",
           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}], "KmsKeyId": "key-arn"}


def deploy(fns, s3, registry, state_table, registered: dict, run=None):
    return fns["deploy_production"].deploy_production(
        state_table, registry, s3, {"run": run or make_run(), "names": {"production_endpoint": ENDPOINT},
                                    "model_package_arn": registered["model_package_arn"]},
        table=TABLE, bake_seconds=0, alarm_names=[], role_arn=ROLE_ARN, capture=CAPTURE)


def production_untouched(registry, state_table) -> bool:
    lock = state_table.get_item(TableName=TABLE, Key={"pk": {"S": f"production#{ENDPOINT}"}}).get("Item")
    return lock is None and not registry.list_endpoints()["Endpoints"]


@pytest.mark.parametrize("status", ["PendingManualApproval", "Rejected"])
def test_only_an_approved_version_is_deployed(fns, s3, registry, state_table, status):
    registered = register(fns, s3, registry, make_run())
    if status == "Rejected":
        decide(fns, registry, registered, failure={"error": "ApprovalRejected", "cause": "no"})
    with pytest.raises(Exception) as refused:
        deploy(fns, s3, registry, state_table, registered)
    assert type(refused.value).__name__ == "ModelPackageNotApproved" and status in str(refused.value)
    assert production_untouched(registry, state_table)


def test_production_runs_exactly_the_version_and_captures_its_traffic(fns, s3, registry, state_table):
    registered = register(fns, s3, registry, make_run())
    decide(fns, registry, registered, approval={"decided_at": "now"})
    result = deploy(fns, s3, registry, state_table, registered)

    endpoint = registry.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == result["endpoint_config_name"]
    config = registry.describe_endpoint_config(EndpointConfigName=result["endpoint_config_name"])
    assert config["DataCaptureConfig"] == CAPTURE
    model = registry.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    package = registry.describe_model_package(ModelPackageName=registered["model_package_arn"])
    strip = lambda cs: [{k: c.get(k) for k in ("Image", "ModelDataUrl", "Environment")} for c in cs]  # noqa: E731
    assert strip(model["Containers"]) == strip(package["InferenceSpecification"]["Containers"])
    assert result["model_package_version"] == 1


def test_a_version_whose_files_expired_fails_before_production_is_touched(fns, s3, registry, state_table):
    registered = register(fns, s3, registry, make_run())
    decide(fns, registry, registered, approval={"decided_at": "now"})
    s3.delete_object(Bucket=ARTIFACTS, Key="models/car-0123456789ab/xgboost/model.tar.gz")
    with pytest.raises(Exception) as refused:
        deploy(fns, s3, registry, state_table, registered)
    assert type(refused.value).__name__ == "ModelFilesExpired"
    assert "models/car-0123456789ab/xgboost/model.tar.gz" in str(refused.value)
    assert production_untouched(registry, state_table)


def test_a_version_of_another_endpoints_group_is_refused(fns, s3, registry, state_table):
    registered = register(fns, s3, registry, make_run())
    decide(fns, registry, registered, approval={"decided_at": "now"})
    with pytest.raises(Exception) as refused:
        fns["deploy_production"].deploy_production(
            state_table, registry, s3, {"run": make_run(), "names": {"production_endpoint": "other-endpoint"},
                                        "model_package_arn": registered["model_package_arn"]},
            table=TABLE, bake_seconds=0, alarm_names=[], role_arn=ROLE_ARN)
    assert type(refused.value).__name__ == "ModelPackageMismatch"


# ---------------------------------------------------------------- rollback

def two_deployed_versions(fns, s3, registry, state_table) -> list[dict]:
    versions = []
    for index, run in enumerate((make_run("car-first-000000000001", "2025-01-01T00:00:00Z"),
                                 make_run("car-second-00000000002", "2025-01-02T00:00:00Z"))):
        registered = register(fns, s3, registry, run)
        decide(fns, registry, registered, approval={"decided_at": f"day {index + 1}"})
        deploy(fns, s3, registry, state_table, registered, run)
        versions.append(registered)
    return versions


def prepare(fns, s3, registry, request, dataset=None) -> dict:
    # dataset: what ResolveRollbackDataset answered for the request.
    return fns["prepare_rollback"].prepare_rollback(
        registry, s3, {"run": make_run("rollback-v1-0001"), "rollback": request,
                       "dataset": dataset or {"name": "car", "production_endpoint": ENDPOINT}}, 30, 3600)


def test_a_rollback_is_prepared_with_both_versions_figures_and_lineage(fns, s3, registry, state_table):
    first, _ = two_deployed_versions(fns, s3, registry, state_table)
    prepared = prepare(fns, s3, registry, {"model_package_version": 1})

    assert prepared["registry"] == {**{k: first[k] for k in ("model_package_arn", "model_package_group")},
                                    "version": 1, "status": "Approved", "kind": "rollback"}
    summary = prepared["summary"]
    assert summary["target"]["run_id"] == "car-first-000000000001"
    assert summary["target"]["qa"]["accuracy"] == 0.97
    assert summary["target"]["input_version_id"] == "v-42"
    assert summary["target"]["approval_description"] == "Approved on the approval page at day 1."
    assert (summary["serving"]["version"], summary["serving"]["run_id"]) == (2, "car-second-00000000002")


@pytest.mark.parametrize("request_, error", [
    ({"model_package_version": 2}, "AlreadyServing"),
    ({"model_package_version": 7}, "ModelPackageNotFound"),
    ({"model_package_version": 0}, "InvalidRollback"),
    ({}, "InvalidRollback"),
])
def test_a_rollback_that_cannot_be_done_is_refused_with_a_reason(fns, s3, registry, state_table, request_, error):
    two_deployed_versions(fns, s3, registry, state_table)
    with pytest.raises(Exception) as refused:
        prepare(fns, s3, registry, request_)
    assert type(refused.value).__name__ == error


def test_a_rollback_of_another_dataset_uses_that_datasets_endpoint_and_group(fns, s3, registry, state_table):
    # Version 1 exists in car's group only: penguins' endpoint has no registry yet, so nothing is deployed.
    two_deployed_versions(fns, s3, registry, state_table)
    with pytest.raises(Exception) as refused:
        prepare(fns, s3, registry, {"model_package_version": 1, "dataset": "penguins"},
                dataset={"name": "penguins", "production_endpoint": "penguins-prod"})
    assert type(refused.value).__name__ == "ModelPackageNotFound"
    assert "penguins-prod" in str(refused.value)


def test_a_rollback_to_a_version_whose_files_expired_is_refused(fns, s3, registry, state_table):
    two_deployed_versions(fns, s3, registry, state_table)
    s3.delete_object(Bucket=ARTIFACTS, Key="models/car-first-000000000001/preprocess/model.tar.gz")
    with pytest.raises(Exception) as refused:
        prepare(fns, s3, registry, {"model_package_version": 1})
    assert type(refused.value).__name__ == "ModelFilesExpired"
    assert "SupersededModelRetentionDays" in str(refused.value)
