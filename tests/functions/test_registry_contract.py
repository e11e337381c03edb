"""pipeline_common.registry one function at a time: how the run's lineage is written into
CustomerMetadataProperties (escaped, cut at exactly SageMaker's limit, never through an
escape, readable back), the idempotency token, the descriptions' one-line form, which
version production may run (with the exact message a person reads when it may not), and
the paged listing of a group's versions.

SageMaker's limits are botocore's model of CreateModelPackage / UpdateModelPackage
(CustomerMetadataMap: 50 entries, keys 1-128, values 1-256; ClientToken [a-zA-Z0-9-]{1,36};
ApprovalDescription and ModelPackageDescription 1024), checked against botocore itself in
tests/functions/test_fn_registry.py. AWS calls go through botocore's Stubber with the exact
request expected; a Stubber with nothing queued fails any call, so "no call" is checked too.
"""
from __future__ import annotations

import hashlib
import unicodedata

import pytest

from lambda_fixtures import ACCOUNT, REGION, stubbed_client
from pipeline_common import registry

ENDPOINT = "car-evaluation"
ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/car-evaluation/3"
FILES = ["s3://artifacts/models/run-3/preprocess/model.tar.gz", "s3://artifacts/models/run-3/xgboost/model.tar.gz"]


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ------------------------------------------------------------------ which characters pass as they are

@pytest.mark.parametrize("char", list("_.:/+-") + ["a", "Z", "é", "ß", "7", "²", " ", "\u00a0"])
def test_letters_separators_numbers_and_the_listed_punctuation_pass(char):
    # \p{L}, \p{Z}, \p{N}: a letter, a space separator and a number of any script are kept.
    assert unicodedata.category(char)[0] in "LZN" or char in "_.:/+-"
    assert registry.metadata_char_allowed(char)


@pytest.mark.parametrize("char", ["=", "@", ",", "%", "(", "\t", "\n", "😀", "#", "?", "*"])
def test_other_characters_and_the_escape_mark_itself_are_escaped(char):
    assert not registry.metadata_char_allowed(char)


# ------------------------------------------------------------------ metadata_value

@pytest.mark.parametrize("text, written", [
    ("s3://input-bucket/input/car.data", "s3://input-bucket/input/car.data"),
    ("a=b", "a=3Db"),                          # a literal '=' is escaped, or it would read as an escape
    ("car data,v2 (1)", "car data=2Cv2 =281=29"),
    ("é", "é"),                                # a letter of any script is allowed
    ("tab\there", "tab=09here"),
    ("😀", "=F0=9F=98=80"),                    # every UTF-8 byte of the character
    (0.97, "0.97"),
    (259, "259"),
])
def test_a_value_is_written_with_escapes_for_what_sagemaker_refuses(text, written):
    assert registry.metadata_value(text) == written
    assert registry.metadata_text(written) == str(text)


def test_an_empty_value_is_written_as_a_dash():
    # CustomerMetadataValue needs at least one character.
    assert registry.metadata_value("") == "-"


def test_a_value_of_exactly_256_characters_is_kept_whole():
    text = "k" * 256
    assert registry.metadata_value(text) == text


def test_a_value_one_character_too_long_is_cut_to_exactly_256_with_the_hash_of_the_whole():
    text = "k" * 257
    written = registry.metadata_value(text)
    assert written == "k" * 232 + "@sha256=" + sha16(text)
    assert len(written) == 256


def test_an_escaped_value_is_measured_after_escaping():
    # 86 commas are 258 characters once escaped: too long although the text is 86 characters.
    text = "," * 86
    written = registry.metadata_value(text)
    assert len(written) <= 256 and written.endswith("@sha256=" + sha16(text))
    assert registry.metadata_value("," * 85) == "=2C" * 85


@pytest.mark.parametrize("plain, kept", [
    (229, "a" * 229 + "=2C"),   # the cut falls just after an escape: it is kept whole
    (230, "a" * 230),           # the cut falls after "=2": the half escape is dropped
    (231, "a" * 231),           # the cut falls after "=": the lone mark is dropped
])
def test_a_cut_never_leaves_half_an_escape(plain, kept):
    text = "a" * plain + "," * 10
    written = registry.metadata_value(text)
    assert written == kept + "@sha256=" + sha16(text)
    assert registry.metadata_text(written) == kept.replace("=2C", ",") + "@sha256=" + sha16(text)


def test_a_limit_shorter_than_the_hash_keeps_only_the_hash():
    # With room for one character before the hash, and that one the start of an escape.
    assert registry.metadata_value("," * 20, limit=25) == "@sha256=" + sha16("," * 20)


def test_a_cut_inside_a_multibyte_character_reads_back_with_a_replacement_mark():
    # "€" (a currency sign, escaped) is =E2=82=AC: 232 characters hold 25 of them and "=E2=82=";
    # the lone "=" goes, "=E2=82" stays. Reading it back must not fail on the incomplete
    # character (the rollback's confirmation shows these values).
    text = "€" * 100
    written = registry.metadata_value(text)
    assert written == "=E2=82=AC" * 25 + "=E2=82" + "@sha256=" + sha16(text)
    assert registry.metadata_text(written) == "€" * 25 + "\ufffd" + "@sha256=" + sha16(text)


def test_a_value_that_names_the_hash_mark_itself_reads_back_unchanged():
    # "@sha256=" in a key is data, not the cut's suffix: reading it back must not split there
    # (it did before '@' was escaped: "s3://b/x@sha256=3D0123..." read back as "s3://b/x@sha256=3D0123...").
    text = "s3://b/x@sha256=0123456789abcdef"
    written = registry.metadata_value(text)
    assert written == "s3://b/x=40sha256=3D0123456789abcdef"
    assert registry.metadata_text(written) == text


# ------------------------------------------------------------------ customer_metadata

def test_missing_lineage_is_left_out_and_numbers_are_kept():
    assert registry.customer_metadata({"run_id": "car-1", "input_version_id": None, "input_etag": "",
                                       "qa_rows": 0, "qa_accuracy": 0.5, "input_uri": "s3://b/a b,c"}) == {
        "run_id": "car-1", "qa_rows": "0", "qa_accuracy": "0.5", "input_uri": "s3://b/a b=2Cc"}


def test_fifty_entries_are_accepted_and_fifty_one_refused():
    fifty = {f"key_{n}": "v" for n in range(50)}
    assert len(registry.customer_metadata(fifty)) == 50
    with pytest.raises(ValueError) as refused:
        registry.customer_metadata({**fifty, "one_more": "v"})
    assert str(refused.value) == "51 lineage entries; SageMaker keeps at most 50"
    # Entries left out (None) do not count.
    assert len(registry.customer_metadata({**fifty, "unset": None})) == 50


@pytest.mark.parametrize("key", ["k" * 128, "a", "container_1_source", "qa.value:x/y+z-w"])
def test_valid_keys_are_accepted(key):
    assert registry.customer_metadata({key: "v"}) == {key: "v"}


@pytest.mark.parametrize("key", ["k" * 129, "", "a,b", "a=b", "a@b", "tab\tkey"])
def test_invalid_keys_are_refused_by_name(key):
    with pytest.raises(ValueError) as refused:
        registry.customer_metadata({"run_id": "car-1", key: "v"})
    assert str(refused.value) == f"lineage key {key!r} is not a valid CustomerMetadataProperties key"


# ------------------------------------------------------------------ client_token, one_line, containers

def test_the_client_token_is_the_run_ids_sha256_within_36_characters():
    # Written out: a new recipe after a redeploy would register a retried run a second time.
    token = registry.client_token("car-0123456789ab")
    assert token == "reg-" + hashlib.sha256(b"car-0123456789ab").hexdigest()[:32]
    assert len(token) == 36
    assert registry.client_token("car-0123456789ac") != token


def test_one_line_folds_whitespace_and_drops_control_characters():
    # Cc, Cf, Cs, Co and Cn: controls, format marks, a lone surrogate, private use, unassigned.
    assert registry.one_line("  too\nfew\t\trows \u200b\x07\ud800\ue000\u0378here  ", 100) == "too few rows here"
    assert registry.one_line(0.97, 100) == "0.97"


def test_one_line_keeps_exactly_the_limit_and_cuts_one_more_with_an_ellipsis():
    assert registry.one_line("x" * 20, 20) == "x" * 20
    assert registry.one_line("x" * 21, 20) == "x" * 17 + "..."


def test_comparable_containers_are_image_files_and_environment_in_order():
    containers = [{"Image": "sparkml:3.3", "ModelDataUrl": FILES[0], "Environment": {"A": "1"}, "ContainerHostname": "p"},
                  {"Image": "xgboost:1.7-1", "ModelDataUrl": FILES[1]}]
    assert registry.comparable_containers(containers) == [
        {"Image": "sparkml:3.3", "ModelDataUrl": FILES[0], "Environment": {"A": "1"}},
        {"Image": "xgboost:1.7-1", "ModelDataUrl": FILES[1], "Environment": {}}]
    # No environment and an empty one are the same model.
    assert registry.comparable_containers([{"Image": "i", "Environment": None}]) == \
        registry.comparable_containers([{"Image": "i", "Environment": {}}])
    assert registry.comparable_containers(None) == []


# ------------------------------------------------------------------ deployable_package

def package(status="Approved", group=ENDPOINT, description=None, files=FILES) -> dict:
    described = {
        "ModelPackageName": group, "ModelPackageGroupName": group, "ModelPackageVersion": 3,
        "ModelPackageArn": ARN, "ModelPackageStatus": "Completed", "ModelApprovalStatus": status,
        "ModelPackageStatusDetails": {"ValidationStatuses": []}, "CreationTime": "2025-01-02T03:04:05Z",
        "InferenceSpecification": {"Containers": [{"Image": "sparkml:3.3", "ModelDataUrl": f} for f in files]
                                   + [{"Image": "no-files:1"}],
                                   "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    }
    if description:
        described["ApprovalDescription"] = description
    return described


def expect_listing(s3_stub, uri: str, present: bool) -> None:
    bucket, key = uri[len("s3://"):].split("/", 1)
    contents = [{"Key": key}] if present else [{"Key": key + ".bak"}]
    s3_stub.add_response("list_objects_v2", {"Contents": contents, "KeyCount": 1},
                         {"Bucket": bucket, "Prefix": key, "MaxKeys": 1})


def deployable(description: dict | Exception, listing=(), endpoint=ENDPOINT):
    with stubbed_client("sagemaker") as (sagemaker, sm_stub), stubbed_client("s3") as (s3, s3_stub):
        if isinstance(description, dict):
            sm_stub.add_response("describe_model_package", description, {"ModelPackageName": ARN})
        else:
            sm_stub.add_client_error("describe_model_package", "ValidationException",
                                     f"Model package {ARN} does not exist.", expected_params={"ModelPackageName": ARN})
        for uri, present in listing:
            expect_listing(s3_stub, uri, present)
        return registry.deployable_package(sagemaker, s3, ARN, endpoint)


def test_an_approved_version_whose_files_all_exist_is_deployable():
    described = package()
    # Only containers with model files are checked; each file by its exact key.
    assert deployable(described, [(FILES[0], True), (FILES[1], True)]) == described


def test_a_version_that_does_not_exist_is_named():
    with pytest.raises(registry.ModelPackageNotFound) as refused:
        deployable(RuntimeError())
    assert str(refused.value) == f"model package {ARN} does not exist"


def test_a_version_of_another_endpoints_group_is_refused_before_anything_else():
    with pytest.raises(registry.ModelPackageMismatch) as refused:
        deployable(package(group="penguins-prod"))
    assert str(refused.value) == (f"model package {ARN} belongs to group penguins-prod, not {ENDPOINT} of "
                                  f"production endpoint {ENDPOINT}")


@pytest.mark.parametrize("status, description, why", [
    ("PendingManualApproval", None, ""),
    ("Rejected", "Rejected by the reviewer: too few rows", " (Rejected by the reviewer: too few rows)"),
])
def test_a_version_that_is_not_approved_is_refused_with_its_status_and_reason(status, description, why):
    with pytest.raises(registry.ModelPackageNotApproved) as refused:
        deployable(package(status=status, description=description))
    assert str(refused.value) == f"version 3 of {ENDPOINT} is {status}{why}; production only runs Approved versions"


def test_a_version_whose_files_expired_names_every_missing_file():
    with pytest.raises(registry.ModelFilesExpired) as refused:
        deployable(package(), [(FILES[0], False), (FILES[1], False)])
    assert str(refused.value) == (
        f"version 3 of {ENDPOINT} cannot be deployed: its model files are gone ({FILES[0]}, {FILES[1]}); "
        "the files of a model that left production are kept SupersededModelRetentionDays. Production is unchanged.")


def test_one_missing_file_is_enough_to_refuse():
    with pytest.raises(registry.ModelFilesExpired) as refused:
        deployable(package(), [(FILES[0], True), (FILES[1], False)])
    assert f"gone ({FILES[1]})" in str(refused.value)


# ------------------------------------------------------------------ group_versions

def summary(version: int) -> dict:
    return {"ModelPackageGroupName": ENDPOINT, "ModelPackageVersion": version,
            "ModelPackageArn": f"{ARN[:-2]}/{version}", "CreationTime": "2025-01-02T03:04:05Z",
            "ModelPackageStatus": "Completed", "ModelApprovalStatus": "Approved"}


def test_every_page_of_a_groups_versions_is_read_newest_first():
    request = {"ModelPackageGroupName": ENDPOINT, "SortBy": "CreationTime", "SortOrder": "Descending"}
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [summary(3), summary(2)],
                                                  "NextToken": "page-2"}, request)
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [summary(1)], "NextToken": "page-3"},
                          {**request, "NextToken": "page-2"})
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": []}, {**request, "NextToken": "page-3"})
        assert [v["ModelPackageVersion"] for v in registry.group_versions(sagemaker, ENDPOINT)] == [3, 2, 1]


def test_an_empty_group_has_no_versions():
    with stubbed_client("sagemaker") as (sagemaker, stub):
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": []},
                          {"ModelPackageGroupName": ENDPOINT, "SortBy": "CreationTime", "SortOrder": "Descending"})
        assert registry.group_versions(sagemaker, ENDPOINT) == []
