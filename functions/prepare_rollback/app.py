"""Checks a rollback request and prepares its confirmation.

Execution input `{"rollback": {"model_package_version": N, "dataset": "<name>"}}`
(dataset optional: DefaultDataset). ResolveRollbackDataset (resolve_dataset)
checks the dataset and names its production endpoint, which the event
carries as `dataset.production_endpoint`. The version must be
an Approved version of the endpoint's package group whose model files still
exist (pipeline_common.registry.deployable_package), and not the one
production serves now; else the rollback fails here, before anyone is asked
and before production is touched.

Returns what the rest of the run needs: `names.production_endpoint`, the
version as `registry` (kind "rollback": record_decision leaves it alone),
and the confirmation's `summary`: the version's QA figures, lineage and
approval, and what production serves now, for request_approval to send.
"""
from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from pipeline_common.aws_errors import CLIENT_CONFIG, named_aws_errors
from pipeline_common.config import env_int
from pipeline_common.errors import InvalidEvent
from pipeline_common.names import is_sagemaker_name
from pipeline_common.registry import (
    ModelPackageNotFound,
    comparable_containers,
    deployable_package,
    group_versions,
    metadata_text,
    model_package_group_name,
)
from pipeline_common.s3 import get_json
from pipeline_common.sagemaker import describe_or_none

logger = Logger()
tracer = Tracer()


class InvalidRollback(Exception):
    """The rollback request names no usable version."""


class AlreadyServing(Exception):
    """Production already serves the requested version: there is nothing to roll back."""


def requested(event: dict) -> tuple[str, int]:
    request = event.get("rollback") if isinstance(event, dict) else None
    if not isinstance(request, dict):
        raise InvalidRollback('the execution input must be {"rollback": {"model_package_version": N}}')
    version = request.get("model_package_version")
    if isinstance(version, str) and version.strip().isdigit():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidRollback(f"rollback.model_package_version must be a version number (1, 2, ...), got {version!r}")
    dataset = event.get("dataset") if isinstance(event.get("dataset"), dict) else {}
    endpoint = dataset.get("production_endpoint")
    if not isinstance(endpoint, str) or not is_sagemaker_name(endpoint):
        raise InvalidEvent(f"the event needs dataset.production_endpoint (ResolveRollbackDataset's answer), got {endpoint!r}")
    return endpoint, version


def serving_model(sagemaker, endpoint: str) -> tuple[dict, list[dict]]:
    """The production endpoint's description and the containers its current config runs."""
    described = describe_or_none(sagemaker.describe_endpoint, EndpointName=endpoint)
    if described is None:
        raise InvalidRollback(f"production endpoint {endpoint} does not exist: there is nothing to roll back")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    containers = model.get("Containers") or ([model["PrimaryContainer"]] if model.get("PrimaryContainer") else [])
    return described, containers


def version_summary(s3, package: dict) -> dict:
    """What the confirmation shows of a version: QA figures, lineage, the decision that approved it."""
    metadata = {key: metadata_text(value) for key, value in (package.get("CustomerMetadataProperties") or {}).items()}
    lineage = None
    if metadata.get("lineage_uri"):
        try:  # the exact document; the metadata values may be escaped or cut
            lineage = get_json(s3, metadata["lineage_uri"])
        except (ClientError, ValueError):
            lineage = None
    lineage = lineage or metadata
    qa = {key[3:]: value for key, value in lineage.items() if key.startswith("qa_") and key != "qa_report_uri"}
    if isinstance(lineage.get("qa"), dict):
        qa = {k: v for k, v in lineage["qa"].items() if k != "report_uri"}
    return {
        "version": package.get("ModelPackageVersion"),
        "arn": package.get("ModelPackageArn"),
        "status": package.get("ModelApprovalStatus"),
        "approval_description": package.get("ApprovalDescription"),
        "created": str(package.get("CreationTime") or ""),
        "run_id": lineage.get("run_id"),
        "input_uri": lineage.get("input_uri"),
        "input_version_id": lineage.get("input_version_id"),
        "glue_job_run_id": lineage.get("glue_job_run_id"),
        "training_job": lineage.get("training_job"),
        "qa": qa,
        "qa_report_uri": lineage.get("qa_report_uri"),
        "model_files": [c.get("ModelDataUrl") for c in package["InferenceSpecification"]["Containers"]],
    }


def prepare_rollback(sagemaker, s3, event: dict, poll_seconds: int, approval_timeout_seconds: int) -> dict:
    endpoint, version = requested(event)
    run = event.get("run") if isinstance(event.get("run"), dict) else {}
    group = model_package_group_name(endpoint)
    if describe_or_none(sagemaker.describe_model_package_group, ModelPackageGroupName=group) is None:
        raise ModelPackageNotFound(f"production endpoint {endpoint} has no model registry yet (group {group})")
    versions = group_versions(sagemaker, group)
    target = next((v for v in versions if v.get("ModelPackageVersion") == version), None)
    if target is None:
        known = ", ".join(str(v.get("ModelPackageVersion")) for v in reversed(versions)) or "none"
        raise ModelPackageNotFound(f"group {group} has no version {version} (versions: {known})")
    package = deployable_package(sagemaker, s3, target["ModelPackageArn"], endpoint)
    described, serving_containers = serving_model(sagemaker, endpoint)
    serving = {"endpoint_config": described["EndpointConfigName"], "status": described.get("EndpointStatus"),
               "version": None}
    for summary in versions:
        candidate = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        if comparable_containers(candidate["InferenceSpecification"]["Containers"]) == comparable_containers(serving_containers):
            serving.update(version_summary(s3, candidate))
            break
    if serving["version"] == version:
        raise AlreadyServing(f"production endpoint {endpoint} already serves version {version} of {group}")
    summary = {
        "kind": "rollback",
        "run_id": run.get("run_id"),
        "started_at": run.get("started_at"),
        "dataset": (event.get("dataset") or {}).get("name"),
        "production_endpoint": endpoint,
        "model_package_group": group,
        "target": version_summary(s3, package),
        "serving": serving,
    }
    logger.info("rollback prepared", extra={"endpoint": endpoint, "version": version, "serving": serving["version"]})
    return {
        "names": {"production_endpoint": endpoint},
        "registry": {"model_package_arn": package["ModelPackageArn"], "model_package_group": group,
                     "version": version, "status": package.get("ModelApprovalStatus"), "kind": "rollback"},
        "summary": summary,
        "poll_seconds": poll_seconds,
        "approval_timeout_seconds": approval_timeout_seconds,
    }


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    return prepare_rollback(
        boto3.client("sagemaker", config=CLIENT_CONFIG),
        boto3.client("s3", config=CLIENT_CONFIG),
        event,
        poll_seconds=env_int("POLL_SECONDS", 30, minimum=1),
        approval_timeout_seconds=env_int("APPROVAL_TIMEOUT_SECONDS", 86400, minimum=1),
    )
