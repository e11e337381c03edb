"""Stand-in services for running the real definitions' control flow fast.

The SageMaker control plane is a small model of the world (training jobs,
endpoints with statuses that change as they are polled, the production lock)
behind a client with boto3's method names and SageMaker's error texts.
TrainXGBoost's `createTrainingJob.sync` calls it as Step Functions would
(CreateTrainingJob, then DescribeTrainingJob until the job ends; an API error
is `SageMaker.AmazonSageMakerException` with the SDK's text as the cause, a
job that ended Failed or Stopped is `States.TaskFailed` with its
description). The Lambdas that decide things from what SageMaker says
(recover_training, create_qa_endpoint, check_status, cleanup) are the real
functions' code run against that client; the others answer per the contract
in docs/architecture.md. A test asserts what a user would notice: which
endpoints and jobs exist afterwards, what mail went out, how the execution
ended. No Spark, no XGBoost, no moto SageMaker: those are tests/localmode's
business.
"""
from __future__ import annotations

import datetime
import io
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from localmode import lambdas, sfn
from localmode.workers.services import optimized_error

REPO = Path(__file__).resolve().parents[2]
DEFINITION = REPO / "statemachine" / "pipeline.asl.json"
CLEANUP_DEFINITION = REPO / "statemachine" / "cleanup.asl.json"
REGION = "us-east-1"
ACCOUNT = lambdas.ACCOUNT
PRODUCTION = "car-production"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:pipeline-notifications"
CLEANUP_MACHINE = "pipeline-cleanup"
_FUNCTIONS = lambdas.LocalLambdas(region=REGION)


def function_module(folder: str):
    """The real functions/<folder>/app.py (the shared layer on sys.path)."""
    return _FUNCTIONS.module(folder)


def substitutions(definition: Path = DEFINITION) -> dict[str, str]:
    values = {}
    for name in sfn.substitution_names(definition.read_text(encoding="utf-8")):
        folder = lambdas.folder_for_substitution(name)
        if folder:
            values[name] = lambdas.local_function_arn(folder, REGION)
    values.update(ArtifactsBucketName="artifacts", GlueJobName="preprocess", NotificationTopicArn=TOPIC_ARN)
    return {k: v for k, v in values.items() if k in sfn.substitution_names(definition.read_text(encoding="utf-8"))}


def lambda_failure(error_type: str, message: str) -> sfn.TaskFailed:
    """A Lambda's exception as Step Functions reports it."""
    return sfn.TaskFailed(error_type, lambdas.LambdaError(error_type, message, []).payload_json())


def client_error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       operation)


@dataclass
class Endpoint:
    config: str
    status: str
    failure_reason: str | None = None


@dataclass
class TrainingJob:
    request: dict
    status: str = "InProgress"
    failure_reason: str | None = None
    created: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc))


@dataclass
class World:
    """What the stand-ins act on, and how each should behave in this test."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    training_jobs: dict[str, TrainingJob] = field(default_factory=dict)
    published: list[dict] = field(default_factory=list)
    handed_over: list[dict] = field(default_factory=list)  # cleanup state machine executions started by the pipeline
    production_lock: dict = field(default_factory=dict)  # {"run_id", "started_at"} of the run allowed to deploy last
    # the model registry: ARN -> {"version", "status", "description", "run_id", "config"}
    packages: dict[str, dict] = field(default_factory=dict)
    # state name -> TaskFailed raised every time that state's task runs
    failures: dict[str, sfn.TaskFailed] = field(default_factory=dict)
    # state name -> errors raised on the first attempts only (transient)
    transient: dict[str, list[sfn.TaskFailed]] = field(default_factory=dict)
    # SageMaker API (e.g. "CreateTrainingJob") -> ClientErrors it answers, one per call, before it works
    sagemaker_errors: dict[str, list[ClientError]] = field(default_factory=dict)
    # SageMaker APIs whose next call does its work but whose response is lost (a 500 reaches the caller)
    lost_responses: set[str] = field(default_factory=set)
    accuracy: float = 0.97
    threshold: float = 0.95
    # The dataset specs in the artifacts bucket (deps/datasets/<name>.json), by name.
    dataset_specs: dict[str, dict] = field(default_factory=lambda: {"car": {"name": "car"}})
    approval: str = "approve"  # approve | reject | none
    approval_timeout_seconds: int = 60
    endpoint_wait_seconds: int = 3600
    rollback: bool = False  # the production update is rolled back by its guardrails
    newer_run_deploys: bool = False  # a later-started run claims production and deploys while this one waits
    production_end_status: str = "InService"
    qa_end_status: str = "InService"
    qa_failure_reason: str | None = None
    training_end_status: str = "Completed"
    polls_until_ready: int = 1  # describe calls that answer Creating/Updating/InProgress before the final status
    sfn_client: Any = None
    cleanup_machine_arn: str = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{CLEANUP_MACHINE}"
    lock: threading.Lock = field(default_factory=threading.Lock)
    _describe_counts: dict[str, int] = field(default_factory=dict)
    _pending: dict[str, Any] = field(default_factory=dict)
    _targets: dict[str, str] = field(default_factory=dict)  # endpoint -> the config an update in progress moves to

    # --- the services --------------------------------------------------------
    def before_call(self, request: sfn.TaskRequest) -> None:
        if request.state_name in self.failures:
            raise self.failures[request.state_name]
        queued = self.transient.get(request.state_name)
        if queued:
            raise queued.pop(0)

    def glue(self, request: sfn.TaskRequest) -> dict:
        return {"Id": f"jr_{request.execution_name}", "JobName": request.parameters["JobName"], "JobRunState": "SUCCEEDED"}

    def train(self, request: sfn.TaskRequest) -> dict:
        """`sagemaker:createTrainingJob.sync`: create the job, then describe it until it ends."""
        sagemaker = WorldSageMaker(self)
        name = request.parameters["TrainingJobName"]
        try:
            sagemaker.create_training_job(**request.parameters)
            while True:
                description = sagemaker.describe_training_job(TrainingJobName=name)
                if description["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
                    break
        except ClientError as error:
            raise optimized_error("sagemaker", error) from error
        if description["TrainingJobStatus"] != "Completed":
            raise sfn.TaskFailed("States.TaskFailed", json.dumps(description, default=str))
        return json.loads(json.dumps(description, default=str))

    def publish(self, request: sfn.TaskRequest) -> dict:
        with self.lock:
            self.published.append(dict(request.parameters))
        return {"MessageId": f"m{len(self.published)}"}

    # --- the Lambdas ------------------------------------------------------------
    def invoke(self, request: sfn.TaskRequest) -> dict:
        function = lambdas.function_name_from(request.parameters["FunctionName"])
        payload = json.loads(json.dumps(request.parameters.get("Payload") or {}))
        # Every handler fails the way named_aws_errors makes the real ones fail.
        named = function_module("cleanup").named_aws_errors(lambda event, context: getattr(self, f"fn_{function}")(event, request))
        try:
            result = named(payload, None)
        except sfn.TaskFailed:
            raise
        except Exception as exc:  # a real function's named error, as the Lambda service reports it
            raise lambda_failure(type(exc).__name__, str(exc)) from exc
        return lambdas.lambda_invoke_result(json.loads(json.dumps(result)))

    def fn_resolve_dataset(self, payload: dict, request: sfn.TaskRequest) -> dict:
        return function_module("resolve_dataset").resolve_dataset(
            WorldS3(self), payload, "artifacts", "uploads/", "car", PRODUCTION, "-prod")

    def fn_prepare_training(self, payload: dict, request: sfn.TaskRequest) -> dict:
        run_id = payload["run"]["run_id"]
        names = {
            "training_job": f"{run_id}-train",
            "model": f"{run_id}-model",
            "endpoint_config": f"{run_id}-config",
            "qa_endpoint": f"{run_id}-qa",
            "production_endpoint": payload["dataset"]["production_endpoint"],
        }
        training = {
            "TrainingJobName": names["training_job"],
            "AlgorithmSpecification": {"TrainingImage": "xgboost:1.7-1", "TrainingInputMode": "File"},
            "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
            "HyperParameters": {"objective": "multi:softmax", "num_class": "4"},
            "InputDataConfig": [],
            "OutputDataConfig": {"S3OutputPath": f"{payload['run']['run_prefix']}training/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "EnableManagedSpotTraining": False,
        }
        return {
            "names": names,
            "training": training,
            "manifest_uri": f"{payload['run']['run_prefix']}manifest.json",
            "poll_seconds": 0,
            "approval_timeout_seconds": self.approval_timeout_seconds,
        }

    def fn_recover_training(self, payload: dict, request: sfn.TaskRequest) -> dict:
        # No jitter here: the backoff Wait is then 0 s and the test does not sleep.
        return function_module("recover_training").recover_training(WorldSageMaker(self), payload, rng=NoJitter())

    def fn_check_status(self, payload: dict, request: sfn.TaskRequest) -> dict:
        return function_module("check_status").check_status(WorldSageMaker(self), WorldDynamoDb(self), "state", payload)

    def fn_create_model(self, payload: dict, request: sfn.TaskRequest) -> dict:
        return {"model_name": payload["names"]["model"]}

    def fn_create_endpoint_config(self, payload: dict, request: sfn.TaskRequest) -> dict:
        return {"endpoint_config_name": payload["names"]["endpoint_config"]}

    def fn_create_qa_endpoint(self, payload: dict, request: sfn.TaskRequest) -> dict:
        return function_module("create_qa_endpoint").create_qa_endpoint(
            WorldSageMaker(self), payload["names"]["qa_endpoint"], payload["endpoint_config_name"],
            wait_seconds=self.endpoint_wait_seconds, production_endpoint=PRODUCTION)

    def fn_qa_test(self, payload: dict, request: sfn.TaskRequest) -> dict:
        qa = payload["names"]["qa_endpoint"]
        assert self.endpoints[qa].status == "InService", "QA ran against an endpoint that is not InService"
        if self.accuracy < self.threshold:
            raise lambda_failure("QualityBelowThreshold", f"accuracy {self.accuracy} is below the threshold {self.threshold}")
        return {"problem_type": "multiclass", "metric": "accuracy", "value": self.accuracy, "threshold": self.threshold,
                "higher_is_better": True, "accuracy": self.accuracy, "rows": 346,
                "report_uri": "s3://artifacts/qa/report.json"}

    def fn_request_approval(self, payload: dict, request: sfn.TaskRequest) -> dict:
        token = payload["task_token"]
        assert token == request.task_token
        # A person decides after the mail went out: on another thread, through Step Functions' public API.
        if self.approval == "approve":
            decide = lambda: self.sfn_client.send_task_success(taskToken=token, output=json.dumps({"decision": "approved", "by": "tester"}))  # noqa: E731
        elif self.approval == "reject":
            decide = lambda: self.sfn_client.send_task_failure(taskToken=token, error="ApprovalRejected", cause="metrics look off")  # noqa: E731
        else:
            decide = None
        if decide is not None:
            threading.Timer(0.05, decide).start()
        return {"sent": True}

    def fn_register_model(self, payload: dict, request: sfn.TaskRequest) -> dict:
        with self.lock:
            version = len(self.packages) + 1
            arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{PRODUCTION}/{version}"
            self.packages.setdefault(arn, {"version": version, "status": "PendingManualApproval", "description": None,
                                           "run_id": payload["run"]["run_id"], "config": f"{payload['run']['run_id']}-config",
                                           "execution_input": payload.get("execution_input")})
        return {"model_package_arn": arn, "model_package_group": PRODUCTION, "version": version,
                "status": "PendingManualApproval", "kind": "registered"}

    def fn_record_decision(self, payload: dict, request: sfn.TaskRequest) -> dict:
        decide = function_module("record_decision").record_decision
        return decide(WorldSageMaker(self), payload)

    def fn_prepare_rollback(self, payload: dict, request: sfn.TaskRequest) -> dict:
        # The real function's contract: the endpoint is ResolveRollbackDataset's answer (dataset.production_endpoint).
        endpoint = payload["dataset"]["production_endpoint"]
        version = payload["rollback"]["model_package_version"]
        arn = next((a for a, p in self.packages.items() if p["version"] == version and f"/{endpoint}/" in a), None)
        if arn is None or self.packages[arn]["status"] != "Approved":
            raise lambda_failure("ModelPackageNotApproved", f"version {version} is not an Approved version")
        return {"names": {"production_endpoint": endpoint},
                "registry": {"model_package_arn": arn, "model_package_group": endpoint, "version": version,
                             "status": "Approved", "kind": "rollback"},
                "summary": {"kind": "rollback", "target": {"version": version}, "serving": {}},
                "poll_seconds": 0, "approval_timeout_seconds": self.approval_timeout_seconds}

    def fn_deploy_production(self, payload: dict, request: sfn.TaskRequest) -> dict:
        name = payload["names"]["production_endpoint"]
        package = self.packages[payload["model_package_arn"]]
        if package["status"] != "Approved":
            raise lambda_failure("ModelPackageNotApproved", f"version {package['version']} is {package['status']}")
        new_config = package["config"]
        with self.lock:
            self.production_lock = {"run_id": payload["run"]["run_id"], "started_at": payload["run"]["started_at"]}
            existing = self.endpoints.get(name)
            if existing is None:
                action = "created"
                self.endpoints[name] = Endpoint(new_config, "Creating")
                final = Endpoint(new_config, self.production_end_status)
            else:
                action = "updated"
                self.endpoints[name] = Endpoint(existing.config, "Updating")
                final = Endpoint(existing.config if self.rollback else new_config, self.production_end_status)
                if self.rollback:
                    final.failure_reason = "Rolled back: alarm car-production-5xx went into ALARM during the baking period."
            self._targets[name] = new_config
            if self.newer_run_deploys:
                # A run that started later claims the lock and its update is the one in progress.
                self.production_lock = {"run_id": "run-0002", "started_at": "2099-01-01T00:00:00.000Z"}
                final = Endpoint("run-0002-config", self.production_end_status)
                self._targets[name] = final.config
            self._pending[name] = final
            self._describe_counts[name] = 0
        wait_until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=self.endpoint_wait_seconds)
        return {"endpoint_name": name, "action": action, "wait_until": wait_until.isoformat(),
                "endpoint_config_name": new_config, "model_package_version": package["version"],
                "data_capture": "on: requests and responses are captured"}

    def fn_cleanup(self, payload: dict, request: sfn.TaskRequest) -> dict:
        return function_module("cleanup").cleanup(
            WorldSageMaker(self), payload, PRODUCTION, region=REGION, sfn=WorldStepFunctions(self),
            cleanup_state_machine=self.cleanup_machine_arn, poll_seconds=0)

    # --- time passing, one poll at a time ------------------------------------------------
    def poll(self, name: str) -> None:
        with self.lock:
            self._describe_counts[name] = self._describe_counts.get(name, 0) + 1
            if name in self._pending and self._describe_counts[name] > self.polls_until_ready:
                settled = self._pending.pop(name)
                if isinstance(settled, Endpoint):
                    self.endpoints[name] = settled
                else:
                    self.training_jobs[name].status = settled


class NoJitter:
    """A random source whose full-jitter draw is always the lowest value."""

    @staticmethod
    def uniform(low: float, high: float) -> float:
        return low


class WorldSageMaker:
    """The SageMaker calls the real functions make, answered from the World (SageMaker's error texts)."""

    def __init__(self, world: World):
        self.world = world

    def _fail_if_told(self, operation: str) -> None:
        queued = self.world.sagemaker_errors.get(operation)
        if queued:
            raise queued.pop(0)

    def _lose_response(self, operation: str) -> None:
        if operation in self.world.lost_responses:
            self.world.lost_responses.discard(operation)
            raise client_error("InternalFailure", "We encountered an internal error. Please try again.", operation, 500)

    def create_training_job(self, **request):
        self._fail_if_told("CreateTrainingJob")
        name = request["TrainingJobName"]
        with self.world.lock:
            if name in self.world.training_jobs:
                raise client_error("ResourceInUse", "Training job names must be unique within an AWS account and "
                                   f"region, and a training job with this name already exists (arn:aws:sagemaker:"
                                   f"{REGION}:{ACCOUNT}:training-job/{name})", "CreateTrainingJob")
            self.world.training_jobs[name] = TrainingJob(dict(request))
            self.world._pending[name] = self.world.training_end_status
            self.world._describe_counts[name] = 0
        self._lose_response("CreateTrainingJob")
        return {"TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"}

    def describe_training_job(self, TrainingJobName):
        self._fail_if_told("DescribeTrainingJob")
        self.world.poll(TrainingJobName)
        job = self.world.training_jobs.get(TrainingJobName)
        if job is None:
            raise client_error("ValidationException", "Requested resource not found.", "DescribeTrainingJob")
        description = {**job.request, "TrainingJobStatus": job.status, "CreationTime": job.created,
                       "SecondaryStatus": job.status}
        if job.status == "Completed":
            output = job.request["OutputDataConfig"]["S3OutputPath"]
            description["ModelArtifacts"] = {"S3ModelArtifacts": f"{output}{TrainingJobName}/output/model.tar.gz"}
        if job.status == "Failed":
            description["FailureReason"] = "AlgorithmError: the training data has no label column"
        return description

    def stop_training_job(self, TrainingJobName):
        job = self.world.training_jobs[TrainingJobName]
        job.status = "Stopped"
        self.world._pending.pop(TrainingJobName, None)
        return {}

    def describe_model_package(self, ModelPackageName):
        package = self.world.packages[ModelPackageName]
        return {"ModelPackageArn": ModelPackageName, "ModelPackageVersion": package["version"],
                "ModelApprovalStatus": package["status"], "ApprovalDescription": package["description"]}

    def update_model_package(self, ModelPackageArn, ModelApprovalStatus, ApprovalDescription):
        with self.world.lock:
            self.world.packages[ModelPackageArn].update(status=ModelApprovalStatus, description=ApprovalDescription)
        return {"ModelPackageArn": ModelPackageArn}

    def create_endpoint(self, EndpointName, EndpointConfigName):
        self._fail_if_told("CreateEndpoint")
        with self.world.lock:
            if EndpointName in self.world.endpoints:
                raise client_error("ValidationException", f"Cannot create already existing endpoint \"arn:aws:sagemaker:"
                                   f"{REGION}:{ACCOUNT}:endpoint/{EndpointName}\".", "CreateEndpoint")
            self.world.endpoints[EndpointName] = Endpoint(EndpointConfigName, "Creating")
            self.world._pending[EndpointName] = Endpoint(EndpointConfigName, self.world.qa_end_status,
                                                         self.world.qa_failure_reason)
            self.world._describe_counts[EndpointName] = 0
        self._lose_response("CreateEndpoint")
        return {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{EndpointName}"}

    def describe_endpoint(self, EndpointName):
        self._fail_if_told("DescribeEndpoint")
        self.world.poll(EndpointName)
        endpoint = self.world.endpoints.get(EndpointName)
        if endpoint is None:
            raise client_error("ValidationException", f"Could not find endpoint \"{EndpointName}\".", "DescribeEndpoint")
        description = {"EndpointName": EndpointName, "EndpointConfigName": endpoint.config,
                       "EndpointStatus": endpoint.status, "CreationTime": datetime.datetime.now(datetime.timezone.utc)}
        if endpoint.failure_reason:
            description["FailureReason"] = endpoint.failure_reason
        if endpoint.status == "Updating" and EndpointName in self.world._targets:
            description["PendingDeploymentSummary"] = {"EndpointConfigName": self.world._targets[EndpointName]}
        return description

    def delete_endpoint(self, EndpointName):
        self._fail_if_told("DeleteEndpoint")
        with self.world.lock:
            if self.world.endpoints.pop(EndpointName, None) is None:
                raise client_error("ValidationException", f"Could not find endpoint \"{EndpointName}\".", "DeleteEndpoint")
            self.world._pending.pop(EndpointName, None)
        return {}


class WorldS3:
    """The artifacts bucket's dataset specs, with S3's answers for a missing key."""

    def __init__(self, world: World):
        self.world = world

    def get_object(self, Bucket, Key):
        name = Key.removeprefix("deps/datasets/").removesuffix(".json")
        if name not in self.world.dataset_specs or not Key.startswith("deps/datasets/"):
            raise client_error("NoSuchKey", "The specified key does not exist.", "GetObject", 404)
        return {"Body": io.BytesIO(json.dumps(self.world.dataset_specs[name]).encode())}

    def list_objects_v2(self, Bucket, Prefix, MaxKeys=1000):
        keys = sorted(f"deps/datasets/{name}.json" for name in self.world.dataset_specs)
        return {"Contents": [{"Key": k, "Size": 10} for k in keys if k.startswith(Prefix)][:MaxKeys]}


class WorldDynamoDb:
    def __init__(self, world: World):
        self.world = world

    def get_item(self, TableName, Key, ConsistentRead=False):
        lock = self.world.production_lock
        return {"Item": {"pk": Key["pk"], "run_id": {"S": lock["run_id"]}, "started_at": {"S": lock["started_at"]}}} if lock else {}


class WorldStepFunctions:
    """StartExecution of the cleanup state machine: the real cleanup definition runs (in moto) against the World."""

    def __init__(self, world: World):
        self.world = world

    def start_execution(self, stateMachineArn, input):
        started = self.world.sfn_client.start_execution(stateMachineArn=stateMachineArn, input=input)
        self.world.handed_over.append({"stateMachineArn": stateMachineArn, "input": json.loads(input),
                                       "executionArn": started["executionArn"]})
        return started


@dataclass
class Outcome:
    status: str
    error: str | None
    cause: str | None
    output: dict | None
    states: list[str]
    world: World
    dispatcher: sfn.Dispatcher
    cleanups: list[dict] = field(default_factory=list)  # DescribeExecution of each cleanup state machine run

    def calls(self, state: str) -> list[sfn.TaskCall]:
        return self.dispatcher.calls_to(state)

    def notifications(self) -> list[dict]:
        return self.world.published


def dispatcher_for(world: World) -> sfn.Dispatcher:
    dispatcher = sfn.Dispatcher(before_call=world.before_call)
    dispatcher.register("glue:startJobRun.sync", world.glue)
    dispatcher.register("sagemaker:createTrainingJob.sync", world.train)
    dispatcher.register("sns:publish", world.publish)
    dispatcher.register("lambda:invoke", world.invoke)
    return dispatcher


def run(world: World, execution_input: dict | None = None, name: str = "run-0001", timeout: float = 60.0,
        definition: Path = DEFINITION) -> Outcome:
    """Run a real definition once against `world` (inside an active moto mock with execution enabled),
    then wait for the cleanup state machine runs it handed work to."""
    client = boto3.client("stepfunctions", region_name=REGION)
    world.sfn_client = client
    dispatcher = dispatcher_for(world)
    cleanup_machine = sfn.StateMachine.create(client, CLEANUP_DEFINITION.read_text(encoding="utf-8"),
                                              substitutions(CLEANUP_DEFINITION), dispatcher, name=CLEANUP_MACHINE)
    world.cleanup_machine_arn = cleanup_machine.arn
    machine = sfn.StateMachine.create(client, definition.read_text(encoding="utf-8"), substitutions(definition),
                                      dispatcher, name=f"{definition.name.split('.')[0]}-{name}")
    try:
        arn = machine.start(name, {"input_uri": "s3://input/uploads/car.data"} if execution_input is None else execution_input)
        description = machine.wait(arn, timeout=timeout)
        entered = [
            e["stateEnteredEventDetails"]["name"] for e in machine.history(arn) if "stateEnteredEventDetails" in e
        ]
        cleanups = [cleanup_machine.wait(handed["executionArn"], timeout=timeout) for handed in world.handed_over]
    finally:
        machine.close()
        cleanup_machine.close()
    return Outcome(
        status=description["status"],
        error=description.get("error"),
        cause=description.get("cause"),
        output=json.loads(description["output"]) if description.get("output") else None,
        states=entered,
        world=world,
        dispatcher=dispatcher,
        cleanups=cleanups,
    )
