"""Creates the run's endpoint config (one variant, AllTraffic); idempotent."""
from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Tracer

from pipeline_common.aws_errors import named_aws_errors
from pipeline_common.config import env_int, env_str
from pipeline_common.errors import InvalidEvent
from pipeline_common.sagemaker import ensure_created

logger = Logger()
tracer = Tracer()

VARIANT_NAME = "AllTraffic"


class EndpointConfigConflict(Exception):
    """An endpoint config with this run's name exists but was defined differently."""


def production_variants(model_name: str, instance_type: str, instance_count: int) -> list[dict]:
    return [
        {
            "VariantName": VARIANT_NAME,
            "ModelName": model_name,
            "InstanceType": instance_type,
            "InitialInstanceCount": instance_count,
            "InitialVariantWeight": 1.0,
        }
    ]


def _same(existing: dict, variants: list[dict]) -> bool:
    keys = ("VariantName", "ModelName", "InstanceType", "InitialInstanceCount")
    have = [{k: v.get(k) for k in keys} for v in existing.get("ProductionVariants") or []]
    want = [{k: v.get(k) for k in keys} for v in variants]
    return have == want


def ensure_endpoint_config(sagemaker, name: str, variants: list[dict]) -> bool:
    existing, created = ensure_created(
        sagemaker.describe_endpoint_config,
        sagemaker.create_endpoint_config,
        {"EndpointConfigName": name},
        {"EndpointConfigName": name, "ProductionVariants": variants},
    )
    if not created and not _same(existing, variants):
        raise EndpointConfigConflict(f"endpoint config {name} already exists with a different definition")
    return created


def create_endpoint_config(sagemaker, event: dict, instance_type: str, instance_count: int) -> dict:
    try:
        name = event["names"]["endpoint_config"]
        model_name = event["model_name"]
    except (TypeError, KeyError) as error:
        raise InvalidEvent(f"the event needs names.endpoint_config and model_name ({error})") from None
    created = ensure_endpoint_config(sagemaker, name, production_variants(model_name, instance_type, instance_count))
    logger.info("endpoint config ready", extra={"endpoint_config_name": name, "newly_created": created})
    return {"endpoint_config_name": name}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    return create_endpoint_config(
        boto3.client("sagemaker"),
        event,
        instance_type=env_str("ENDPOINT_INSTANCE_TYPE", "ml.m5.large"),
        instance_count=env_int("ENDPOINT_INSTANCE_COUNT", 1, minimum=1),
    )
