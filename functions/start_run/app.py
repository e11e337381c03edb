"""Starts one pipeline execution per uploaded object.

The execution name is derived from the object's identity, so an event that
EventBridge delivers twice (at-least-once delivery) starts one execution.
"""
from __future__ import annotations

import json
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from pipeline_common.config import env_str
from pipeline_common.datasets import dataset_from_key
from pipeline_common.errors import InvalidEvent
from pipeline_common.names import run_id_from_parts
from pipeline_common.s3 import s3_uri

logger = Logger()
tracer = Tracer()


def object_identity(event: dict) -> dict:
    """Bucket, key and the fields that tell one upload of a key from another."""
    if not isinstance(event, dict) or event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        raise InvalidEvent("expected an EventBridge 'Object Created' event from aws.s3")
    detail = event.get("detail")
    try:
        bucket = detail["bucket"]["name"]
        obj = detail["object"]
        key = obj["key"]
    except (TypeError, KeyError):
        raise InvalidEvent("the event has no detail.bucket.name / detail.object.key") from None
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise InvalidEvent("detail.bucket.name and detail.object.key must be non-empty strings")
    return {
        "bucket": bucket,
        "event_key": key,
        "key": unquote_plus(key),
        "version_id": str(obj.get("version-id") or ""),
        "etag": str(obj.get("etag") or ""),
        "sequencer": str(obj.get("sequencer") or ""),
    }


def resolve_key(s3, identity: dict) -> str:
    """The object's real key.

    S3 documents the key in its notifications as URL-encoded the form way
    ("red flower.jpg" arrives as "red+flower.jpg"; a "+" as "%2B"), and AWS's
    Powertools decodes EventBridge's `detail.object.key` the same way
    (S3EventBridgeNotificationObject.key: unquote_plus); the EventBridge page
    itself says nothing. A key arriving as stored would be mis-decoded only if
    it holds "+" or "%": then the listing tells which key exists (the event's
    etag picks one when both do). ListBucket only: no object is read.
    """
    decoded, sent = identity["key"], identity["event_key"]
    if decoded == sent or s3 is None:
        return decoded
    etags = {}
    for candidate in (decoded, sent):
        listed = s3.list_objects_v2(Bucket=identity["bucket"], Prefix=candidate, MaxKeys=1).get("Contents", [])
        etags[candidate] = next((item["ETag"].strip('"') for item in listed if item["Key"] == candidate), None)
    for candidate in (decoded, sent):
        if etags[candidate] is not None and etags[candidate] == identity["etag"]:
            return candidate
    for candidate in (decoded, sent):
        if etags[candidate] is not None:
            return candidate
    return decoded


def ignore_reason(key: str, input_prefix: str) -> str | None:
    if not key.startswith(input_prefix):
        return f"key is outside the input prefix {input_prefix!r}"
    if key.endswith("/"):
        return "key is a directory marker"
    return None


def execution_name(identity: dict) -> str:
    # The file's stem only, not its dataset folder: names stay as they were for car uploads.
    stem = identity["key"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return run_id_from_parts(
        stem,
        identity["bucket"],
        identity["key"],
        identity["version_id"],
        identity["etag"],
        identity["sequencer"],
    )


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    # arn:aws:states:<region>:<account>:stateMachine:<sm>  ->  ...:execution:<sm>:<name>
    head, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{head}:execution:{machine}:{name}"


def start_run(sfn, event: dict, state_machine_arn: str, input_prefix: str, s3=None, default_dataset: str = "car") -> dict:
    identity = object_identity(event)
    identity["key"] = resolve_key(s3, identity)
    reason = ignore_reason(identity["key"], input_prefix)
    if reason:
        logger.info("object ignored", extra={"reason": reason})
        return {"action": "ignored", "reason": reason}

    name = execution_name(identity)
    input_uri = s3_uri(identity["bucket"], identity["key"])
    # Checked by the run itself (ResolveDataset), so an unknown one fails with an email, not here in silence.
    dataset = dataset_from_key(identity["key"], input_prefix, default_dataset)
    result = {"execution_name": name, "input_uri": input_uri, "dataset": dataset}
    try:
        # Same name and same input while running: Step Functions answers with
        # the running execution itself; after it ended: ExecutionAlreadyExists.
        # The object's version and etag travel with the run for its lineage (the model registry).
        execution_input = {"input_uri": input_uri, "dataset": dataset}
        execution_input.update({k: identity[f] for k, f in (("input_version_id", "version_id"), ("input_etag", "etag"))
                                if identity[f]})
        response = sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=name,
            input=json.dumps(execution_input),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        logger.info("duplicate event: execution already exists", extra={"execution_name": name})
        return {**result, "action": "duplicate", "execution_arn": execution_arn_for(state_machine_arn, name)}
    logger.info("execution started", extra={"execution_name": name, "input_uri": input_uri})
    return {**result, "action": "started", "execution_arn": response["executionArn"]}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return start_run(
        boto3.client("stepfunctions"),
        event,
        state_machine_arn=env_str("STATE_MACHINE_ARN"),
        input_prefix=env_str("INPUT_PREFIX", ""),
        s3=boto3.client("s3"),
        default_dataset=env_str("DEFAULT_DATASET", "car"),
    )
