"""Creates the run's QA endpoint from its endpoint config, once, however often
it is called (a retry after a server error finds the endpoint it created).

Returns `{"endpoint_name", "wait_until"}`: the state machine polls the
endpoint (check_status) until it is InService, fails, or `wait_until`
(creation + ENDPOINT_WAIT_SECONDS) passes.
"""
from __future__ import annotations

from datetime import timedelta

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from pipeline_common.aws_errors import CLIENT_CONFIG, named_aws_errors
from pipeline_common.config import env_int, env_str
from pipeline_common.errors import InvalidEvent
from pipeline_common.names import is_sagemaker_name
from pipeline_common.sagemaker import describe_or_none, is_already_exists
from pipeline_common.timeutil import iso, utc_now

logger = Logger()
tracer = Tracer()


class QAEndpointConflict(Exception):
    """An endpoint with the QA endpoint's name exists but serves another endpoint config."""


def create_qa_endpoint(sagemaker, endpoint_name: str, config_name: str, wait_seconds: int,
                       production_endpoint: str, now=None) -> dict:
    if not is_sagemaker_name(endpoint_name) or not is_sagemaker_name(config_name):
        raise InvalidEvent("the event needs names.qa_endpoint and endpoint_config_name, valid SageMaker names")
    if endpoint_name == production_endpoint:
        raise InvalidEvent(f"refusing to create a QA endpoint named like production ({endpoint_name})")
    existing = describe_or_none(sagemaker.describe_endpoint, EndpointName=endpoint_name)
    if existing is None:
        try:
            sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)
            logger.info("QA endpoint created", extra={"endpoint_name": endpoint_name})
            return {"endpoint_name": endpoint_name, "wait_until": iso((now or utc_now()) + timedelta(seconds=wait_seconds))}
        except ClientError as error:
            if not is_already_exists(error):
                raise
        existing = describe_or_none(sagemaker.describe_endpoint, EndpointName=endpoint_name)
        if existing is None:
            raise QAEndpointConflict(f"SageMaker says endpoint {endpoint_name} exists but cannot describe it")
    configs = {existing.get("EndpointConfigName"), (existing.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")}
    if config_name not in configs:
        raise QAEndpointConflict(
            f"endpoint {endpoint_name} already exists on config {existing.get('EndpointConfigName')}, not this run's "
            f"{config_name}"
        )
    return {"endpoint_name": endpoint_name,
            "wait_until": iso(existing["CreationTime"] + timedelta(seconds=wait_seconds))}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    try:
        endpoint_name, config_name = event["names"]["qa_endpoint"], event["endpoint_config_name"]
    except (TypeError, KeyError):
        raise InvalidEvent("the event needs names.qa_endpoint and endpoint_config_name") from None
    return create_qa_endpoint(
        boto3.client("sagemaker", config=CLIENT_CONFIG),
        endpoint_name,
        config_name,
        wait_seconds=env_int("ENDPOINT_WAIT_SECONDS", 3600, minimum=60),
        production_endpoint=env_str("PRODUCTION_ENDPOINT_NAME"),
    )
