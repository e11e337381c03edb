"""pipeline_common.s3: S3 URIs, telling "not there" and "denied" apart, and the listing
qa_test reads its test data through. moto at the AWS boundary."""
from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError

from lambda_fixtures import ARTIFACTS
from pipeline_common.s3 import (
    get_json,
    is_access_denied,
    is_missing_object,
    list_data_objects,
    object_listed,
    parse_s3_uri,
    put_json,
)


def client_error(code: str, operation: str = "GetObject") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "..."}}, operation)


@pytest.mark.parametrize("uri", ["s3:///key", "s3://", "https://bucket/key", None])
def test_a_bad_uri_is_named_in_the_error(uri):
    with pytest.raises(ValueError, match=re.escape(f"not an S3 URI: {uri!r}")):
        parse_s3_uri(uri)


def test_missing_object_and_bucket_are_recognised_as_s3_reports_them(s3):
    # GetObject of a missing key: NoSuchKey; of a missing bucket: NoSuchBucket; HeadObject has
    # no body, so botocore reports the status code, "404"
    # (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList).
    errors = []
    for call in (lambda: s3.get_object(Bucket=ARTIFACTS, Key="absent"),
                 lambda: s3.get_object(Bucket="no-such-bucket-here", Key="absent"),
                 lambda: s3.head_object(Bucket=ARTIFACTS, Key="absent")):
        with pytest.raises(ClientError) as caught:
            call()
        errors.append(caught.value)
    assert [e.response["Error"]["Code"] for e in errors] == ["NoSuchKey", "NoSuchBucket", "404"]
    assert all(is_missing_object(e) for e in errors)
    assert not any(is_access_denied(e) for e in errors)


def test_denied_is_not_missing():
    # GetObject without s3:ListBucket on a missing key: AccessDenied; HeadObject: "403".
    for code in ("AccessDenied", "403"):
        assert is_access_denied(client_error(code)) and not is_missing_object(client_error(code))


@pytest.mark.parametrize("code", ["SlowDown", "InternalError", "RequestTimeout"])
def test_other_errors_are_neither(code):
    assert not is_missing_object(client_error(code)) and not is_access_denied(client_error(code))


def test_an_error_without_an_error_block_is_neither():
    # botocore's ClientError tolerates a response without "Error"; the callers re-raise the
    # original error rather than an AttributeError from the check.
    bare = ClientError({}, "GetObject")
    assert is_missing_object(bare) is False
    assert is_access_denied(bare) is False


def test_object_listed_is_false_for_an_empty_listing(s3):
    assert object_listed(s3, f"s3://{ARTIFACTS}/runs/r1/manifest.json") is False
    s3.put_object(Bucket=ARTIFACTS, Key="runs/r1/manifest.json.bak", Body=b"{}")
    assert object_listed(s3, f"s3://{ARTIFACTS}/runs/r1/manifest.json") is False
    s3.put_object(Bucket=ARTIFACTS, Key="runs/r1/manifest.json", Body=b"{}")
    assert object_listed(s3, f"s3://{ARTIFACTS}/runs/r1/manifest.json") is True


def test_put_json_writes_a_readable_json_object(s3):
    # Reports and manifests are opened in the S3 console: served as JSON, one key per line,
    # keys in order so two runs' documents compare line by line.
    uri = f"s3://{ARTIFACTS}/runs/r1/qa/report.json"
    document = {"run_id": "r1", "accuracy": 0.97, "confusion": {"unacc": 1, "acc": 2}, "label": "é"}
    put_json(s3, uri, document)
    stored = s3.get_object(Bucket=ARTIFACTS, Key="runs/r1/qa/report.json")
    assert stored["ContentType"].lower() == "application/json"  # media types are case-insensitive
    text = stored["Body"].read().decode("utf-8")
    lines = text.splitlines()
    keys = ["accuracy", "confusion", "label", "run_id"]
    rows = [next(i for i, line in enumerate(lines) if line.lstrip().startswith(f'"{key}":')) for key in keys]
    assert rows == sorted(set(rows)), text  # each on a line of its own, in key order
    assert get_json(s3, uri) == document


def test_list_data_objects_returns_the_data_parts_only(s3):
    # What a Spark job leaves under an output prefix: part files (some empty, for empty
    # partitions), _SUCCESS (the S3A committers write it as a non-empty JSON summary:
    # https://hadoop.apache.org/docs/stable/hadoop-aws/tools/hadoop-aws/committers.html),
    # .crc checksum files, and folder markers.
    prefix = "runs/r1/data/test"
    objects = {
        f"{prefix}/part-00000.csv": b"vhigh,vhigh,2,2,small,low,unacc\n",
        f"{prefix}/part-00001.csv": b"",
        f"{prefix}/part-00002.csv": b"low,low,4,more,big,high,vgood\n",
        f"{prefix}/_SUCCESS": b'{"name": "org.apache.hadoop.fs.s3a.commit.files.SuccessData"}',
        f"{prefix}/.part-00000.csv.crc": b"crc\x00\x01",
        f"{prefix}/_temporary/": b"",
        f"{prefix}/subfolder/": b"\n",  # a key ending in "/" names a folder, whatever its size
        f"{prefix}-other/part-00000.csv": b"not this run's test data\n",  # a sibling prefix
    }
    for key, body in objects.items():
        s3.put_object(Bucket=ARTIFACTS, Key=key, Body=body)
    expected = [f"s3://{ARTIFACTS}/{prefix}/part-00000.csv", f"s3://{ARTIFACTS}/{prefix}/part-00002.csv"]
    assert list_data_objects(s3, f"s3://{ARTIFACTS}/{prefix}") == expected
    assert list_data_objects(s3, f"s3://{ARTIFACTS}/{prefix}/") == expected


def test_list_data_objects_of_an_empty_prefix_is_empty(s3):
    # qa_test turns "no data" into its own clear error; the listing itself must not fail.
    assert list_data_objects(s3, f"s3://{ARTIFACTS}/runs/r1/data/test") == []


def test_list_data_objects_at_the_bucket_root(s3):
    s3.put_object(Bucket=ARTIFACTS, Key="part-00000.csv", Body=b"a,b\n")
    s3.put_object(Bucket=ARTIFACTS, Key="_SUCCESS", Body=b"")
    assert list_data_objects(s3, f"s3://{ARTIFACTS}/") == [f"s3://{ARTIFACTS}/part-00000.csv"]
