"""`sagemaker:createTrainingJob.sync`: SageMaker's built-in XGBoost (1.7-1), locally.

Takes the CreateTrainingJob request as the state machine sends it: the
channels' CSV (label first, no header) from moto's S3 and the hyperparameters
as strings. The algorithm's own rules (`xgboost_algorithm`, read from the 1.7-1
container) validate the hyperparameters before any data is read, decide what
reaches `xgb.train` (early stopping on the validation channel's last
`eval_metric`, keeping the rounds up to the best one), and name the final
metrics. Trains with the xgboost 1.7.x package the serving side loads and
writes `<S3OutputPath>/<TrainingJobName>/output/model.tar.gz` holding
`xgboost-model` (Booster.save_model) as the algorithm does. Returns what
DescribeTrainingJob returns when the job completed; a failure is
`States.TaskFailed` with the failed job's description (FailureReason) as the
cause, as Step Functions reports it.

The job exists in moto's SageMaker while it trains, as on AWS: the worker
creates it there with the request (CreateTrainingJob: a name in use is
refused, and that refusal is the integration's
`SageMaker.AmazonSageMakerException`), and records how it ended
(`localmode.aws.end_training_job`), so DescribeTrainingJob, StopTrainingJob
and the state machine's recovery after a lost answer see it.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import boto3
from botocore.exceptions import ClientError, ParamValidationError

from localmode import aws
from localmode.sfn import TaskFailed, TaskRequest
from localmode.workers import s3util, xgboost_algorithm
from localmode.workers.services import authorize_integration, optimized_error

# The rule the .sync integration for training jobs waits through (Step Functions' documented name).
MANAGED_TRAINING_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
STEP_FUNCTIONS_TAG = {"Key": "MANAGED_BY_AWS", "Value": "STARTED_BY_STEP_FUNCTIONS"}


class TrainingFailed(Exception):
    """The job's input is refused before the algorithm runs (FailureReason "ClientError: ...")."""


def plan_training(hyperparameters: Mapping[str, Any]) -> xgboost_algorithm.TrainingPlan:
    """The container's hyperparameter validation and what it then passes to xgb.train.

    Raises xgboost_algorithm.AlgorithmFailure (reported as the container reports it) or
    xgboost_algorithm.NotEmulated."""
    return xgboost_algorithm.training_plan(xgboost_algorithm.validate_hyperparameters(hyperparameters))


def train_on_channels(plan: xgboost_algorithm.TrainingPlan, channels: Mapping[str, Path], nthread: int):
    """The algorithm on local channel directories: (booster, FinalMetricDataList values)."""
    import xgboost as xgb

    if "train" not in channels:
        raise TrainingFailed("the train channel is required")
    matrices = {}
    for name in ("train", "validation"):  # the only data channels the algorithm reads
        if name in channels:
            labels, features, weights = read_channel(channels[name], csv_weights=plan.csv_weights)
            matrices[name] = xgb.DMatrix(features, label=labels, weight=weights)
    booster, history = xgboost_algorithm.train(plan, matrices["train"], matrices.get("validation"), nthread=nthread)
    return booster, xgboost_algorithm.final_metrics(history)


def read_channel(directory: Path, csv_weights: int = 0):
    """Label-first CSV parts without header -> (labels, features, weights); with csv_weights=1
    the second column holds each row's weight (data_utils._get_csv_dmatrix_file_mode)."""
    import numpy as np

    parts = [p for p in sorted(directory.rglob("*")) if p.is_file() and p.stat().st_size > 0 and not p.name.startswith(".")]
    if not parts:
        raise TrainingFailed(f"channel {directory.name} has no data")
    arrays = []
    for part in parts:
        try:
            arrays.append(np.loadtxt(part, delimiter=",", dtype=np.float32, ndmin=2))
        except ValueError as exc:
            raise TrainingFailed(f"channel {directory.name}: {part.name} is not numeric CSV ({exc})") from None
    data = np.concatenate(arrays)
    if csv_weights == 1:
        return data[:, 0], data[:, 2:], data[:, 1]
    return data[:, 0], data[:, 1:], None


def check_role(role_arn: Any, allowed: str) -> None:
    """Refuse, as CreateTrainingJob would and as Step Functions reports it, a role SageMaker cannot assume.

    The request is refused before any job exists (ValidationException), so
    there is no job to describe. The messages are SageMaker's: the API's
    validation of a missing required member, and the one for a role without
    a trust relationship to sagemaker.amazonaws.com.
    """
    if role_arn == allowed:
        return
    if role_arn is None:
        message = "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null"
    else:
        message = (
            f"Could not assume role {role_arn}. Please ensure that the role exists and allows principal "
            "'sagemaker.amazonaws.com' to assume the role."
        )
    raise optimized_error("sagemaker", _validation_error(message))


def _validation_error(message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, "CreateTrainingJob")


def create_job(params: dict) -> None:
    """CreateTrainingJob on moto with the request as Step Functions sends it; a refusal fails the task as the
    integration reports it (no job exists then)."""
    try:
        boto3.client("sagemaker").create_training_job(**params)
    except ClientError as error:
        raise optimized_error("sagemaker", error) from error
    except ParamValidationError as error:  # SageMaker's own validation would refuse it the same way
        raise optimized_error("sagemaker", _validation_error(str(error))) from error


class TrainingWorker:
    """The `sagemaker:createTrainingJob.sync` handler."""

    # One thread: on a small machine shared with Spark, more threads make XGBoost's
    # OpenMP loops contend and run several times slower on this data size.
    # `role_arn`: the stack's SageMaker execution role, the only role SageMaker could assume here.
    def __init__(self, workdir: Path, region: str, account: str, nthread: int = 1, *, role_arn: str,
                 authorize=None, execution_role=None):
        """`authorize(service, operation, params)`: local IAM's check of a call the integration makes as the
        state machine's role; `execution_role()`: the context in which calls are the job's role (`role_arn`)."""
        self.authorize = authorize or (lambda service, operation, params: None)
        self.execution_role = execution_role or contextlib.nullcontext
        self.workdir = Path(workdir)
        self.region = region
        self.account = account
        self.nthread = nthread
        self.role_arn = role_arn
        self.jobs: list[dict] = []

    def __call__(self, request: TaskRequest) -> dict:
        params = request.parameters
        check_role(params.get("RoleArn"), self.role_arn)
        name = params["TrainingJobName"]
        # createTrainingJob.sync waits through a managed EventBridge rule it creates as the state machine's role
        # (https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html); the job's own calls are below.
        for operation in ("PutRule", "PutTargets", "DescribeRule"):
            authorize_integration(self.authorize, "events", operation,
                                  {"Name": MANAGED_TRAINING_RULE, "Rule": MANAGED_TRAINING_RULE})
        # A .sync job is tagged by Step Functions, so creating it needs sagemaker:AddTags too
        # (aws/aws-cdk#27264, #32294: "not authorized to perform: sagemaker:AddTags on resource: ...training-job/...").
        create_job({**params, "Tags": [*(params.get("Tags") or []), STEP_FUNCTIONS_TAG]})
        started = time.time()
        description = {
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:{self.region}:{self.account}:training-job/{name.lower()}",
            "AlgorithmSpecification": params.get("AlgorithmSpecification"),
            "RoleArn": params.get("RoleArn"),
            "HyperParameters": params.get("HyperParameters") or {},
            "InputDataConfig": params.get("InputDataConfig") or [],
            "OutputDataConfig": params.get("OutputDataConfig"),
            "ResourceConfig": params.get("ResourceConfig"),
            "StoppingCondition": params.get("StoppingCondition"),
            "EnableManagedSpotTraining": bool(params.get("EnableManagedSpotTraining")),
            "CreationTime": int(started * 1000),
            "TrainingStartTime": int(started * 1000),
        }
        try:
            with self.execution_role():
                artifacts, metrics = self._train(params)
        except Exception as exc:
            # An S3 refusal of the job's role is the user's error too (SageMaker: "ClientError: ... AccessDenied").
            kind = ("ClientError" if isinstance(exc, (TrainingFailed, xgboost_algorithm.NotEmulated, KeyError, ValueError,
                                                      ClientError))
                    else "AlgorithmError")
            description.update(
                self._ended(started),
                TrainingJobStatus="Failed",
                SecondaryStatus="Failed",
                # DescribeTrainingJob's FailureReason holds at most 1024 characters (botocore's model).
                FailureReason=(getattr(exc, "failure_reason", None) or f"{kind}: {exc}")[:1024],
            )
            description = aws.end_training_job(description, self.account, self.region)
            self.jobs.append(description)
            raise TaskFailed("States.TaskFailed", json.dumps(description)) from exc
        description.update(
            self._ended(started),
            TrainingJobStatus="Completed",
            SecondaryStatus="Completed",
            ModelArtifacts={"S3ModelArtifacts": artifacts},
            FinalMetricDataList=[
                {"MetricName": metric, "Value": value, "Timestamp": int(time.time() * 1000)} for metric, value in metrics.items()
            ],
        )
        description = aws.end_training_job(description, self.account, self.region)
        self.jobs.append(description)
        authorize_integration(self.authorize, "sagemaker", "DescribeTrainingJob", {"TrainingJobName": name})
        if description["TrainingJobStatus"] != "Completed":  # stopped while it trained
            raise TaskFailed("States.TaskFailed", json.dumps(description))
        return description

    def _output_encryption(self, output: dict) -> dict:
        """SSE-KMS as SageMaker writes the model: with OutputDataConfig.KmsKeyId, which the job's role must be allowed
        to kms:Encrypt with; without it, the account's aws/s3 key (SageMaker's API reference, OutputDataConfig)."""
        key = output.get("KmsKeyId")
        if not key:
            return {"ServerSideEncryption": "aws:kms"}
        self.authorize("kms", "Encrypt", {"KeyId": key})
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}

    @staticmethod
    def _ended(started: float) -> dict:
        ended = time.time()
        seconds = max(1, int(round(ended - started)))
        return {"TrainingEndTime": int(ended * 1000), "TrainingTimeInSeconds": seconds, "BillableTimeInSeconds": seconds}

    def _train(self, params: dict) -> tuple[str, dict[str, float]]:
        # The container validates its hyperparameters before it reads any data.
        plan = plan_training(params.get("HyperParameters") or {})
        s3 = boto3.client("s3")
        self.workdir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"training-{params['TrainingJobName']}-", dir=self.workdir))
        try:
            channels = {}
            for channel in params.get("InputDataConfig") or []:
                uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
                content_type = channel.get("ContentType", "text/csv").split(";")[0].strip()
                if content_type != "text/csv":
                    raise TrainingFailed(f"channel {channel['ChannelName']}: content type {content_type} is not supported locally")
                s3util.download(s3, uri, scratch / "input" / channel["ChannelName"])
                channels[channel["ChannelName"]] = scratch / "input" / channel["ChannelName"]
            booster, metrics = train_on_channels(plan, channels, self.nthread)
            model_dir = scratch / "model"
            model_dir.mkdir()
            booster.save_model(str(model_dir / "xgboost-model"))
            archive = scratch / "model.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                tar.add(model_dir / "xgboost-model", arcname="xgboost-model")
            output = params["OutputDataConfig"]["S3OutputPath"]
            bucket, prefix = s3util.split_uri(output if output.endswith("/") else output + "/")
            key = f"{prefix}{params['TrainingJobName']}/output/model.tar.gz"
            s3.upload_file(str(archive), bucket, key, ExtraArgs=self._output_encryption(params["OutputDataConfig"]))
            return f"s3://{bucket}/{key}", metrics
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
