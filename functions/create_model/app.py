"""Creates the run's inference pipeline model: SparkML Serving (preprocess)
-> XGBoost -> SparkML Serving (postprocess) for classification (the last
container turns the class index or probability into the label), SparkML
Serving (preprocess) -> XGBoost for regression (XGBoost's CSV answer is the
predicted number; the manifest's postprocess URIs are null). A retry never
creates a second model.

The model references copies of its files under `models/<run id>/`
(pipeline_common.models), not the run's own files, which expire with `runs/`."""
from __future__ import annotations

import json

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from dataset_spec import environment_value
from dataset_spec.serving import schema_in_environment
from pipeline_common.aws_errors import named_aws_errors
from pipeline_common.config import env_str
from pipeline_common.errors import InvalidEvent, ManifestInvalid
from pipeline_common.manifest import is_classification, load_manifest
from pipeline_common.models import ModelFileConflict, keep_model_file, model_file_key
from pipeline_common.s3 import get_bytes, is_missing_object, parse_s3_uri
from pipeline_common.sagemaker import ensure_created

logger = Logger()
tracer = Tracer()



class ModelConflict(Exception):
    """A model with this run's name exists but was defined differently."""


def kept_model_files(s3, run_id: str, manifest: dict, model_artifacts: str, bucket: str) -> dict[str, str]:
    """The model files (three, or two without postprocess) copied where no age-based rule deletes them once deployed."""
    sources = {
        "preprocess": manifest["uris"]["preprocess_model"],
        "xgboost": model_artifacts,
    }
    if is_classification(manifest):
        sources["postprocess"] = manifest["uris"]["postprocess_model"]
    try:
        return {part: keep_model_file(s3, uri, bucket, model_file_key(run_id, part)) for part, uri in sources.items()}
    except ModelFileConflict as error:
        raise ModelConflict(str(error)) from None
    except ClientError as error:
        if is_missing_object(error):
            raise ManifestInvalid(f"a model file of run {run_id} is missing: {error}") from None
        raise


def schema_env_value(s3, uri: str) -> str | None:
    """The SAGEMAKER_SPARKML_SCHEMA value: the schema document, checked and compacted; None when
    it does not fit SageMaker's 1024 characters, and requests carry it instead
    (dataset_spec.serving: a wide table's endpoint takes JSON requests)."""
    try:
        schema = json.loads(get_bytes(s3, uri).decode("utf-8"))
    except ClientError as error:
        if is_missing_object(error):
            raise ManifestInvalid(f"the manifest names a schema at {uri}, but there is no such object") from None
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestInvalid(f"schema {uri} is not valid JSON: {error}") from None
    if not isinstance(schema, dict) or not isinstance(schema.get("input"), list) or not isinstance(schema.get("output"), dict):
        raise ManifestInvalid(f"schema {uri} must be an object with an 'input' list and an 'output' object")
    return environment_value(schema) if schema_in_environment(schema) else None


def pipeline_containers(model_files: dict[str, str], preprocess_schema: str | None, postprocess_schema: str | None,
                        sparkml_image: str, xgboost_image: str) -> list[dict]:
    """Three containers; two when there is no postprocess (regression). `preprocess_schema` None:
    the preprocess container has no schema of its own, each request carries it."""
    # The next container (XGBoost) reads CSV; SparkML Serving answers JSON unless told.
    preprocess_environment = {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}
    if preprocess_schema is not None:
        preprocess_environment = {"SAGEMAKER_SPARKML_SCHEMA": preprocess_schema, **preprocess_environment}
    containers = [
        {
            "Image": sparkml_image,
            "ModelDataUrl": model_files["preprocess"],
            "Environment": preprocess_environment,
        },
        {"Image": xgboost_image, "ModelDataUrl": model_files["xgboost"]},
    ]
    if postprocess_schema is not None:
        containers.append({
            "Image": sparkml_image,
            "ModelDataUrl": model_files["postprocess"],
            "Environment": {"SAGEMAKER_SPARKML_SCHEMA": postprocess_schema},
        })
    return containers


def _comparable(containers: list[dict]) -> list[dict]:
    return [
        {"Image": c.get("Image"), "ModelDataUrl": c.get("ModelDataUrl"), "Environment": c.get("Environment") or {}}
        for c in containers
    ]


def _check_same(existing: dict, name: str, containers: list[dict], role_arn: str) -> None:
    if _comparable(existing.get("Containers") or []) != _comparable(containers) or existing.get("ExecutionRoleArn") != role_arn:
        raise ModelConflict(
            f"model {name} already exists with a different definition; a run's model name is never reused for another model"
        )


def ensure_model(sagemaker, name: str, containers: list[dict], role_arn: str) -> bool:
    """Create the model unless it exists identically. Returns True if created."""
    existing, created = ensure_created(
        sagemaker.describe_model,
        sagemaker.create_model,
        {"ModelName": name},
        {
            "ModelName": name,
            "ExecutionRoleArn": role_arn,
            "Containers": containers,
            "InferenceExecutionConfig": {"Mode": "Serial"},
        },
    )
    if not created:
        _check_same(existing, name, containers, role_arn)
    return created


def create_model(s3, sagemaker, event: dict, role_arn: str, sparkml_image: str, xgboost_image: str) -> dict:
    try:
        run_id = event["run"]["run_id"]
        name = event["names"]["model"]
        manifest_uri = event["manifest_uri"]
        model_artifacts = event["model_artifacts"]
        parse_s3_uri(model_artifacts)
    except (TypeError, KeyError, ValueError) as error:
        raise InvalidEvent(f"the event needs run.run_id, names.model, manifest_uri and an s3:// model_artifacts ({error})") from None
    manifest = load_manifest(s3, manifest_uri, run_id=run_id)
    preprocess_schema = schema_env_value(s3, manifest["uris"]["preprocess_schema"])
    postprocess_schema = (schema_env_value(s3, manifest["uris"]["postprocess_schema"])
                          if is_classification(manifest) else None)
    # The models sit in the artifacts bucket, next to the runs they came from.
    bucket, _ = parse_s3_uri(manifest_uri)
    containers = pipeline_containers(
        kept_model_files(s3, run_id, manifest, model_artifacts, bucket),
        preprocess_schema,
        postprocess_schema,
        sparkml_image,
        xgboost_image,
    )
    created = ensure_model(sagemaker, name, containers, role_arn)
    logger.info("model ready", extra={"model_name": name, "newly_created": created})
    return {"model_name": name}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    return create_model(
        boto3.client("s3"),
        boto3.client("sagemaker"),
        event,
        role_arn=env_str("SAGEMAKER_ROLE_ARN"),
        sparkml_image=env_str("SPARKML_IMAGE_URI"),
        xgboost_image=env_str("XGBOOST_IMAGE_URI"),
    )
