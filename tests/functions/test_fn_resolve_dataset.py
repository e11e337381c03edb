"""resolve_dataset: the run's dataset from the upload key (or the console's input),
its spec in the artifacts bucket, and its own production endpoint; an unknown
dataset fails at once with a message that says what to do."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from lambda_fixtures import ARTIFACTS, REGION, make_run, put


@pytest.fixture
def resolve(load_function, monkeypatch):
    for name, value in {"ARTIFACTS_BUCKET": ARTIFACTS, "INPUT_PREFIX": "input/", "DEFAULT_DATASET": "car",
                        "PRODUCTION_ENDPOINT_NAME": "car-evaluation", "PRODUCTION_ENDPOINT_SUFFIX": "-prod"}.items():
        monkeypatch.setenv(name, value)
    return load_function("resolve_dataset")


@pytest.fixture
def specs(s3):
    for name in ("car", "penguins", "diabetes"):
        put(s3, f"s3://{ARTIFACTS}/deps/datasets/{name}.json", {"name": name, "columns": []})
    return s3


def run_for(key: str) -> dict:
    return {**make_run(), "input_uri": f"s3://input-bucket/{key}"}


@pytest.mark.parametrize("key, dataset, endpoint", [
    ("input/car.data", "car", "car-evaluation"),
    ("input/car/car.data", "car", "car-evaluation"),
    ("input/penguins/penguins.csv", "penguins", "penguins-prod"),
    ("input/diabetes/2025/export.csv", "diabetes", "diabetes-prod"),
])
def test_the_upload_key_names_the_dataset_and_its_endpoint(resolve, specs, context, key, dataset, endpoint):
    result = resolve.lambda_handler({"run": run_for(key), "input": {"input_uri": "ignored"}}, context)
    assert result == {"name": dataset, "spec_uri": f"s3://{ARTIFACTS}/deps/datasets/{dataset}.json",
                      "production_endpoint": endpoint}


def test_the_execution_input_may_name_the_dataset(resolve, specs, context):
    result = resolve.lambda_handler({"run": run_for("elsewhere/x.csv"), "input": {"dataset": "penguins"}}, context)
    assert result["name"] == "penguins" and result["production_endpoint"] == "penguins-prod"


@pytest.mark.parametrize("request_, dataset, endpoint", [
    ({"model_package_version": 1}, "car", "car-evaluation"),
    ({"model_package_version": 1, "dataset": "penguins"}, "penguins", "penguins-prod"),
])
def test_a_rollback_names_its_dataset_or_is_the_default_datasets(resolve, specs, context, request_, dataset, endpoint):
    # A rollback run has no upload (InitializeRollback's input_uri is "rollback"): its request decides.
    run = {**make_run(), "input_uri": "rollback"}
    result = resolve.lambda_handler({"run": run, "input": {"rollback": request_}}, context)
    assert (result["name"], result["production_endpoint"]) == (dataset, endpoint)


def test_an_unknown_dataset_names_itself_where_specs_live_and_which_exist(resolve, specs, context):
    with pytest.raises(Exception) as raised:
        resolve.lambda_handler({"run": run_for("input/wine/wine.csv"), "input": {}}, context)
    assert type(raised.value).__name__ == "UnknownDataset"
    message = str(raised.value)
    assert "dataset 'wine' has no spec at s3://artifacts-bucket/deps/datasets/wine.json" in message
    assert "datasets there now: car, diabetes, penguins" in message
    assert "datasets/wine.json" in message and "make deploy" in message


@pytest.mark.parametrize("dataset", ["My Data", "Penguins", "-x", "a" * 33, "../car", ""])
def test_a_folder_that_is_no_dataset_name_is_unknown(resolve, specs, context, dataset):
    with pytest.raises(Exception, match="is not a dataset name") as raised:
        resolve.lambda_handler({"run": run_for("input/x.csv"), "input": {"dataset": dataset}}, context)
    assert type(raised.value).__name__ == "UnknownDataset"


def test_a_spec_that_names_another_dataset_is_refused(resolve, s3, context):
    put(s3, f"s3://{ARTIFACTS}/deps/datasets/penguins.json", {"name": "car"})
    with pytest.raises(Exception, match="names dataset 'car', not 'penguins'") as raised:
        resolve.lambda_handler({"run": run_for("input/penguins/p.csv"), "input": {}}, context)
    assert type(raised.value).__name__ == "DatasetSpecInvalid"


def test_a_spec_that_is_not_json_is_refused(resolve, s3, context):
    put(s3, f"s3://{ARTIFACTS}/deps/datasets/penguins.json", b"{not json")
    with pytest.raises(Exception, match="not valid JSON") as raised:
        resolve.lambda_handler({"run": run_for("input/penguins/p.csv"), "input": {}}, context)
    assert type(raised.value).__name__ == "DatasetSpecInvalid"


def test_a_403_for_a_missing_spec_is_told_apart_by_listing(resolve):
    """S3 answers a missing key with 403 when ListBucket does not cover it: the listing decides."""
    s3 = boto3.client("s3", region_name=REGION)
    with Stubber(s3) as stub:
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", http_status_code=403)
        listing = {"Contents": [{"Key": "deps/datasets/car.json", "Size": 10}], "KeyCount": 1}
        stub.add_response("list_objects_v2", listing, {"Bucket": ARTIFACTS, "Prefix": "deps/datasets/", "MaxKeys": 1000})
        stub.add_response("list_objects_v2", listing, {"Bucket": ARTIFACTS, "Prefix": "deps/datasets/", "MaxKeys": 1000})
        with pytest.raises(Exception, match="'wine' has no spec") as raised:
            resolve.resolve_dataset(s3, {"run": run_for("input/wine/w.csv")}, ARTIFACTS, "input/", "car",
                                    "car-evaluation", "-prod")
        stub.assert_no_pending_responses()
    assert type(raised.value).__name__ == "UnknownDataset"


def test_a_dataset_whose_endpoint_would_be_the_default_ones_is_a_configuration_error(resolve, s3, context, monkeypatch):
    monkeypatch.setenv("PRODUCTION_ENDPOINT_NAME", "penguins-prod")
    put(s3, f"s3://{ARTIFACTS}/deps/datasets/penguins.json", {"name": "penguins"})
    with pytest.raises(Exception, match="penguins-prod") as raised:
        resolve.lambda_handler({"run": run_for("input/penguins/p.csv"), "input": {}}, context)
    assert type(raised.value).__name__ == "ConfigurationError"


@pytest.mark.parametrize("suffix", ["prod", "-Prod", "-qa", "-x-qa", "-" + "a" * 24])
def test_a_suffix_that_could_meet_qa_endpoints_or_break_names_is_refused(resolve, specs, context, monkeypatch, suffix):
    monkeypatch.setenv("PRODUCTION_ENDPOINT_SUFFIX", suffix)
    with pytest.raises(Exception, match="PRODUCTION_ENDPOINT_SUFFIX") as raised:
        resolve.lambda_handler({"run": run_for("input/car.data"), "input": {}}, context)
    assert type(raised.value).__name__ == "ConfigurationError"


def test_every_endpoint_name_is_a_valid_sagemaker_name_that_never_looks_like_qa(load_function):
    from pipeline_common.datasets import production_endpoint_for
    from pipeline_common.names import is_sagemaker_name

    longest = "a" * 32
    endpoint = production_endpoint_for(longest, "car", "car-evaluation", "-" + "b" * 23)
    assert is_sagemaker_name(endpoint) and len(endpoint) <= 63
    assert not production_endpoint_for("x-qa", "car", "car-evaluation", "-prod").endswith("-qa")


def test_the_name_rule_is_the_one_the_deploy_script_and_local_mode_apply(load_function):
    """Three places check a dataset name (the Lambdas, make deploy, make local): one rule."""
    import re

    from localmode import runner
    from pipeline_common.datasets import DATASET_NAME
    from scripts import deploy

    assert DATASET_NAME.pattern == deploy.DATASET_NAME.pattern == runner.DATASET_NAME.pattern
    template_rule = re.compile(__import__("localmode.stack", fromlist=["x"]).load_template()
                               ["Parameters"]["DefaultDataset"]["AllowedPattern"])
    for name in ("car", "breast-cancer", "a", "a" * 32, "Car", "-a", "a" * 33, "a_b"):
        assert bool(template_rule.fullmatch(name)) == bool(DATASET_NAME.fullmatch(name)), name


def test_the_templates_allowed_pattern_is_the_name_rule_itself():
    """CloudFormation checks DefaultDataset against its AllowedPattern and reads nothing else, so the template
    repeats the rule: the same text as dataset_spec's, anchored."""
    from dataset_spec import DATASET_NAME_PATTERN

    parameter = __import__("localmode.stack", fromlist=["x"]).load_template()["Parameters"]["DefaultDataset"]
    assert parameter["AllowedPattern"] == f"^{DATASET_NAME_PATTERN}$"


def test_json_crosses_the_boundary(resolve, specs, context):
    json.dumps(resolve.lambda_handler({"run": run_for("input/car.data"), "input": {}}, context))
