"""pipeline_common.manifest: every function after preprocessing trusts the
manifest for the dataset's shape, so what it accepts is what reaches training,
the model and the QA gate. A manifest it wrongly refuses stops a good run; one
it wrongly accepts fails later with a TypeError (or trains on the wrong
labels) instead of a clear ManifestInvalid naming the file and the field.
moto at the S3 boundary; the manifests are the contract shapes the Glue job
writes (lambda_fixtures.contract_manifest), changed one field at a time."""
from __future__ import annotations

import copy
import re

import pytest
from botocore.exceptions import ClientError

from lambda_fixtures import ARTIFACTS, contract_manifest, make_run, put
from pipeline_common.errors import InvalidEvent, ManifestInvalid, ManifestMissing
from pipeline_common.manifest import (
    feature_names,
    is_classification,
    load_manifest,
    manifest_uri_for,
    problem_type,
    validate_manifest,
)

URI = "s3://artifacts/runs/r/manifest.json"
RUN = make_run("run-1")


def manifest(kind: str = "multiclass", **changes) -> dict:
    return copy.deepcopy(contract_manifest(kind, RUN, **changes))


def refused(document, match: str, run_id=None) -> str:
    with pytest.raises(ManifestInvalid) as raised:
        validate_manifest(document, URI, run_id)
    message = str(raised.value)
    assert message.startswith(f"manifest {URI}: ")
    assert re.search(match, message), message
    return message


# ---------------------------------------------------------------- where and what

@pytest.mark.parametrize("prefix, expected", [("s3://b/runs/r/", "s3://b/runs/r/"), ("s3://b/runs/r", "s3://b/runs/r/")])
def test_the_manifest_folder_ends_with_one_slash(prefix, expected):
    assert manifest_uri_for({"run_prefix": prefix}) == expected


@pytest.mark.parametrize("run", [None, "s3://b/r/", {}, {"run_prefix": 5}, {"run_prefix": "b/runs/r/"},
                                 {"run_prefix": "https://b/r/"}])
def test_a_run_without_an_s3_prefix_is_an_invalid_event_naming_it(run):
    with pytest.raises(InvalidEvent, match=r"run\.run_prefix must be an s3:// URI, got "):
        manifest_uri_for(run)
    if isinstance(run, dict) and "run_prefix" in run:
        with pytest.raises(InvalidEvent, match=re.escape(repr(run["run_prefix"]))):
            manifest_uri_for(run)


def test_a_manifest_without_problem_type_is_multiclass():
    # Written before issue 11: every label categorical and listed.
    old = manifest()
    del old["problem_type"]
    assert problem_type(old) == "multiclass" and is_classification(old)
    validate_manifest(old, URI)
    assert problem_type({"problem_type": None}) == "multiclass"
    assert problem_type({"problem_type": "binary"}) == "binary" and is_classification({"problem_type": "binary"})
    assert not is_classification({"problem_type": "regression"})


def test_feature_names_fall_back_to_the_specs_features_in_order():
    old = manifest()
    del old["feature_names"]
    old["spec"] = {"features": [{"name": "buying"}, {"name": "safety"}]}
    assert feature_names(old) == ["buying", "safety"]
    validate_manifest(old, URI)
    assert feature_names(manifest()) == ["buying", "maint", "doors", "persons", "lug_boot", "safety"]


# ---------------------------------------------------------------- loading

def test_load_returns_the_checked_manifest_of_this_run(s3):
    document = contract_manifest("binary", make_run("run-1"))
    uri = f"s3://{ARTIFACTS}/runs/run-1/manifest.json"
    put(s3, uri, document)
    assert load_manifest(s3, uri, run_id="run-1") == document
    assert load_manifest(s3, uri) == document


def test_a_manifest_of_another_run_is_refused_naming_both(s3):
    uri = f"s3://{ARTIFACTS}/runs/run-1/manifest.json"
    put(s3, uri, contract_manifest("binary", make_run("run-0")))
    with pytest.raises(ManifestInvalid, match=re.escape(f"manifest {uri}: run_id is 'run-0', expected 'run-1'")):
        load_manifest(s3, uri, run_id="run-1")


def test_a_missing_manifest_says_preprocessing_wrote_none(s3):
    uri = f"s3://{ARTIFACTS}/runs/run-1/manifest.json"
    with pytest.raises(ManifestMissing, match=re.escape(f"no manifest at {uri}: the preprocessing step did not write one")):
        load_manifest(s3, uri)


@pytest.mark.parametrize("body, problem", [(b"{not json", "is not valid JSON"), (b"\xff\xfe{}", "is not valid JSON"),
                                           (b"[1, 2]", "is not a JSON object")])
def test_a_manifest_that_is_not_a_json_object_is_invalid_not_a_crash(s3, body, problem):
    uri = f"s3://{ARTIFACTS}/runs/run-1/manifest.json"
    put(s3, uri, body)
    with pytest.raises(ManifestInvalid, match=re.escape(f"manifest {uri}") + ".*" + problem):
        load_manifest(s3, uri)


class _DeniedS3:
    """S3 answering GetObject with an error, and a listing with or without the key (no moto
    equivalent: moto does not model a prefix-conditioned ListBucket grant)."""

    def __init__(self, code: str, listed: bool):
        self.code, self.listed = code, listed

    def get_object(self, **_):
        raise ClientError({"Error": {"Code": self.code, "Message": "..."}}, "GetObject")

    def list_objects_v2(self, Bucket, Prefix, MaxKeys):
        return {"Contents": [{"Key": Prefix}]} if self.listed else {}


def test_access_denied_is_missing_only_when_the_listing_shows_no_manifest():
    with pytest.raises(ManifestMissing):
        load_manifest(_DeniedS3("AccessDenied", listed=False), URI)
    with pytest.raises(ClientError, match="AccessDenied"):
        load_manifest(_DeniedS3("AccessDenied", listed=True), URI)
    # Any other failure is not read as "no manifest" (the run would blame preprocessing).
    with pytest.raises(ClientError, match="SlowDown"):
        load_manifest(_DeniedS3("SlowDown", listed=False), URI)


# ---------------------------------------------------------------- the checks

@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression"])
def test_the_contract_manifests_pass(kind):
    validate_manifest(manifest(kind), URI, "run-1")


def test_the_run_id_is_checked_only_when_given():
    validate_manifest(manifest(run_id="other"), URI)
    refused(manifest(run_id="other"), r"run_id is 'other', expected 'run-1'", run_id="run-1")
    refused(manifest(run_id=None), r"run_id is None, expected 'run-1'", run_id="run-1")


@pytest.mark.parametrize("document", [[], "manifest", None, 3])
def test_not_an_object(document):
    refused(document, r"is not a JSON object$")


def test_an_unknown_problem_type_lists_the_known_ones():
    refused(manifest(problem_type="ranking"), r"problem_type must be one of binary, multiclass, regression, got 'ranking'")


def test_regression_has_no_labels_and_no_num_class_each_checked():
    for change in ({"label_values": ["a", "b"]}, {"num_class": 2}, {"label_values": []}, {"num_class": 0}):
        refused(manifest("regression", **change), "a regression manifest has label_values and num_class null")


def test_two_labels_are_enough():
    two = manifest("binary", label_values=["no", "yes"], num_class=2)
    validate_manifest(two, URI)


@pytest.mark.parametrize("labels", [None, "ab", ["only"], [], ["a", ""], ["a", 1], ["a", "a"], ["a", "b", "a"],
                                    ("a", "b", "c")])
def test_labels_must_be_two_or_more_distinct_non_empty_strings(labels):
    refused(manifest(label_values=labels, num_class=3), "label_values must list at least two distinct non-empty strings")


@pytest.mark.parametrize("num_class", [None, 3, 5, "4", 4.0])
def test_num_class_must_be_the_label_count(num_class):
    refused(manifest(num_class=num_class), re.escape(f"num_class is {num_class!r} but label_values has 4 entries"))


def test_num_class_true_is_not_one():
    # bool is an int in Python; True must not pass as a count (here: labels checked as two).
    refused(manifest("binary", num_class=True), r"num_class is True but label_values has 2 entries")


def test_binary_means_exactly_two_labels():
    refused(manifest("multiclass", label_values=["no", "yes"], num_class=2), r"problem_type multiclass does not fit 2 label values")
    refused(manifest("binary", label_values=["a", "b", "c"], num_class=3), r"problem_type binary does not fit 3 label values")


@pytest.mark.parametrize("width", [None, 0, -1, True, "12", 1.5])
def test_feature_width_must_be_a_positive_integer(width):
    refused(manifest(feature_width=width), re.escape(f"feature_width must be a positive integer, got {width!r}"))


def test_a_feature_width_of_one_is_enough():
    validate_manifest(manifest(feature_width=1), URI)


@pytest.mark.parametrize("names", [[], ["age", ""], ["age", None], "age", {"age": 1}])
def test_feature_names_must_list_non_empty_strings(names):
    refused(manifest(feature_names=names), "feature_names must list the feature columns in model input order")


@pytest.mark.parametrize("spec", [{}, {"features": [{"type": "numeric"}]}, {"features": None}, None])
def test_without_feature_names_a_spec_without_named_features_is_invalid_not_a_crash(spec):
    old = manifest()
    del old["feature_names"]
    old["spec"] = spec
    refused(old, "feature_names must list the feature columns")


@pytest.mark.parametrize("rows", [None, [], "150"])
def test_missing_row_counts_are_invalid_not_a_crash(rows):
    refused(manifest(rows=rows), r"rows is missing$")


@pytest.mark.parametrize("split", ["train", "validation", "test"])
@pytest.mark.parametrize("count", [0, -3, None, True, "150", 1.0])
def test_every_split_needs_rows(split, count):
    document = manifest()
    if count is None:
        del document["rows"][split]
    else:
        document["rows"][split] = count
    refused(document, re.escape(f"rows.{split} is {count!r}: the {split} split has no rows"))


def test_one_row_per_split_is_enough():
    validate_manifest(manifest(rows={"train": 1, "validation": 1, "test": 1}), URI)


@pytest.mark.parametrize("uris", [None, [], "s3://b/"])
def test_missing_uris_are_invalid_not_a_crash(uris):
    refused(manifest(uris=uris), r"uris is missing$")


@pytest.mark.parametrize("name", ["train", "validation", "test", "preprocess_model", "preprocess_schema",
                                  "postprocess_model", "postprocess_schema", "training_output"])
@pytest.mark.parametrize("value", [None, "https://b/k", "s3:///k"])
def test_every_location_must_be_an_s3_uri(name, value):
    document = manifest("binary")
    document["uris"][name] = value
    refused(document, re.escape(f"uris.{name} must be an s3:// URI, got {value!r}"))


@pytest.mark.parametrize("name", ["postprocess_model", "postprocess_schema"])
def test_regression_has_no_postprocess_model(name):
    document = manifest("regression")
    document["uris"][name] = "s3://b/model.tar.gz"
    refused(document, re.escape(f"uris.{name} must be null for regression, got 's3://b/model.tar.gz'"))


@pytest.mark.parametrize("name", ["train", "test", "training_output", "preprocess_model"])
def test_regression_still_needs_its_other_locations(name):
    document = manifest("regression")
    document["uris"][name] = None
    refused(document, re.escape(f"uris.{name} must be an s3:// URI, got None"))


def test_no_quality_gate_is_fine():
    validate_manifest(manifest(quality_gate=None), URI)
    without = manifest()
    del without["quality_gate"]
    validate_manifest(without, URI)


@pytest.mark.parametrize("gate", ["accuracy", ["accuracy"], {}, {"metric": None}, {"metric": 3}])
def test_a_gate_must_name_its_metric(gate):
    refused(manifest(quality_gate=gate), re.escape(f"quality_gate must be an object naming its metric, got {gate!r}"))


@pytest.mark.parametrize("kind, metric", [("regression", "accuracy"), ("multiclass", "roc_auc"), ("binary", "r2"),
                                          ("multiclass", "f1")])
def test_a_gate_metric_must_measure_the_problem_type(kind, metric):
    refused(manifest(kind, quality_gate={"metric": metric}),
            re.escape(f"quality_gate.metric {metric!r} does not measure a {kind} model"))


@pytest.mark.parametrize("threshold", [True, False, "0.9", float("nan"), float("inf"), -float("inf"), [0.9]])
def test_a_gate_threshold_is_a_finite_number_or_null(threshold):
    refused(manifest(quality_gate={"metric": "accuracy", "threshold": threshold}),
            re.escape(f"quality_gate.threshold must be a number or null, got {threshold!r}"))


@pytest.mark.parametrize("threshold", [None, 0.9, 1, 0])
def test_a_numeric_or_null_threshold_is_accepted(threshold):
    validate_manifest(manifest(quality_gate={"metric": "accuracy", "threshold": threshold}), URI)
    validate_manifest(manifest("regression", quality_gate={"metric": "rmse", "threshold": threshold}), URI)
