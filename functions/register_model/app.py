"""Registers the run's model, once it passed QA, as a new version of the
model package group of its production endpoint (pipeline_common.registry).

The version holds what production would run, copied from the run's
SageMaker model (the one the QA endpoint served): the three containers'
images, model files and environment. Its model metrics are the QA report
(copied next to the model files, where runs/'s expiry does not reach), its
metadata the run's lineage: input object and version, dataset spec, Glue job
run, training job, and each model file with the run file it was copied from.
Status PendingManualApproval: the person's decision sets it later.

A retry registers nothing twice: CreateModelPackage carries a client token
derived from the run id, and a version of this run already in the group is
returned as it is.
"""
from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from pipeline_common.aws_errors import CLIENT_CONFIG, named_aws_errors
from pipeline_common.config import env_str
from pipeline_common.errors import InvalidEvent
from pipeline_common.models import MODELS_PREFIX, SOURCE_METADATA
from pipeline_common.registry import (
    MAX_PACKAGE_DESCRIPTION,
    PENDING,
    client_token,
    comparable_containers,
    customer_metadata,
    find_registered,
    model_package_group_name,
    one_line,
)
from pipeline_common.s3 import get_bytes, parse_s3_uri, put_json, s3_uri
from pipeline_common.sagemaker import describe_or_none, is_already_exists

logger = Logger()
tracer = Tracer()

# What the pipeline's first container reads and its last one answers (SparkML Serving).
CONTENT_TYPES = ["text/csv"]
RESPONSE_TYPES = ["text/csv"]


class ModelNotFound(Exception):
    """The run's SageMaker model, which the package copies, does not exist."""


class RegistrationConflict(Exception):
    """The package SageMaker returned for this run's token belongs to another run or model."""


def registry_prefix(bucket: str, run_id: str) -> str:
    """Where a version's own documents live: next to its model files, kept as long as the registry entry."""
    return s3_uri(bucket, f"{MODELS_PREFIX}{run_id}/registry/")


def ensure_group(sagemaker, group: str, endpoint: str) -> None:
    if describe_or_none(sagemaker.describe_model_package_group, ModelPackageGroupName=group) is not None:
        return
    try:
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription=f"Models registered for production endpoint {endpoint} by the pipeline",
        )
    except ClientError as error:
        if not is_already_exists(error):
            raise


def model_file_sources(s3, containers: list[dict]) -> dict[str, str]:
    """Each model file's origin (the `source` metadata create_model wrote on the copy)."""
    sources = {}
    for index, container in enumerate(containers, start=1):
        uri = container.get("ModelDataUrl")
        if not uri:
            continue
        bucket, key = parse_s3_uri(uri)
        metadata = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})
        sources[f"container_{index}_source"] = metadata.get(SOURCE_METADATA)
    return sources


def lineage_of(event: dict, containers: list[dict], sources: dict, report_copy: str, lineage_uri: str) -> dict:
    run, names, qa = event["run"], event["names"], event["qa"]
    execution_input = event.get("execution_input") if isinstance(event.get("execution_input"), dict) else {}
    lineage = {
        "run_id": run["run_id"],
        "execution_arn": run.get("execution_arn"),
        "started_at": run.get("started_at"),
        "input_uri": run.get("input_uri"),
        "input_version_id": execution_input.get("input_version_id"),
        "input_etag": execution_input.get("input_etag"),
        "manifest_uri": event.get("manifest_uri"),
        "glue_job_run_id": event.get("glue_job_run_id"),
        "training_job": names.get("training_job"),
        "model_name": event["model_name"],
        "production_endpoint": names.get("production_endpoint"),
        "qa_report_uri": report_copy,
        "lineage_uri": lineage_uri,
    }
    # The QA figures themselves, whatever the report's kind (accuracy, threshold, rows...).
    for key, value in sorted(qa.items()):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool) and key != "report_uri":
            lineage[f"qa_{key}"] = value
    for index, container in enumerate(containers, start=1):
        lineage[f"container_{index}_image"] = container.get("Image")
        lineage[f"container_{index}_model"] = container.get("ModelDataUrl")
    lineage.update(sources)
    return lineage


def register_model(s3, sagemaker, event: dict, instance_type: str) -> dict:
    try:
        run = event["run"]
        run_id = run["run_id"]
        endpoint = event["names"]["production_endpoint"]
        model_name = event["model_name"]
        report_uri = event["qa"]["report_uri"]
        parse_s3_uri(report_uri)
        if not isinstance(run_id, str) or not run_id:
            raise KeyError("run.run_id")
    except (TypeError, KeyError, ValueError) as error:
        raise InvalidEvent(
            f"the event needs run.run_id, names.production_endpoint, model_name and qa.report_uri ({error})"
        ) from None
    group = model_package_group_name(endpoint)
    model = describe_or_none(sagemaker.describe_model, ModelName=model_name)
    if model is None:
        raise ModelNotFound(f"model {model_name} of run {run_id} does not exist; nothing to register")
    containers = model.get("Containers") or ([model["PrimaryContainer"]] if model.get("PrimaryContainer") else [])
    package_containers = [{k: v for k, v in c.items() if k in ("Image", "ModelDataUrl", "Environment") and v}
                          for c in containers]

    ensure_group(sagemaker, group, endpoint)
    existing = find_registered(sagemaker, group, run_id)
    if existing is None:
        bucket, _ = parse_s3_uri(containers[0]["ModelDataUrl"])
        prefix = registry_prefix(bucket, run_id)
        # The metrics and the exact lineage outlive runs/ (RunRetentionDays): they sit with the model files.
        report_copy = prefix + "qa-report.json"
        report_bucket, report_key = parse_s3_uri(report_copy)
        s3.put_object(Bucket=report_bucket, Key=report_key, Body=get_bytes(s3, report_uri),
                      ContentType="application/json")
        lineage_uri = prefix + "lineage.json"
        lineage = lineage_of(event, package_containers, model_file_sources(s3, package_containers), report_copy,
                             lineage_uri)
        put_json(s3, lineage_uri, {**lineage, "qa": event["qa"], "containers": package_containers})
        qa = event["qa"]
        description = one_line(
            f"Run {run_id} on {run.get('input_uri')}: QA {qa.get('metric', 'accuracy')} "
            f"{qa.get('value', qa.get('accuracy'))} on {qa.get('rows')} held-out rows",
            MAX_PACKAGE_DESCRIPTION)
        request = {
            "ModelPackageGroupName": group,
            "ModelPackageDescription": description,
            "InferenceSpecification": {
                "Containers": package_containers,
                "SupportedContentTypes": CONTENT_TYPES,
                "SupportedResponseMIMETypes": RESPONSE_TYPES,
                "SupportedRealtimeInferenceInstanceTypes": [instance_type],
            },
            "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": report_copy}}},
            "CustomerMetadataProperties": customer_metadata(lineage),
            "ModelApprovalStatus": PENDING,
            "ClientToken": client_token(run_id),
        }
        if run.get("execution_arn"):
            request["MetadataProperties"] = {"GeneratedBy": run["execution_arn"]}
        arn = sagemaker.create_model_package(**request)["ModelPackageArn"]
        existing = sagemaker.describe_model_package(ModelPackageName=arn)
    if (existing.get("CustomerMetadataProperties") or {}).get("run_id") != run_id or comparable_containers(
            existing["InferenceSpecification"]["Containers"]) != comparable_containers(package_containers):
        raise RegistrationConflict(
            f"model package {existing.get('ModelPackageArn')} is not run {run_id}'s model {model_name}"
        )
    result = {
        "model_package_arn": existing["ModelPackageArn"],
        "model_package_group": group,
        "version": existing.get("ModelPackageVersion"),
        "status": existing.get("ModelApprovalStatus"),
        "kind": "registered",
    }
    logger.info("model registered", extra=result)
    return result


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    return register_model(
        boto3.client("s3", config=CLIENT_CONFIG),
        boto3.client("sagemaker", config=CLIENT_CONFIG),
        event,
        instance_type=env_str("ENDPOINT_INSTANCE_TYPE", "ml.m5.large"),
    )
