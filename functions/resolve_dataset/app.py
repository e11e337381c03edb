"""Decides which dataset a run is about, before anything is computed: the
dataset's spec must be in the artifacts bucket, and its production endpoint
follows from its name (pipeline_common.datasets).

An upload names its dataset by its key (`<InputPrefix><dataset>/<file>`;
directly under the prefix: DefaultDataset); a console start may name it in
the execution input (`"dataset"`). An unknown dataset fails the run here,
with the dataset's name, where its spec was looked for and which specs
exist, not minutes later inside the Glue job.
"""
from __future__ import annotations

import json

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from dataset_spec import DATASET_NAME_RULE
from pipeline_common.aws_errors import CLIENT_CONFIG, named_aws_errors
from pipeline_common.config import env_str
from pipeline_common.datasets import SPEC_PREFIX, dataset_from_key, is_dataset_name, production_endpoint_for, spec_key
from pipeline_common.errors import ConfigurationError, InvalidEvent
from pipeline_common.names import is_sagemaker_name
from pipeline_common.s3 import is_access_denied, is_missing_object, parse_s3_uri, s3_uri

logger = Logger()
tracer = Tracer()

_KNOWN_LISTED = 20


class UnknownDataset(Exception):
    """The run names a dataset that has no spec in the artifacts bucket (or no usable name)."""


class DatasetSpecInvalid(Exception):
    """The dataset's spec object is not a JSON object naming that dataset."""


def known_datasets(s3, bucket: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=SPEC_PREFIX, MaxKeys=1000).get("Contents", [])
    names = [item["Key"][len(SPEC_PREFIX):-len(".json")] for item in listed
             if item["Key"].endswith(".json") and "/" not in item["Key"][len(SPEC_PREFIX):]]
    return sorted(names)


def _unknown(s3, bucket: str, dataset: str, problem: str) -> UnknownDataset:
    try:
        known = known_datasets(s3, bucket)
    except ClientError:
        known = []
    listed = ", ".join(known[:_KNOWN_LISTED]) + (", ..." if len(known) > _KNOWN_LISTED else "") if known else "none"
    return UnknownDataset(
        f"dataset {dataset!r} {problem}. Specs live in s3://{bucket}/{SPEC_PREFIX}<dataset>.json (make deploy "
        f"uploads every datasets/*.json); datasets there now: {listed}. Upload the data as "
        f"<InputPrefix><dataset>/<file> for one of them, or add datasets/{dataset}.json and run make deploy."
    )


def requested_dataset(run: dict, execution_input, input_prefix: str, default_dataset: str) -> str:
    given = execution_input.get("dataset") if isinstance(execution_input, dict) else None
    if given is not None:
        return given
    rollback = execution_input.get("rollback") if isinstance(execution_input, dict) else None
    if isinstance(rollback, dict):
        # A rollback has no upload: it names its dataset, or it is DefaultDataset's.
        return rollback.get("dataset", default_dataset)
    _, key = parse_s3_uri(run["input_uri"])
    return dataset_from_key(key, input_prefix, default_dataset)


def resolve_dataset(s3, event: dict, bucket: str, input_prefix: str, default_dataset: str, default_endpoint: str,
                    endpoint_suffix: str) -> dict:
    try:
        run = event["run"]
        dataset = requested_dataset(run, event.get("input"), input_prefix, default_dataset)
    except (TypeError, KeyError, ValueError) as error:
        raise InvalidEvent(f"the event needs run.input_uri (an s3:// URI) ({error})") from None
    if not is_dataset_name(dataset):
        raise _unknown(s3, bucket, str(dataset),
                       f"is not a dataset name ({DATASET_NAME_RULE})")
    uri = s3_uri(bucket, spec_key(dataset))
    try:
        body = s3.get_object(Bucket=bucket, Key=spec_key(dataset))["Body"].read()
    except ClientError as error:
        # Without a ListBucket grant covering the key, S3 answers a missing key with 403.
        if is_missing_object(error) or (is_access_denied(error) and dataset not in known_datasets(s3, bucket)):
            raise _unknown(s3, bucket, dataset, f"has no spec at {uri}") from None
        raise
    try:
        spec = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetSpecInvalid(f"{uri} is not valid JSON: {error}") from None
    if not isinstance(spec, dict) or spec.get("name") != dataset:
        named = spec.get("name") if isinstance(spec, dict) else None
        raise DatasetSpecInvalid(
            f"{uri} names dataset {named!r}, not {dataset!r}: the file name and the spec's name must agree "
            "(the name decides the production endpoint)"
        )
    try:
        endpoint = production_endpoint_for(dataset, default_dataset, default_endpoint, endpoint_suffix)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    logger.info("dataset resolved", extra={"dataset": dataset, "production_endpoint": endpoint})
    return {"name": dataset, "spec_uri": uri, "production_endpoint": endpoint}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    default_dataset = env_str("DEFAULT_DATASET", "car")
    default_endpoint = env_str("PRODUCTION_ENDPOINT_NAME")
    suffix = env_str("PRODUCTION_ENDPOINT_SUFFIX", "-prod")
    if not is_dataset_name(default_dataset):
        raise ConfigurationError(f"DEFAULT_DATASET {default_dataset!r} is not a dataset name")
    if not is_sagemaker_name(default_endpoint):
        raise ConfigurationError(f"PRODUCTION_ENDPOINT_NAME {default_endpoint!r} is not a valid SageMaker endpoint name")
    try:
        production_endpoint_for("x", default_dataset, default_endpoint, suffix)
    except ValueError as error:
        raise ConfigurationError(f"PRODUCTION_ENDPOINT_SUFFIX: {error}") from None
    return resolve_dataset(
        boto3.client("s3", config=CLIENT_CONFIG),
        event if isinstance(event, dict) else {},
        bucket=env_str("ARTIFACTS_BUCKET"),
        input_prefix=env_str("INPUT_PREFIX", ""),
        default_dataset=default_dataset,
        default_endpoint=default_endpoint,
        endpoint_suffix=suffix,
    )
