"""Stand-in services for running the real definition's control flow fast.

Each Task resource gets a small Python handler that follows the contract in
docs/architecture.md (what each step returns) and acts on a tiny model of the
world (endpoints, notifications), so a test can assert what a user would
notice: which endpoints exist afterwards, on which config, what mail went out,
how the execution ended. No Spark, no XGBoost, no real Lambdas: those are
tests/localmode's business.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from localmode import lambdas, sfn

DEFINITION = Path(__file__).resolve().parents[2] / "statemachine" / "pipeline.asl.json"
REGION = "us-east-1"
ACCOUNT = lambdas.ACCOUNT
PRODUCTION = "car-production"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:pipeline-notifications"


def substitutions() -> dict[str, str]:
    values = {}
    for name in sfn.substitution_names(DEFINITION.read_text(encoding="utf-8")):
        folder = lambdas.folder_for_substitution(name)
        if folder:
            values[name] = lambdas.local_function_arn(folder, REGION)
    values.update(ArtifactsBucketName="artifacts", GlueJobName="preprocess", NotificationTopicArn=TOPIC_ARN)
    return values


def lambda_failure(error_type: str, message: str) -> sfn.TaskFailed:
    """A Lambda's exception as Step Functions reports it."""
    return sfn.TaskFailed(error_type, lambdas.LambdaError(error_type, message, []).payload_json())


@dataclass
class Endpoint:
    config: str
    status: str


@dataclass
class World:
    """What the stand-ins act on, and how each should behave in this test."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    published: list[dict] = field(default_factory=list)
    # state name -> TaskFailed raised every time that state's task runs
    failures: dict[str, sfn.TaskFailed] = field(default_factory=dict)
    # state name -> errors raised on the first attempts only (transient)
    transient: dict[str, list[sfn.TaskFailed]] = field(default_factory=dict)
    accuracy: float = 0.97
    threshold: float = 0.95
    approval: str = "approve"  # approve | reject | none
    approval_timeout_seconds: int = 60
    rollback: bool = False  # the production update is rolled back by its guardrails
    production_end_status: str = "InService"
    polls_until_ready: int = 1  # describe calls that answer Creating/Updating before the final status
    sfn_client: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _describe_counts: dict[str, int] = field(default_factory=dict)
    _pending: dict[str, Endpoint] = field(default_factory=dict)

    # --- the services --------------------------------------------------------
    def before_call(self, request: sfn.TaskRequest) -> None:
        if request.state_name in self.failures:
            raise self.failures[request.state_name]
        queued = self.transient.get(request.state_name)
        if queued:
            raise queued.pop(0)

    def glue(self, request: sfn.TaskRequest) -> dict:
        return {"Id": f"jr_{request.execution_name}", "JobName": request.parameters["JobName"], "JobRunState": "SUCCEEDED"}

    def training(self, request: sfn.TaskRequest) -> dict:
        name = request.parameters["TrainingJobName"]
        return {
            "TrainingJobName": name,
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://artifacts/runs/x/training/{name}/output/model.tar.gz"},
        }

    def create_endpoint(self, request: sfn.TaskRequest) -> dict:
        name = request.parameters["EndpointName"]
        with self.lock:
            self._pending[name] = Endpoint(request.parameters["EndpointConfigName"], "InService")
            self.endpoints[name] = Endpoint(request.parameters["EndpointConfigName"], "Creating")
            self._describe_counts[name] = 0
        return {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name}"}

    def describe_endpoint(self, request: sfn.TaskRequest) -> dict:
        name = request.parameters["EndpointName"]
        with self.lock:
            if name not in self.endpoints:
                raise sfn.TaskFailed("SageMaker.SageMakerException", f"Could not find endpoint {name}.")
            self._describe_counts[name] = self._describe_counts.get(name, 0) + 1
            if name in self._pending and self._describe_counts[name] > self.polls_until_ready:
                self.endpoints[name] = self._pending.pop(name)
            endpoint = self.endpoints[name]
            return {"EndpointName": name, "EndpointConfigName": endpoint.config, "EndpointStatus": endpoint.status}

    def publish(self, request: sfn.TaskRequest) -> dict:
        with self.lock:
            self.published.append(dict(request.parameters))
        return {"MessageId": f"m{len(self.published)}"}

    # --- the Lambdas ------------------------------------------------------------
    def invoke(self, request: sfn.TaskRequest) -> dict:
        function = lambdas.function_name_from(request.parameters["FunctionName"])
        payload = request.parameters.get("Payload") or {}
        result = getattr(self, f"fn_{function}")(payload, request)
        return lambdas.lambda_invoke_result(result)

    def fn_prepare_training(self, payload: dict, request: sfn.TaskRequest) -> dict:
        run_id = payload["run"]["run_id"]
        names = {
            "training_job": f"{run_id}-train",
            "model": f"{run_id}-model",
            "endpoint_config": f"{run_id}-config",
            "qa_endpoint": f"{run_id}-qa",
            "production_endpoint": PRODUCTION,
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

    def fn_create_model(self, payload: dict, request: sfn.TaskRequest) -> dict:
        return {"model_name": payload["names"]["model"]}

    def fn_create_endpoint_config(self, payload: dict, request: sfn.TaskRequest) -> dict:
        return {"endpoint_config_name": payload["names"]["endpoint_config"]}

    def fn_qa_test(self, payload: dict, request: sfn.TaskRequest) -> dict:
        if self.accuracy < self.threshold:
            raise lambda_failure("QualityBelowThreshold", f"accuracy {self.accuracy} is below the threshold {self.threshold}")
        return {"accuracy": self.accuracy, "threshold": self.threshold, "rows": 346, "report_uri": "s3://artifacts/qa/report.json"}

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

    def fn_deploy_production(self, payload: dict, request: sfn.TaskRequest) -> dict:
        name = payload["names"]["production_endpoint"]
        new_config = payload["endpoint_config_name"]
        with self.lock:
            existing = self.endpoints.get(name)
            if existing is None:
                action = "created"
                self.endpoints[name] = Endpoint(new_config, "Creating")
                final = Endpoint(new_config, self.production_end_status)
            else:
                action = "updated"
                self.endpoints[name] = Endpoint(existing.config, "Updating")
                final = Endpoint(existing.config if self.rollback else new_config, self.production_end_status)
            self._pending[name] = final
            self._describe_counts[name] = 0
        return {"endpoint_name": name, "action": action}

    def fn_cleanup(self, payload: dict, request: sfn.TaskRequest) -> dict:
        # The contract: delete the QA endpoint if this run got far enough to name one.
        names = payload.get("names") or (payload.get("plan") or {}).get("names") or {}
        qa = names.get("qa_endpoint")
        with self.lock:
            deleted = self.endpoints.pop(qa, None) is not None if qa else False
        return {"deleted": deleted}


@dataclass
class Outcome:
    status: str
    error: str | None
    cause: str | None
    output: dict | None
    states: list[str]
    world: World
    dispatcher: sfn.Dispatcher

    def calls(self, state: str) -> list[sfn.TaskCall]:
        return self.dispatcher.calls_to(state)

    def notifications(self) -> list[dict]:
        return self.world.published


def dispatcher_for(world: World) -> sfn.Dispatcher:
    dispatcher = sfn.Dispatcher(before_call=world.before_call)
    dispatcher.register("glue:startJobRun.sync", world.glue)
    dispatcher.register("sagemaker:createTrainingJob.sync", world.training)
    dispatcher.register("sagemaker:createEndpoint", world.create_endpoint)
    dispatcher.register("aws-sdk:sagemaker:describeEndpoint", world.describe_endpoint)
    dispatcher.register("sns:publish", world.publish)
    dispatcher.register("lambda:invoke", world.invoke)
    return dispatcher


def run(world: World, execution_input: dict | None = None, name: str = "run-0001", timeout: float = 60.0) -> Outcome:
    """Run the real definition once against `world` (inside an active moto mock with execution enabled)."""
    client = boto3.client("stepfunctions", region_name=REGION)
    world.sfn_client = client
    dispatcher = dispatcher_for(world)
    machine = sfn.StateMachine.create(client, DEFINITION.read_text(encoding="utf-8"), substitutions(), dispatcher, name=f"pipeline-{name}")
    try:
        arn = machine.start(name, {"input_uri": "s3://input/uploads/car.data"} if execution_input is None else execution_input)
        description = machine.wait(arn, timeout=timeout)
        entered = [
            e["stateEnteredEventDetails"]["name"] for e in machine.history(arn) if "stateEnteredEventDetails" in e
        ]
    finally:
        machine.close()
    return Outcome(
        status=description["status"],
        error=description.get("error"),
        cause=description.get("cause"),
        output=json.loads(description["output"]) if description.get("output") else None,
        states=entered,
        world=world,
        dispatcher=dispatcher,
    )
