"""register_model one decision at a time: the exact CreateModelPackage request (what
production would run, the run's lineage as metadata, the QA report as its metrics, status
PendingManualApproval, the run's idempotency token), the documents it leaves next to the
model files, and what a retry or a clash does.

SageMaker is botocore's Stubber on a real client, each request expected exactly
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateModelPackage.html;
a Stubber with nothing queued fails any call, so "no call" is checked too). S3 is moto:
the report copy and the lineage document are read back whole.
"""
from __future__ import annotations

import hashlib
import json

import pytest

from lambda_fixtures import ACCOUNT, ARTIFACTS, REGION, make_run, put, stubbed_client
from pipeline_common.errors import InvalidEvent

ENDPOINT = "car-evaluation"
RUN = make_run("car-0123456789ab")
MODEL = "car-0123456789ab-model"
GROUP_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/{ENDPOINT}"
ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{ENDPOINT}/3"
OTHER_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{ENDPOINT}/2"
SCHEMA = json.dumps({"input": [], "output": {}})
MODELS = f"s3://{ARTIFACTS}/models/{RUN['run_id']}/"
REGISTRY = MODELS + "registry/"
TOKEN = "reg-" + hashlib.sha256(RUN["run_id"].encode()).hexdigest()[:32]
QA = {"metric": "accuracy", "value": 0.97, "accuracy": 0.97, "threshold": 0.95, "rows": 259, "passed": True,
      "labels": ["acc", "unacc"], "report_uri": RUN["run_prefix"] + "qa/report.json"}

# What the run's SageMaker model runs (the fields SageMaker adds or the package does not take are dropped).
MODEL_CONTAINERS = [
    {"Image": "sparkml:3.3", "ModelDataUrl": MODELS + "preprocess/model.tar.gz",
     "Environment": {"SAGEMAKER_SPARKML_SCHEMA": SCHEMA}, "ContainerHostname": "preprocess"},
    {"Image": "xgboost:1.7-1", "ModelDataUrl": MODELS + "xgboost/model.tar.gz", "Environment": {}},
    {"Image": "sparkml:3.3", "ModelDataUrl": MODELS + "postprocess/model.tar.gz",
     "Environment": {"SAGEMAKER_SPARKML_SCHEMA": SCHEMA}, "Mode": "SingleModel"},
]
PACKAGE_CONTAINERS = [
    {"Image": "sparkml:3.3", "ModelDataUrl": MODELS + "preprocess/model.tar.gz", "Environment": {"SAGEMAKER_SPARKML_SCHEMA": SCHEMA}},
    {"Image": "xgboost:1.7-1", "ModelDataUrl": MODELS + "xgboost/model.tar.gz"},
    {"Image": "sparkml:3.3", "ModelDataUrl": MODELS + "postprocess/model.tar.gz", "Environment": {"SAGEMAKER_SPARKML_SCHEMA": SCHEMA}},
]


@pytest.fixture
def register_model(load_function):
    return load_function("register_model")


@pytest.fixture
def stored(s3):
    """The model files create_model copied (with their origin) and the run's QA report."""
    for part in ("preprocess", "xgboost", "postprocess"):
        s3.put_object(Bucket=ARTIFACTS, Key=f"models/{RUN['run_id']}/{part}/model.tar.gz", Body=b"model",
                      Metadata={"source": f"{RUN['run_prefix']}{part}"})
    put(s3, QA["report_uri"], {"accuracy": 0.97, "labels": ["acc", "unacc"]})
    return s3


def event(**changes) -> dict:
    return {"run": RUN, "names": {"production_endpoint": ENDPOINT, "training_job": "car-0123456789ab-train"},
            "manifest_uri": RUN["run_prefix"] + "manifest.json", "model_name": MODEL, "glue_job_run_id": "jr_0123",
            "qa": QA, "execution_input": {"input_uri": RUN["input_uri"], "input_version_id": "v-42", "input_etag": "abc"},
            **changes}


def lineage(**changes) -> dict:
    """The run's lineage as register_model must record it (raw; escaped in the metadata)."""
    document = {
        "run_id": RUN["run_id"], "execution_arn": RUN["execution_arn"], "started_at": RUN["started_at"],
        "input_uri": RUN["input_uri"], "input_version_id": "v-42", "input_etag": "abc",
        "manifest_uri": RUN["run_prefix"] + "manifest.json", "glue_job_run_id": "jr_0123",
        "training_job": "car-0123456789ab-train", "model_name": MODEL, "production_endpoint": ENDPOINT,
        "qa_report_uri": REGISTRY + "qa-report.json", "lineage_uri": REGISTRY + "lineage.json",
        # The QA figures that are single values; booleans, lists and the runs/ report address are not lineage.
        "qa_accuracy": 0.97, "qa_metric": "accuracy", "qa_rows": 259, "qa_threshold": 0.95, "qa_value": 0.97,
    }
    for index, container in enumerate(PACKAGE_CONTAINERS, start=1):
        document[f"container_{index}_image"] = container["Image"]
        document[f"container_{index}_model"] = container["ModelDataUrl"]
    for index, part in enumerate(("preprocess", "xgboost", "postprocess"), start=1):
        document[f"container_{index}_source"] = f"{RUN['run_prefix']}{part}"
    document.update(changes)
    return document


def metadata(document: dict) -> dict:
    return {key: str(value) for key, value in document.items() if value is not None}


def create_request(**changes) -> dict:
    request = {
        "ModelPackageGroupName": ENDPOINT,
        "ModelPackageDescription": f"Run {RUN['run_id']} on {RUN['input_uri']}: QA accuracy 0.97 on 259 held-out rows",
        "InferenceSpecification": {
            "Containers": PACKAGE_CONTAINERS, "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"], "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"]},
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                         "S3Uri": REGISTRY + "qa-report.json"}}},
        "CustomerMetadataProperties": metadata(lineage()),
        "ModelApprovalStatus": "PendingManualApproval",
        "ClientToken": TOKEN,
        "MetadataProperties": {"GeneratedBy": RUN["execution_arn"]},
    }
    request.update(changes)
    return {k: v for k, v in request.items() if v is not None}


def described_package(arn=ARN, run_id=RUN["run_id"], containers=PACKAGE_CONTAINERS, status="PendingManualApproval",
                      version=3) -> dict:
    return {"ModelPackageName": ENDPOINT, "ModelPackageGroupName": ENDPOINT, "ModelPackageVersion": version,
            "ModelPackageArn": arn, "CreationTime": "2025-01-02T03:04:05Z", "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []}, "ModelApprovalStatus": status,
            "InferenceSpecification": {"Containers": containers, "SupportedContentTypes": ["text/csv"],
                                       "SupportedResponseMIMETypes": ["text/csv"]},
            "CustomerMetadataProperties": {"run_id": run_id}}


def expect_model(stub, model=None) -> None:
    stub.add_response("describe_model", model or {"ModelName": MODEL, "CreationTime": "2025-01-02T03:04:05Z",
                                                  "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{MODEL}",
                                                  "Containers": MODEL_CONTAINERS},
                      {"ModelName": MODEL})


def expect_group(stub, exists=True, create_error=None) -> None:
    if exists:
        stub.add_response("describe_model_package_group", {
            "ModelPackageGroupName": ENDPOINT, "ModelPackageGroupArn": GROUP_ARN, "CreationTime": "2025-01-01T00:00:00Z",
            "CreatedBy": {}, "ModelPackageGroupStatus": "Completed"}, {"ModelPackageGroupName": ENDPOINT})
        return
    stub.add_client_error("describe_model_package_group", "ValidationException",
                          f"ModelPackageGroup {GROUP_ARN} does not exist.", expected_params={"ModelPackageGroupName": ENDPOINT})
    create = {"ModelPackageGroupName": ENDPOINT,
              "ModelPackageGroupDescription": f"Models registered for production endpoint {ENDPOINT} by the pipeline"}
    if create_error:
        stub.add_client_error("create_model_package_group", "ValidationException", create_error, expected_params=create)
    else:
        stub.add_response("create_model_package_group", {"ModelPackageGroupArn": GROUP_ARN}, create)


def expect_recent(stub, packages: list[dict]) -> None:
    stub.add_response("list_model_packages", {"ModelPackageSummaryList": [
        {"ModelPackageArn": p["ModelPackageArn"], "CreationTime": "2025-01-02T03:04:05Z", "ModelPackageStatus": "Completed"}
        for p in packages]}, {"ModelPackageGroupName": ENDPOINT, "SortBy": "CreationTime", "SortOrder": "Descending",
                              "MaxResults": 20})
    for package in packages:
        stub.add_response("describe_model_package", package, {"ModelPackageName": package["ModelPackageArn"]})


def expect_create(stub, request: dict, created: dict | None = None) -> None:
    stub.add_response("create_model_package", {"ModelPackageArn": ARN}, request)
    stub.add_response("describe_model_package", created or described_package(), {"ModelPackageName": ARN})


def registered(register_model, s3, sagemaker, the_event=None):
    return register_model.register_model(s3, sagemaker, the_event or event(), instance_type="ml.m5.large")


RESULT = {"model_package_arn": ARN, "model_package_group": ENDPOINT, "version": 3,
          "status": "PendingManualApproval", "kind": "registered"}


# ------------------------------------------------------------------ a first registration

def test_a_run_is_registered_with_exactly_its_model_lineage_and_metrics(register_model, stored):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_model(stub)
        expect_group(stub)
        expect_recent(stub, [described_package(OTHER_ARN, "car-older-000000000001", version=2)])
        expect_create(stub, create_request())
        assert registered(register_model, stored, sagemaker) == RESULT

    # The metrics and the exact lineage sit next to the model files, out of runs/'s expiry.
    copy = stored.get_object(Bucket=ARTIFACTS, Key=f"models/{RUN['run_id']}/registry/qa-report.json")
    assert json.loads(copy["Body"].read()) == {"accuracy": 0.97, "labels": ["acc", "unacc"]}
    assert copy["ContentType"] == "application/json"
    document = stored.get_object(Bucket=ARTIFACTS, Key=f"models/{RUN['run_id']}/registry/lineage.json")
    assert json.loads(document["Body"].read()) == {**lineage(), "qa": QA, "containers": PACKAGE_CONTAINERS}


@pytest.mark.parametrize("create_error", [None, f"Model Package Group {ENDPOINT} already exists."],
                         ids=["created-first", "created-meanwhile-by-another-run"])
def test_a_new_endpoints_group_is_created_or_the_one_created_meanwhile_is_used(register_model, stored, create_error):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_model(stub)
        expect_group(stub, exists=False, create_error=create_error)
        expect_recent(stub, [])
        expect_create(stub, create_request())
        assert registered(register_model, stored, sagemaker) == RESULT


def test_a_refused_group_creation_fails_the_registration(register_model, stored):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_model(stub)
        expect_group(stub, exists=False, create_error="Value 'car_evaluation' failed to satisfy constraint")
        with pytest.raises(Exception) as refused:
            registered(register_model, stored, sagemaker)
        assert "failed to satisfy constraint" in str(refused.value)


def test_the_description_names_the_gates_metric_and_escapes_reach_only_the_metadata(register_model, stored):
    # A regression run: r2 is its metric; an odd input key is written escaped in the metadata and as it is elsewhere.
    odd = "s3://input-bucket/input/car data,v2 (1)+é%.csv"
    qa = {"metric": "r2", "value": 0.81, "rows": 150, "report_uri": QA["report_uri"]}
    run = dict(RUN, input_uri=odd)
    document = lineage(input_uri=odd, qa_accuracy=None, qa_threshold=None, qa_metric="r2", qa_value=0.81, qa_rows=150,
                       input_version_id=None, input_etag=None)
    expected = metadata(document)
    expected["input_uri"] = "s3://input-bucket/input/car data=2Cv2 =281=29+é=25.csv"
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_model(stub)
        expect_group(stub)
        expect_recent(stub, [])
        expect_create(stub, create_request(
            ModelPackageDescription=f"Run {RUN['run_id']} on {odd}: QA r2 0.81 on 150 held-out rows",
            CustomerMetadataProperties=expected))
        registered(register_model, stored, sagemaker, event(run=run, qa=qa, execution_input="not an object"))
    saved = json.loads(stored.get_object(Bucket=ARTIFACTS, Key=f"models/{RUN['run_id']}/registry/lineage.json")["Body"].read())
    assert saved["input_uri"] == odd and saved["input_version_id"] is None


def test_a_run_without_an_execution_arn_is_registered_without_generated_by(register_model, stored):
    run = {k: v for k, v in RUN.items() if k != "execution_arn"}
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_model(stub)
        expect_group(stub)
        expect_recent(stub, [])
        expect_create(stub, create_request(MetadataProperties=None,
                                           CustomerMetadataProperties=metadata(lineage(execution_arn=None))))
        assert registered(register_model, stored, sagemaker, event(run=run)) == RESULT


def test_a_one_container_model_is_registered_as_one_container(register_model, stored):
    container = PACKAGE_CONTAINERS[1]
    model = {"ModelName": MODEL, "CreationTime": "2025-01-02T03:04:05Z",
             "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{MODEL}", "PrimaryContainer": container}
    document = {k: v for k, v in lineage().items() if not k.startswith(("container_2", "container_3"))}
    document.update({"container_1_image": container["Image"], "container_1_model": container["ModelDataUrl"],
                     "container_1_source": f"{RUN['run_prefix']}xgboost"})
    request = create_request(CustomerMetadataProperties=metadata(document))
    request["InferenceSpecification"] = {**request["InferenceSpecification"], "Containers": [container]}
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_model(stub, model)
        expect_group(stub)
        expect_recent(stub, [])
        expect_create(stub, request, described_package(containers=[container]))
        assert registered(register_model, stored, sagemaker) == RESULT


def test_a_container_without_model_files_is_registered_without_a_file_or_origin(register_model, stored):
    # An image that needs no model files (its ModelDataUrl absent) between two that have them.
    containers = [PACKAGE_CONTAINERS[0], {"Image": "passthrough:1"}, PACKAGE_CONTAINERS[2]]
    model = {"ModelName": MODEL, "CreationTime": "2025-01-02T03:04:05Z",
             "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{MODEL}", "Containers": containers}
    document = lineage(container_2_image="passthrough:1", container_2_model=None, container_2_source=None)
    request = create_request(CustomerMetadataProperties=metadata(document))
    request["InferenceSpecification"] = {**request["InferenceSpecification"], "Containers": containers}
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_model(stub, model)
        expect_group(stub)
        expect_recent(stub, [])
        expect_create(stub, request, described_package(containers=containers))
        assert registered(register_model, stored, sagemaker) == RESULT


# ------------------------------------------------------------------ retries and clashes

def test_a_retry_returns_the_runs_version_and_registers_nothing(register_model, stored):
    approved = described_package(status="Approved")
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_model(stub)
        expect_group(stub)
        expect_recent(stub, [described_package(OTHER_ARN, "car-newer-000000000004", version=4), approved])
        assert registered(register_model, stored, sagemaker) == {**RESULT, "status": "Approved"}
    # Nothing was written for it either.
    assert stored.list_objects_v2(Bucket=ARTIFACTS, Prefix=f"models/{RUN['run_id']}/registry/")["KeyCount"] == 0


def test_a_version_of_the_run_with_other_containers_is_a_conflict(register_model, stored):
    # The same run id but another model (a rerun after the model was recreated): never taken for this one.
    other = [dict(c, ModelDataUrl=c["ModelDataUrl"].replace("models/", "models-old/")) for c in PACKAGE_CONTAINERS]
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_model(stub)
        expect_group(stub)
        expect_recent(stub, [described_package(containers=other)])
        with pytest.raises(register_model.RegistrationConflict) as refused:
            registered(register_model, stored, sagemaker)
    assert str(refused.value) == f"model package {ARN} is not run {RUN['run_id']}'s model {MODEL}"


def test_a_package_another_run_registered_under_the_token_is_a_conflict(register_model, stored):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        expect_model(stub)
        expect_group(stub)
        expect_recent(stub, [])
        expect_create(stub, create_request(), described_package(run_id="car-other-000000000009"))
        with pytest.raises(register_model.RegistrationConflict) as refused:
            registered(register_model, stored, sagemaker)
    assert str(refused.value) == f"model package {ARN} is not run {RUN['run_id']}'s model {MODEL}"


# ------------------------------------------------------------------ refusals

def test_a_missing_model_registers_nothing(register_model, stored):
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_client_error("describe_model", "ValidationException", f"Could not find model \"{MODEL}\".",
                              expected_params={"ModelName": MODEL})
        with pytest.raises(register_model.ModelNotFound) as refused:
            registered(register_model, stored, sagemaker)
    assert str(refused.value) == f"model {MODEL} of run {RUN['run_id']} does not exist; nothing to register"


@pytest.mark.parametrize("changes, why", [
    ({"run": None}, "'NoneType' object is not subscriptable"),
    ({"run": {}}, "'run_id'"),
    ({"run": dict(RUN, run_id="")}, "'run.run_id'"),
    ({"run": dict(RUN, run_id=7)}, "'run.run_id'"),
    ({"names": {}}, "'production_endpoint'"),
    ({"model_name": None, "qa": {}}, "'report_uri'"),
    ({"qa": {"report_uri": "runs/qa/report.json"}}, "not an S3 URI: 'runs/qa/report.json'"),
])
def test_an_incomplete_event_is_refused_before_any_call(register_model, changes, why):
    with stubbed_client("sagemaker") as (sagemaker, _), stubbed_client("s3") as (s3, _):
        with pytest.raises(InvalidEvent) as refused:
            registered(register_model, s3, sagemaker, event(**changes))
    assert str(refused.value) == \
        f"the event needs run.run_id, names.production_endpoint, model_name and qa.report_uri ({why})"
