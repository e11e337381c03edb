"""Reads the run manifest and plans the rest of the run: resource names and
the complete CreateTrainingJob request for SageMaker's built-in XGBoost."""
from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Tracer

from pipeline_common.aws_errors import named_aws_errors
from pipeline_common.config import env_bool, env_float, env_int, env_str
from pipeline_common.errors import ConfigurationError, InvalidEvent
from pipeline_common.manifest import MANIFEST_NAME, load_manifest, manifest_uri_for
from pipeline_common.names import is_sagemaker_name, resource_names

logger = Logger()
tracer = Tracer()

# SageMaker limits: MaxRuntimeInSeconds <= 28 days, MaxWaitTimeInSeconds >= MaxRuntime.
_MAX_TRAINING_SECONDS = 28 * 24 * 3600


def training_settings_from_env() -> dict:
    max_runtime = env_int("TRAINING_MAX_RUNTIME_SECONDS", 3600, minimum=60, maximum=_MAX_TRAINING_SECONDS)
    use_spot = env_bool("USE_SPOT_TRAINING", False)
    settings = {
        "role_arn": env_str("SAGEMAKER_ROLE_ARN"),
        "image_uri": env_str("XGBOOST_IMAGE_URI"),
        "instance_type": env_str("TRAINING_INSTANCE_TYPE", "ml.m5.large"),
        "volume_gb": env_int("TRAINING_VOLUME_GB", 10, minimum=1, maximum=16384),
        "max_runtime": max_runtime,
        "use_spot": use_spot,
        "max_wait": None,
        "num_round": env_int("XGBOOST_NUM_ROUND", 200, minimum=1),
        "early_stopping_rounds": env_int("XGBOOST_EARLY_STOPPING_ROUNDS", 10, minimum=1),
        "eta": env_float("XGBOOST_ETA", 0.2, minimum=0.0, maximum=1.0),
        "max_depth": env_int("XGBOOST_MAX_DEPTH", 6, minimum=1),
    }
    if use_spot:
        max_wait = env_int("SPOT_MAX_WAIT_SECONDS", 2 * max_runtime, maximum=_MAX_TRAINING_SECONDS)
        if max_wait < max_runtime:
            raise ConfigurationError(
                f"SPOT_MAX_WAIT_SECONDS={max_wait} must be at least TRAINING_MAX_RUNTIME_SECONDS={max_runtime}"
            )
        settings["max_wait"] = max_wait
    return settings


def training_request(job_name: str, manifest: dict, settings: dict) -> dict:
    uris = manifest["uris"]

    def channel(name: str, uri: str) -> dict:
        return {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": uri,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "text/csv",
            "CompressionType": "None",
        }

    stopping = {"MaxRuntimeInSeconds": settings["max_runtime"]}
    if settings["use_spot"]:
        stopping["MaxWaitTimeInSeconds"] = settings["max_wait"]
    return {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {"TrainingImage": settings["image_uri"], "TrainingInputMode": "File"},
        "RoleArn": settings["role_arn"],
        # The built-in algorithm takes every hyperparameter as a string.
        "HyperParameters": {
            "objective": "multi:softmax",
            "num_class": str(manifest["num_class"]),
            "num_round": str(settings["num_round"]),
            "early_stopping_rounds": str(settings["early_stopping_rounds"]),
            "eval_metric": "merror",
            "eta": repr(settings["eta"]),
            "max_depth": str(settings["max_depth"]),
        },
        "InputDataConfig": [channel("train", uris["train"]), channel("validation", uris["validation"])],
        "OutputDataConfig": {"S3OutputPath": uris["training_output"]},
        "ResourceConfig": {
            "InstanceType": settings["instance_type"],
            "InstanceCount": 1,
            "VolumeSizeInGB": settings["volume_gb"],
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": settings["use_spot"],
    }


def prepare_training(s3, run: dict, settings: dict, production_endpoint: str, poll_seconds: int, approval_timeout: int) -> dict:
    if not isinstance(run, dict) or not isinstance(run.get("run_id"), str) or not run["run_id"]:
        raise InvalidEvent("the event must carry run.run_id and run.run_prefix")
    manifest_uri = manifest_uri_for(run) + MANIFEST_NAME
    manifest = load_manifest(s3, manifest_uri, run_id=run["run_id"])
    names = resource_names(run["run_id"], production_endpoint)
    logger.info("training planned", extra={"run_id": run["run_id"], "training_job": names["training_job"]})
    return {
        "names": names,
        "training": training_request(names["training_job"], manifest, settings),
        "manifest_uri": manifest_uri,
        "poll_seconds": poll_seconds,
        "approval_timeout_seconds": approval_timeout,
    }


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    production_endpoint = env_str("PRODUCTION_ENDPOINT_NAME")
    if not is_sagemaker_name(production_endpoint):
        raise ConfigurationError(f"PRODUCTION_ENDPOINT_NAME {production_endpoint!r} is not a valid SageMaker endpoint name")
    return prepare_training(
        boto3.client("s3"),
        (event or {}).get("run") if isinstance(event, dict) else None,
        settings=training_settings_from_env(),
        production_endpoint=production_endpoint,
        poll_seconds=env_int("POLL_SECONDS", 30, minimum=1),
        # Step Functions caps a task's TimeoutSeconds at 99999999; a year is the execution limit.
        approval_timeout=env_int("APPROVAL_TIMEOUT_SECONDS", 86400, minimum=1, maximum=365 * 24 * 3600),
    )
