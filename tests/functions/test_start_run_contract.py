"""start_run's decisions one by one: which events start a run, which upload a
run is named after (every part of the object's identity counts), which key is
the object's when the event's key is encoded, and what the run is given.

A wrong name is the expensive mistake here: two different uploads sharing a
name means the second is dropped as a "duplicate" and never runs. Each test
drives the function with botocore's Stubber on real Step Functions and S3
clients (the AWS boundary), with the exact request expected; a Stubber with
nothing queued fails any call, so "no call" is checked too.
"""
from __future__ import annotations

import json
import re

import boto3
import pytest
from botocore.stub import Stubber

from lambda_fixtures import ACCOUNT, REGION
from pipeline_common.errors import InvalidEvent

MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:car-pipeline"
ETAG = "9b2cf535f27731c974343645a3985328"


@pytest.fixture
def start_run(load_function):
    return load_function("start_run")


def _client(service: str):
    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def sfn():
    client = _client("stepfunctions")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


@pytest.fixture
def s3():
    client = _client("s3")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def event(key: str = "input/car.data", bucket: str = "uploads", **obj) -> dict:
    return {"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key, **obj}}}


def identity(start_run, key: str = "input/car.data", **obj) -> dict:
    return start_run.object_identity(event(key, **obj))


# ------------------------------------------------------------------ which events

@pytest.mark.parametrize("change", [{"source": "aws.ec2"}, {"detail-type": "Object Deleted"},
                                    {"source": None}, {"detail-type": None}])
def test_only_s3_object_created_events_start_runs(start_run, change):
    """Source and type are each checked alone: an Object Deleted event of S3, or an event of another source
    with the same type, starts nothing."""
    with pytest.raises(InvalidEvent, match=r"^expected an EventBridge 'Object Created' event from aws\.s3$"):
        start_run.object_identity({**event(), **change})


@pytest.mark.parametrize("bad", [None, [], "x"])
def test_an_event_that_is_not_an_object_is_refused(start_run, bad):
    with pytest.raises(InvalidEvent, match="Object Created"):
        start_run.object_identity(bad)


@pytest.mark.parametrize("detail", [None, {}, {"bucket": {"name": "b"}}, {"object": {"key": "k"}},
                                    {"bucket": "b", "object": {"key": "k"}}])
def test_an_event_without_bucket_or_key_is_refused(start_run, detail):
    with pytest.raises(InvalidEvent, match=r"^the event has no detail\.bucket\.name / detail\.object\.key$"):
        start_run.object_identity({**event(), "detail": detail})


@pytest.mark.parametrize("bucket, key", [("", "input/a.csv"), ("b", ""), (7, "input/a.csv"), ("b", 7), (None, "k")])
def test_bucket_and_key_must_each_be_non_empty_strings(start_run, bucket, key):
    with pytest.raises(InvalidEvent, match=r"^detail\.bucket\.name and detail\.object\.key must be non-empty strings$"):
        start_run.object_identity(event(key, bucket))


def test_the_identity_keeps_the_encoded_key_and_every_upload_field(start_run):
    assert identity(start_run, "input/red+flower%2B1.csv", etag=ETAG, sequencer="00AB", **{"version-id": "v1"}) == {
        "bucket": "uploads", "event_key": "input/red+flower%2B1.csv", "key": "input/red flower+1.csv",
        "version_id": "v1", "etag": ETAG, "sequencer": "00AB"}
    # An unversioned bucket's event has no version-id: the field is empty, not "None".
    assert identity(start_run)["version_id"] == "" and identity(start_run)["etag"] == ""
    assert identity(start_run)["sequencer"] == ""


# ------------------------------------------------------------------ the run's name

def test_every_part_of_the_upload_changes_the_name(start_run):
    """Two uploads that differ in one field only (bucket, key, version, ETag or sequencer) are two runs."""
    base = {"bucket": "uploads", "key": "input/car.data", "version_id": "v1", "etag": ETAG, "sequencer": "00AB"}
    name = start_run.execution_name(base)
    for field, other in [("bucket", "uploads2"), ("key", "input/x/car.data"), ("version_id", "v2"),
                         ("etag", ETAG[::-1]), ("sequencer", "00AC")]:
        assert start_run.execution_name({**base, field: other}) != name, field
    assert start_run.execution_name(dict(base)) == name


@pytest.mark.parametrize("key, stem", [("input/car/my.data.v2.csv", "my-data-v2"), ("input/car.data", "car"),
                                       ("input/a/b/c", "c"), ("input/two words.v1.csv", "two-words-v1"),
                                       # INPUT_PREFIX "" (the default) lets a key at the bucket's top start a run.
                                       ("car.data", "car")])
def test_the_name_is_the_file_stem_only_and_the_uploads_digest(start_run, key, stem):
    """Not the dataset folder, and only the last extension goes: names of car uploads stay as they were."""
    name = start_run.execution_name({"bucket": "b", "key": key, "version_id": "", "etag": ETAG, "sequencer": "1"})
    assert re.fullmatch(rf"{stem}-[0-9a-f]{{12}}", name), name


def test_a_duplicate_names_the_existing_execution(start_run):
    assert start_run.execution_arn_for(MACHINE, "car-abc") == \
        f"arn:aws:states:{REGION}:{ACCOUNT}:execution:car-pipeline:car-abc"


# ------------------------------------------------------------------ which key is the object's

def listing(stub, prefix: str, items: list[tuple[str, str]]):
    contents = [{"Key": key, "ETag": f'"{etag}"', "Size": 1} for key, etag in items]
    stub.add_response("list_objects_v2", {"Contents": contents} if contents else {},
                      {"Bucket": "uploads", "Prefix": prefix, "MaxKeys": 1})


def test_a_key_without_encoding_is_taken_as_is_without_listing(start_run, s3):
    client, _ = s3
    assert start_run.resolve_key(client, identity(start_run, "input/car.data", etag=ETAG)) == "input/car.data"
    assert start_run.resolve_key(None, identity(start_run, "input/a+b.csv")) == "input/a b.csv"


def test_the_decoded_key_is_the_object_when_it_exists(start_run, s3):
    client, stub = s3
    listing(stub, "input/a b.csv", [("input/a b.csv", ETAG)])
    listing(stub, "input/a+b.csv", [])
    assert start_run.resolve_key(client, identity(start_run, "input/a+b.csv", etag=ETAG)) == "input/a b.csv"


def test_the_key_as_sent_is_the_object_when_only_it_exists(start_run, s3):
    client, stub = s3
    listing(stub, "input/a b.csv", [("input/a b.csv.old", ETAG)])  # a longer key under the same prefix is not it
    listing(stub, "input/a+b.csv", [("input/a+b.csv", "other-etag")])
    assert start_run.resolve_key(client, identity(start_run, "input/a+b.csv", etag=ETAG)) == "input/a+b.csv"


def test_the_events_etag_picks_between_two_existing_keys(start_run, s3):
    client, stub = s3
    listing(stub, "input/a b.csv", [("input/a b.csv", "older")])
    listing(stub, "input/a+b.csv", [("input/a+b.csv", ETAG)])
    assert start_run.resolve_key(client, identity(start_run, "input/a+b.csv", etag=ETAG)) == "input/a+b.csv"
    listing(stub, "input/a b.csv", [("input/a b.csv", ETAG)])
    listing(stub, "input/a+b.csv", [("input/a+b.csv", "older")])
    assert start_run.resolve_key(client, identity(start_run, "input/a+b.csv", etag=ETAG)) == "input/a b.csv"


def test_without_a_matching_etag_the_decoded_key_is_preferred(start_run, s3):
    client, stub = s3
    listing(stub, "input/a b.csv", [("input/a b.csv", "x")])
    listing(stub, "input/a+b.csv", [("input/a+b.csv", "y")])
    assert start_run.resolve_key(client, identity(start_run, "input/a+b.csv", etag=ETAG)) == "input/a b.csv"
    listing(stub, "input/a b.csv", [])
    listing(stub, "input/a+b.csv", [])
    assert start_run.resolve_key(client, identity(start_run, "input/a+b.csv", etag=ETAG)) == "input/a b.csv"


def test_an_event_without_an_etag_does_not_match_a_listing(start_run, s3):
    client, stub = s3
    listing(stub, "input/a b.csv", [("input/a b.csv", "x")])
    listing(stub, "input/a+b.csv", [])
    assert start_run.resolve_key(client, identity(start_run, "input/a+b.csv")) == "input/a b.csv"


# ------------------------------------------------------------------ what starts

def test_a_started_run_gets_the_object_and_the_dataset_its_key_names(start_run, sfn):
    client, stub = sfn
    ident = identity(start_run, "input/wine/red.csv", etag=ETAG, sequencer="1")
    name = start_run.execution_name({**ident})
    arn = start_run.execution_arn_for(MACHINE, name)
    stub.add_response("start_execution", {"executionArn": arn, "startDate": "2025-01-02T03:04:05Z"},
                      {"stateMachineArn": MACHINE, "name": name,
                       # The upload's ETag travels with the run for the registry's lineage; an unversioned
                       # bucket's event has no version-id, so input_version_id is left out, not sent empty.
                       "input": json.dumps({"input_uri": "s3://uploads/input/wine/red.csv", "dataset": "wine",
                                            "input_etag": ETAG})})
    result = start_run.start_run(client, event("input/wine/red.csv", etag=ETAG, sequencer="1"), MACHINE, "input/")
    assert result == {"execution_name": name, "input_uri": "s3://uploads/input/wine/red.csv", "dataset": "wine",
                      "action": "started", "execution_arn": arn}


def test_a_file_directly_under_the_prefix_is_the_default_dataset(start_run, sfn):
    client, stub = sfn
    stub.add_response("start_execution", {"executionArn": "arn:x", "startDate": "2025-01-02T03:04:05Z"})
    result = start_run.start_run(client, event("input/car.data"), MACHINE, "input/", default_dataset="cars2")
    assert result["dataset"] == "cars2"


def test_an_existing_execution_is_a_duplicate_named_by_its_arn(start_run, sfn):
    client, stub = sfn
    stub.add_client_error("start_execution", "ExecutionAlreadyExists", http_status_code=400)
    result = start_run.start_run(client, event(), MACHINE, "input/")
    assert result["action"] == "duplicate"
    assert result["execution_arn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:car-pipeline:{result['execution_name']}"


@pytest.mark.parametrize("code", ["ExecutionLimitExceeded", "ThrottlingException", "StateMachineDoesNotExist"])
def test_other_refusals_fail_the_start(start_run, sfn, code):
    client, stub = sfn
    stub.add_client_error("start_execution", code, http_status_code=400)
    with pytest.raises(Exception) as raised:
        start_run.start_run(client, event(), MACHINE, "input/")
    assert code in str(raised.value)


@pytest.mark.parametrize("key, reason", [("other/car.data", "key is outside the input prefix 'input/'"),
                                         ("input/car/", "key is a directory marker")])
def test_ignored_keys_say_why_and_start_nothing(start_run, sfn, key, reason):
    client, _ = sfn
    assert start_run.start_run(client, event(key), MACHINE, "input/") == {"action": "ignored", "reason": reason}
