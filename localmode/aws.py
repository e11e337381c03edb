"""moto as local mode's AWS: the mock itself (with Step Functions execution
on), the stack's resources created in it, and the SageMaker behaviour the
pipeline needs that moto 5.2.5 lacks: UpdateEndpoint, training jobs that
exist while they train, and the model registry's updates as SageMaker makes
them.

Model registry: moto's UpdateModelPackage replaces CustomerMetadataProperties
and ApprovalDescription with whatever the request carries, so an update
that sets only the approval status wipes the version's lineage; SageMaker
changes only the fields a request names (CustomerMetadataProperties merge
key by key; CustomerMetadataPropertiesToRemove removes). And moto ignores
CreateModelPackage's ClientToken, SageMaker's idempotency token (botocore
marks it `idempotencyToken`): a retried create with the same token must
return the version the first call made, not a second version.

Training: moto's CreateTrainingJob records a job that is Completed at once
and silently replaces a job of the same name. Here it refuses a name in use
as SageMaker does (ResourceInUse), and the job is InProgress until the local
training worker, which serves TrainXGBoost's `createTrainingJob.sync`, ends
it (`end_training_job`): Completed with its model artifacts, Failed with its
FailureReason, or Stopped when StopTrainingJob came meanwhile. So
DescribeTrainingJob sees the job a lost answer left behind, as on AWS.
DescribeTrainingJob of an unknown job answers SageMaker's own text
("Requested resource not found.").

UpdateEndpoint is added at the API boundary (a `SageMakerResponse` action
over moto's own SageMaker backend), so the real deploy_production Lambda calls
it through boto3 exactly as on AWS. It applies the update at once: the
endpoint switches to the new config (and its production variants), or, when a
rollback is injected (`endpoint_updates.rollback_next`), stays InService on
the previous config as a blue/green update rolled back by its alarms would.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import boto3

from localmode.sfn import MOTO_VERSION

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def isolate_environment(region: str = REGION) -> None:
    """Make every boto3 call in this process stay local: fake credentials, a fixed
    region, and no profile or endpoint override inherited from the user's shell."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE",
                                                          "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN",
                                                          "AWS_WEB_IDENTITY_TOKEN_FILE"):
            os.environ.pop(name)
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_REGION"] = region


# --- UpdateEndpoint ---------------------------------------------------------------


@dataclass
class EndpointUpdates:
    """What the local UpdateEndpoint did, and the rollback it should simulate next."""

    rollback_next: bool = False
    history: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


endpoint_updates = EndpointUpdates()


def _update_endpoint(self) -> Any:
    """SageMaker UpdateEndpoint on moto's backend (bound as `SageMakerResponse.update_endpoint`)."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ValidationError

    backend = self.sagemaker_backend
    name = self._get_param("EndpointName")
    config_name = self._get_param("EndpointConfigName")
    deployment = self._get_param("DeploymentConfig") or {}
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        raise ValidationError(message=f"Could not find endpoint \"{_endpoint_arn(backend, name)}\".")
    if endpoint.endpoint_status != "InService":
        raise ValidationError(message=f"Cannot update in-progress endpoint \"{endpoint.arn}\".")
    if config_name not in backend.endpoint_configs:
        raise ValidationError(message=f"Could not find endpoint configuration \"{config_name}\".")
    if config_name == endpoint.endpoint_config_name:
        raise ValidationError(message="Cannot update endpoint to the endpoint configuration it already uses.")
    with endpoint_updates.lock:
        rolled_back = endpoint_updates.rollback_next
        endpoint_updates.rollback_next = False
        endpoint_updates.history.append(
            {
                "endpoint": name,
                "from": endpoint.endpoint_config_name,
                "to": config_name,
                "deployment_config": deployment,
                "rolled_back": rolled_back,
            }
        )
    now = datetime.datetime.now(datetime.timezone.utc)
    if rolled_back:
        endpoint.failure_reason = (
            "Deployment was rolled back by its auto-rollback configuration: an alarm fired during the baking period."
        )
    else:
        config = backend.endpoint_configs[config_name]
        endpoint.endpoint_config_name = config_name
        endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
        endpoint.failure_reason = None
    endpoint.endpoint_status = "InService"
    endpoint.last_modified_time = now
    return ActionResult({"EndpointArn": endpoint.arn})


# --- training jobs ------------------------------------------------------------------

_training_lock = threading.Lock()
_original_create_training_job: Callable | None = None
_original_describe_training_job: Callable | None = None


def _training_job_arn(backend, name: str) -> str:
    return f"arn:aws:sagemaker:{backend.region_name}:{backend.account_id}:training-job/{name.lower()}"


def _create_training_job(self) -> Any:
    from moto.sagemaker.exceptions import ResourceInUseException

    backend = self.sagemaker_backend
    name = self._get_param("TrainingJobName")
    with _training_lock:
        if name in backend.training_jobs:
            raise ResourceInUseException(
                "Training job names must be unique within an AWS account and region, and a training job with this "
                f"name already exists ({_training_job_arn(backend, name)})"
            )
        result = _original_create_training_job(self)
        job = backend.training_jobs[name]
        job.training_job_status, job.secondary_status = "InProgress", "Training"
        job.training_end_time = None
        # Every attribute end_training_job sets exists from the start: DescribeTrainingJob iterates the
        # job's __dict__, and a key added meanwhile would break that iteration.
        job.failure_reason = job.training_time_in_seconds = job.billable_time_in_seconds = None
    return result


def end_training_job(description: dict, account: str, region: str) -> dict:
    """Record on moto's job how the training worker's job ended (`description`: what DescribeTrainingJob
    returns for it, times in epoch milliseconds as the .sync output carries them). A job StopTrainingJob
    reached meanwhile ends Stopped. Returns the description with the job's final status."""
    from moto.sagemaker.models import sagemaker_backends

    job = sagemaker_backends[account][region].training_jobs.get(description["TrainingJobName"])
    if job is None:  # the request never reached CreateTrainingJob (refused before any job existed)
        return description
    with _training_lock:
        if job.training_job_status == "Stopping":
            description = {**description, "TrainingJobStatus": "Stopped", "SecondaryStatus": "Stopped"}
        status = description["TrainingJobStatus"]
        if status == "Completed":
            job.model_artifacts = description.get("ModelArtifacts") or job.model_artifacts
            job.final_metric_data_list = [
                {**metric, "Timestamp": _from_millis(metric.get("Timestamp"))}
                for metric in description.get("FinalMetricDataList") or []
            ]
        job.failure_reason = description.get("FailureReason")
        job.training_time_in_seconds = description.get("TrainingTimeInSeconds")
        job.billable_time_in_seconds = description.get("BillableTimeInSeconds")
        job.training_end_time = job.last_modified_time = _from_millis(description.get("TrainingEndTime"))
        job.training_job_status, job.secondary_status = status, description.get("SecondaryStatus", status)
    return description


def _from_millis(value) -> datetime.datetime:
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value / 1000, tz=datetime.timezone.utc)
    return datetime.datetime.now(datetime.timezone.utc)


def _describe_training_job(self) -> Any:
    from moto.sagemaker.exceptions import ValidationError

    if self._get_param("TrainingJobName") not in self.sagemaker_backend.training_jobs:
        raise ValidationError(message="Requested resource not found.")
    return _original_describe_training_job(self)


def _stop_training_job(self) -> Any:
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ValidationError

    name = self._get_param("TrainingJobName")
    job = self.sagemaker_backend.training_jobs.get(name)
    if job is None:
        raise ValidationError(message="Requested resource not found.")
    with _training_lock:
        if job.training_job_status != "InProgress":
            # SageMaker's answer, as a user reported it (https://github.com/awslabs/benchmark-ai/issues/928).
            raise ValidationError(
                message=f"The request was rejected because the training job is in status {job.training_job_status}.")
        job.training_job_status, job.secondary_status = "Stopping", "Stopping"
    return ActionResult({})


@contextlib.contextmanager
def training_jobs_installed() -> Iterator[None]:
    """Give moto's SageMaker training jobs that exist while they train (ended by `end_training_job`) while active."""
    global _original_create_training_job, _original_describe_training_job
    import moto
    from moto.sagemaker.models import FakeTrainingJob
    from moto.sagemaker.responses import SageMakerResponse

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"localmode.aws replaces moto {MOTO_VERSION}'s training jobs; found {moto.__version__}")
    if hasattr(SageMakerResponse, "stop_training_job"):
        raise RuntimeError("moto now implements StopTrainingJob itself: re-check localmode.aws's training jobs")
    missing = [a for a in ("training_job_status", "secondary_status", "model_artifacts", "training_end_time",
                           "final_metric_data_list", "last_modified_time")
               if a not in FakeTrainingJob.__init__.__code__.co_names]
    if missing:
        raise RuntimeError(f"moto's FakeTrainingJob no longer sets {missing}: re-check localmode.aws")
    _original_create_training_job = SageMakerResponse.create_training_job
    _original_describe_training_job = SageMakerResponse.describe_training_job
    SageMakerResponse.create_training_job = _create_training_job
    SageMakerResponse.describe_training_job = _describe_training_job
    SageMakerResponse.stop_training_job = _stop_training_job
    try:
        yield
    finally:
        SageMakerResponse.create_training_job = _original_create_training_job
        SageMakerResponse.describe_training_job = _original_describe_training_job
        del SageMakerResponse.stop_training_job


def _endpoint_arn(backend, name: str) -> str:
    return f"arn:aws:sagemaker:{backend.region_name}:{backend.account_id}:endpoint/{name.lower()}"


@contextlib.contextmanager
def update_endpoint_installed() -> Iterator[EndpointUpdates]:
    """Give moto's SageMaker an UpdateEndpoint while active."""
    import moto
    from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig
    from moto.sagemaker.responses import SageMakerResponse

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"localmode.aws adds UpdateEndpoint to moto {MOTO_VERSION}; found {moto.__version__}")
    if hasattr(SageMakerResponse, "update_endpoint") and SageMakerResponse.update_endpoint is not _update_endpoint:
        raise RuntimeError("moto now implements UpdateEndpoint itself: drop localmode.aws's version")
    for cls, attrs in ((FakeEndpoint, ("endpoint_status", "endpoint_config_name", "production_variants")),
                       (FakeEndpointConfig, ("production_variants",))):
        missing = [a for a in attrs if a not in cls.__init__.__code__.co_names]
        if missing:
            raise RuntimeError(f"moto's {cls.__name__} no longer sets {missing}: re-check localmode.aws")
    SageMakerResponse.update_endpoint = _update_endpoint
    endpoint_updates.rollback_next = False
    endpoint_updates.history.clear()
    try:
        yield endpoint_updates
    finally:
        del SageMakerResponse.update_endpoint


# --- model registry ------------------------------------------------------------------


_original_update_model_package: Callable | None = None
_original_create_model_package: Callable | None = None


def _update_model_package(self) -> Any:
    """UpdateModelPackage changing only what the request names (bound as `SageMakerResponse.update_model_package`)."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.utils import validate_model_approval_status

    backend = self.sagemaker_backend
    arn = self._get_param("ModelPackageArn")
    package = backend.model_packages.get(backend.model_package_name_mapping.get(arn, arn))
    if package is None:
        raise ValidationError(message=f"Model package {arn} does not exist.")
    status = self._get_param("ModelApprovalStatus")
    if status is not None:
        validate_model_approval_status(status)
        package.model_approval_status = status
    description = self._get_param("ApprovalDescription")
    if description is not None:
        package.approval_description = description
    merged = dict(package.customer_metadata_properties or {})
    merged.update(self._get_param("CustomerMetadataProperties") or {})
    for key in self._get_param("CustomerMetadataPropertiesToRemove") or []:
        merged.pop(key, None)
    package.customer_metadata_properties = merged or None
    package.add_additional_inference_specifications(self._get_param("AdditionalInferenceSpecificationsToAdd"))
    package.modifications_done()
    return ActionResult({"ModelPackageArn": package.arn})


def _create_model_package(self) -> Any:
    """CreateModelPackage that honours ClientToken: the same token returns the version it created."""
    from moto.core.responses import ActionResult

    token = self._get_param("ClientToken")
    if token:
        for package in self.sagemaker_backend.model_packages.values():
            if package.client_token == token:
                return ActionResult({"ModelPackageArn": package.arn})
    return _original_create_model_package(self)


@contextlib.contextmanager
def model_registry_installed() -> Iterator[None]:
    """Give moto's model registry SageMaker's update and idempotency behaviour while active."""
    global _original_update_model_package, _original_create_model_package
    import moto
    from moto.sagemaker.models import ModelPackage
    from moto.sagemaker.responses import SageMakerResponse

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"localmode.aws corrects moto {MOTO_VERSION}'s model registry; found {moto.__version__}")
    missing = [a for a in ("customer_metadata_properties", "approval_description", "client_token", "model_approval_status")
               if a not in ModelPackage.__init__.__code__.co_names]
    if missing:
        raise RuntimeError(f"moto's ModelPackage no longer sets {missing}: re-check localmode.aws")
    _original_update_model_package = SageMakerResponse.update_model_package
    _original_create_model_package = SageMakerResponse.create_model_package
    SageMakerResponse.update_model_package = _update_model_package
    SageMakerResponse.create_model_package = _create_model_package
    try:
        yield
    finally:
        SageMakerResponse.update_model_package = _original_update_model_package
        SageMakerResponse.create_model_package = _original_create_model_package


# --- the mock and the stack's resources -----------------------------------------------


@contextlib.contextmanager
def local_aws(region: str = REGION) -> Iterator[None]:
    """moto for every AWS API, state machines executed, UpdateEndpoint, training jobs that exist while they train, the registry's updates."""
    from moto import mock_aws

    isolate_environment(region)
    with (mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), update_endpoint_installed(),
          training_jobs_installed(), model_registry_installed()):
        yield


@dataclass
class Resources:
    """Names of what create_resources made."""

    input_bucket: str
    input_prefix: str
    artifacts_bucket: str
    state_table: str
    topic_arn: str
    mailbox_url: str  # an SQS queue subscribed to the topic: the "email inbox"
    spec_uri: str
    skipped_specs: dict = field(default_factory=dict)  # spec path -> why it was not uploaded


def create_resources(stack, spec_paths) -> Resources:
    """What `sam deploy` (and `make deploy`'s uploads) would have created, in moto.
    `spec_paths`: the dataset specs `make deploy` uploads (every datasets/*.json), and a
    spec given with --spec; each goes to deps/datasets/<its name>.json, as on AWS."""
    s3 = boto3.client("s3")
    [input_id] = [k for k, r in stack.resources_of_type("AWS::S3::Bucket").items() if "Input" in k]
    [artifacts_id] = [k for k, r in stack.resources_of_type("AWS::S3::Bucket").items() if "Artifacts" in k]
    input_bucket, artifacts_bucket = stack.ref(input_id), stack.ref(artifacts_id)
    for logical_id, bucket in ((input_id, input_bucket), (artifacts_id, artifacts_bucket)):
        s3.create_bucket(Bucket=bucket)
        # Versioned as the template says: an upload's version id is part of a model's lineage.
        versioning = stack.resources[logical_id]["Properties"].get("VersioningConfiguration")
        if versioning:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=versioning)

    dynamodb = boto3.client("dynamodb")
    tables = {}
    for logical_id, table in stack.resources_of_type("AWS::DynamoDB::Table").items():
        props = table["Properties"]
        name = stack.ref(logical_id)
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
        )
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        tables[logical_id] = name

    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    [topic_id] = stack.resources_of_type("AWS::SNS::Topic")
    topic_arn = sns.create_topic(Name=stack.physical_name(topic_id))["TopicArn"]
    mailbox_url = sqs.create_queue(QueueName=f"{stack.physical_name(topic_id)}-mailbox")["QueueUrl"]
    mailbox_arn = sqs.get_queue_attributes(QueueUrl=mailbox_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=mailbox_arn)

    skipped = {}
    for path in [spec_paths] if isinstance(spec_paths, (str, os.PathLike)) else spec_paths:
        # One broken spec must not stop every other dataset's runs: it is left out, and said so.
        try:
            name = json.loads(open(path, encoding="utf-8").read())["name"]
            if not isinstance(name, str):
                raise TypeError(f"its \"name\" is {name!r}, not a string")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            reason = "it has no \"name\"" if isinstance(exc, KeyError) else str(exc)
            skipped[str(path)] = f"{path} is not a usable spec ({reason}): not uploaded, so a run of its dataset fails in ResolveDataset"
            continue
        s3.upload_file(str(path), artifacts_bucket, f"deps/datasets/{name}.json")
    # The Glue job's default --spec (the default dataset's), which every run overrides with its own.
    spec_uri = stack.glue_default_arguments().get("--spec", f"s3://{artifacts_bucket}/deps/datasets/car.json")

    return Resources(
        input_bucket=input_bucket,
        input_prefix=stack.parameter("InputPrefix"),
        artifacts_bucket=artifacts_bucket,
        state_table=next(iter(tables.values()), ""),
        topic_arn=topic_arn,
        mailbox_url=mailbox_url,
        spec_uri=spec_uri,
        skipped_specs=skipped,
    )


def eventbridge_delivers(pattern: dict, event: dict) -> bool:
    """Whether an EventBridge rule with `pattern` on the default bus delivers `event` (moto's
    matching, through its public API: a throwaway rule with an SQS target, then PutEvents)."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    name = f"match-{uuid.uuid4().hex[:12]}"
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=name, Targets=[{"Id": "probe", "Arn": arn}])
    try:
        events.put_events(Entries=[{"Source": event["source"], "DetailType": event["detail-type"],
                                    "Detail": json.dumps(event["detail"]), "Resources": event.get("resources", [])}])
        return bool(sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1).get("Messages"))
    finally:
        events.remove_targets(Rule=name, Ids=["probe"])
        events.delete_rule(Name=name)
        sqs.delete_queue(QueueUrl=queue)


def read_mailbox(mailbox_url: str, sqs=None) -> list[dict]:
    """SNS notifications delivered so far, as {"subject", "message"} (what an email shows). Pass a client
    made beforehand when Lambdas may run meanwhile: making one iterates os.environ, which the local
    Lambdas change on their own thread."""
    sqs = sqs or boto3.client("sqs")
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=mailbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            envelope = json.loads(message["Body"])
            found.append({"subject": envelope.get("Subject"), "message": envelope.get("Message", "")})
            sqs.delete_message(QueueUrl=mailbox_url, ReceiptHandle=message["ReceiptHandle"])
