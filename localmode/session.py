"""One local "AWS account" with the stack deployed: moto, the real state
machine, the real Lambdas, local Glue and training workers, the approval page
and the inference server. `LocalPipeline` is what `python -m localmode run`
drives; tests use it directly to run several uploads against one account
(e.g. a second run after production exists).

    with LocalPipeline(workdir) as pipeline:
        result = pipeline.run(data_path, decision="approve")
        pipeline.invoke_endpoint(result.production_endpoint, b"vhigh,vhigh,2,2,small,low")
"""
from __future__ import annotations

import contextlib
import csv
import datetime
import itertools
import json
import logging
import re
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.exceptions import ClientError

from localmode import REPO_ROOT, asl, aws, sfn
from localmode.faults import Faults
from localmode.iam.enforce import Enforcer, acting_as, as_harness, current
from localmode.iam.policies import Principal, StackIam
from localmode.lambdas import LambdaError, LocalLambdas
from localmode.precheck import is_gzip
from localmode.report import HistoryTracker, failure_of
from localmode.stack import TEMPLATE, LocalStack
from localmode.workers import s3util
from localmode.workers.glue import GlueWorker
from localmode.workers.spark import SparkProvider
from localmode.workers.services import authorize_integration, aws_sdk, optimized
from localmode.workers.training import TrainingWorker

DEFINITION = asl.PIPELINE_DEFINITION
CLEANUP_DEFINITION = REPO_ROOT / "statemachine" / "cleanup.asl.json"
# What Step Functions sends to EventBridge when an execution's status changes (documented shape:
# https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html).
EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
# Local values for template parameters: no default (the email) or a cloud-sized default.
LOCAL_PARAMETERS = {"NotificationEmail": "you@example.com", "PollSeconds": 1}
# Retry back-off as the definition writes it would sleep minutes on a local transient error.
RETRY_TIME_SCALE = 0.01
# A Wait state waits a tenth of its seconds locally (PollSeconds is 1 here): the order of the states
# and every polling loop's bound stay as the definition writes them (localmode/sfn.py).
WAIT_TIME_SCALE = 0.1
DECISIONS = ("approve", "reject", "manual", "none")


class AutoDecisionFailed(Exception):
    """AUTO_APPROVE/REJECT could not decide through the approval page: the run would wait for nobody."""


@dataclass
class RunResult:
    """One upload's run, as the report and the tests see it."""

    run_id: str
    execution_arn: str
    status: str
    report: dict
    exit_code: int

    @property
    def production_endpoint(self) -> str | None:
        return self.report["endpoints"]["production"]["name"]


def uploaded_uri(event: dict) -> str:
    """The uploaded object's URI from the event `upload` built (its key is URL-encoded)."""
    detail = event["detail"]
    return f"s3://{detail['bucket']['name']}/{urllib.parse.unquote_plus(detail['object']['key'])}"


class LocalPipeline:
    """The deployed stack, locally. Use as a context manager."""

    def __init__(
        self,
        workdir: Path,
        say: Callable[[str], None] = print,
        parameters: dict[str, Any] | None = None,
        region: str = aws.REGION,
        inference_server: Callable[[str], Any] | None = None,
        extra_specs: list[Path] | None = None,
        iam: bool = True,
        template: Path | None = None,
        record_iam: bool = False,
    ):
        """`extra_specs`: dataset specs to upload besides datasets/*.json (a spec of your own).
        `iam`: authorize every call under the template's IAM (localmode.iam); `record_iam`: keep every
        request it decided (for the policy mutation). `template`: another template.yaml (a test's variant)."""
        self.workdir = Path(workdir)
        self.iam_enforced = iam
        self.record_iam = record_iam
        self.enforcer: Enforcer | None = None
        self.extra_specs = [Path(p) for p in extra_specs or []]
        self.say = say
        self.region = region
        self.stack = LocalStack.from_file(template or TEMPLATE, region=region, parameter_overrides={**LOCAL_PARAMETERS, **(parameters or {})})
        self._exit = contextlib.ExitStack()
        self._uploads = itertools.count(1)
        self.timings: dict[str, float] = {}
        self._inference_server = inference_server

    # --- lifecycle -----------------------------------------------------------------
    def __enter__(self) -> "LocalPipeline":
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        _quiet_libraries()
        try:
            # First: it removes variables from the environment, which the JVM's start copies on its own thread.
            self._exit.enter_context(aws.local_aws(self.region))
            self.stack_iam = StackIam(self.stack)
            if self.iam_enforced:
                self.enforcer = Enforcer(self.stack_iam, self.region, self.stack.account,
                                         record=[] if self.record_iam else None)
                self._exit.enter_context(self.enforcer.installed())
            SparkProvider.warm(self.workdir)  # the JVM starts while the rest is set up
            self._exit.enter_context(sfn.install(retry_time_scale=RETRY_TIME_SCALE, wait_time_scale=WAIT_TIME_SCALE))
            # What make deploy uploads (every datasets/*.json), and a spec given with --spec.
            self.resources = aws.create_resources(
                self.stack, sorted((REPO_ROOT / "datasets").glob("*.json")) + self.extra_specs)
            for problem in self.resources.skipped_specs.values():
                self.say(f"warning: {problem}")
            self._sqs = boto3.client("sqs")
            self._lambda_log = self._exit.enter_context(open(self.workdir / "lambdas.log", "a", encoding="utf-8"))
            self.lambdas = LocalLambdas(
                region=self.region,
                timeouts={folder: self.stack.function_timeout(lid) for lid, folder in self.stack.functions().items()},
                log_stream=self._lambda_log,
                acting_as=lambda folder: acting_as(self._principal(self.stack_iam.function_principal, folder)),
            )
            self._exit.callback(self.lambdas.restore_logs)
            self.inference_url = self._start_inference_server()
            self.approval_url = self._start_approval_server()
            self.lambdas.environments.update(self._function_environments())
            self.faults = Faults()
            self.machine = self._create_state_machine()
        except BaseException:
            self._exit.close()
            raise
        self.timings["setup_seconds"] = round(time.monotonic() - started, 2)
        return self

    def __exit__(self, *exc_info) -> None:
        self._exit.close()

    # --- local IAM -----------------------------------------------------------------------
    def _principal(self, find: Callable[..., Principal], *args) -> Principal | None:
        """The principal `find(*args)` names, when IAM is enforced (None: calls stay unchecked)."""
        return find(*args) if self.enforcer is not None else None

    def _authorize_as_current(self, service: str, operation: str, params: dict) -> None:
        """A call a service integration makes as the principal acting now (the state machine's role)."""
        principal, _ = current()
        if self.enforcer is not None and principal is not None:
            self.enforcer.require_call(principal, service, operation, params)

    def _iam_position(self) -> tuple[int, int]:
        if self.enforcer is None:
            return (0, 0)
        return len(self.enforcer.denials), sum(self.enforcer.decisions.values())

    def _iam_report(self) -> dict:
        """This run's denials (principal, action, resource, state) and how many requests were authorized."""
        if self.enforcer is None:
            return {"enforced": False}
        denials_before, decided_before = getattr(self, "_iam_mark", (0, 0))
        return {"enforced": True, "denials": self.enforcer.denials[denials_before:],
                "requests_authorized": sum(self.enforcer.decisions.values()) - decided_before}

    def _as_sagemaker(self, part: str):
        return lambda: acting_as(self._principal(self.stack_iam.sagemaker_principal, part))

    def _start_inference_server(self) -> str:
        if self._inference_server is None:
            from localmode.serving import server as inference

            principal = self._principal(self.stack_iam.sagemaker_principal, "SageMaker endpoints (model data, capture)")
            with acting_as(principal):  # the endpoint reads models and writes captured data as the models' role
                s3 = boto3.client("s3", region_name=self.region)

            def start(region):
                return inference.start_inference_server(region, s3=s3)
        else:
            start = self._inference_server
        handle = start(self.region)
        self._exit.callback(handle.shutdown)
        self.inference_server = handle
        return handle.url

    def _start_approval_server(self) -> str:
        from localmode import approval_server

        def approval_api(event: dict, context: Any) -> dict:
            try:
                return self.lambdas.invoke("approval_api", event)
            except LambdaError as error:
                # What API Gateway answers when the integration's Lambda raises.
                self.say(f"approval_api raised {error.error_type}: {error.message}")
                return {"statusCode": 502, "headers": {"Content-Type": "application/json"},
                        "body": json.dumps({"message": "Internal server error"})}

        server, url = approval_server.start_approval_server(handler=approval_api, region=self.region)
        self._exit.callback(server.shutdown)
        return url

    def _function_environments(self) -> dict[str, dict[str, str]]:
        environments = {}
        for logical_id, folder in self.stack.functions().items():
            env = self.stack.function_environment(logical_id)
            if "API_BASE_URL" in env:
                env["API_BASE_URL"] = self.approval_url
            env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = self.inference_url
            # X-Ray has no daemon here; Powertools' tracer would only complain.
            env["POWERTOOLS_TRACE_DISABLED"] = "true"
            environments[folder] = env
        return environments

    def _create_state_machine(self) -> sfn.StateMachine:
        dispatcher = sfn.Dispatcher(before_call=lambda request: self.faults.before_call(request))
        glue = GlueWorker(
            self.stack.glue_default_arguments(), spark=lambda: SparkProvider.get(self.workdir), workdir=self.workdir / "scratch",
            authorize=self._authorize_as_current,
            job_role=lambda: acting_as(self._principal(self.stack_iam.glue_job_principal)),
        )
        self.glue_worker = glue
        self.training_worker = TrainingWorker(
            self.workdir / "scratch", self.region, self.stack.account,
            role_arn=self.stack.role_assumable_by("sagemaker.amazonaws.com"),
            authorize=self._authorize_as_current, execution_role=self._as_sagemaker("training jobs"),
        )
        dispatcher.register("glue:startJobRun.sync", glue)
        dispatcher.register("sagemaker:createTrainingJob.sync", self.training_worker)
        dispatcher.register("lambda:invoke", self.lambdas.task_handler())
        # The cleanup state machine exists first: the pipeline's cleanup function hands QA endpoints to it.
        self.cleanup_machine = self._machine(CLEANUP_DEFINITION, sfn.Dispatcher())
        return self._machine(DEFINITION, dispatcher)

    def _machine(self, definition: Path, dispatcher: sfn.Dispatcher) -> sfn.StateMachine:
        machine_id = self.stack.state_machine_id(definition.relative_to(REPO_ROOT).as_posix())
        principal = self._principal(self.stack_iam.state_machine_principal, machine_id)
        dispatcher.around_call = lambda request: acting_as(principal, request.state_name)
        dispatcher.register("lambda:invoke", self._invoke_as_machine(self.lambdas.task_handler()))
        # Every other integration the definition uses is a plain API call on moto.
        for task_resource in set(asl.definition_tasks(definition).values()):
            integration, _ = sfn.split_resource(task_resource)
            parts = integration.split(":")
            if dispatcher.handler_for(task_resource) is not None:
                continue
            if parts[0] == "aws-sdk":
                dispatcher.register(integration, aws_sdk(parts[1], parts[2]))
            else:
                dispatcher.register(integration, optimized(parts[0], parts[1]))
        machine = sfn.StateMachine.create(
            boto3.client("stepfunctions"),
            definition.read_text(encoding="utf-8"),
            self.stack.definition_substitutions(machine_id),
            dispatcher,
            name=self.stack.physical_name(machine_id),
            role_arn=self.stack.get_att(self.stack.resources[machine_id]["Properties"]["Role"]["Fn::GetAtt"][0], "Arn"),
        )
        self._exit.callback(machine.close)
        return machine

    def _invoke_as_machine(self, invoke: Callable[[sfn.TaskRequest], Any]) -> Callable[[sfn.TaskRequest], Any]:
        """lambda:invoke needs lambda:InvokeFunction on the function for the state machine's role."""
        def handle(request: sfn.TaskRequest) -> Any:
            authorize_integration(self._authorize_as_current, "lambda", "Invoke",
                                  {"FunctionName": request.parameters["FunctionName"]})
            return invoke(request)
        return handle

    # --- one upload ------------------------------------------------------------------
    def upload_key(self, data_path: Path, dataset: str | None = None) -> str:
        """Where a user uploads a file of `dataset` (the AWS convention): `<prefix><dataset>/<file>`,
        or `<prefix><file>` for the default dataset (as every car upload was)."""
        name = Path(data_path).name
        if is_gzip(data_path) and not name.endswith(".gz"):
            # Spark (and so the Glue job) decompresses a file by its .gz name, on AWS as here.
            name += ".gz"
        if dataset is None or dataset == self.stack.parameter("DefaultDataset"):
            return f"{self.resources.input_prefix}{name}"
        return f"{self.resources.input_prefix}{dataset}/{name}"

    def upload(self, data_path: Path, dataset: str | None = None) -> dict:
        """Put the file under the input prefix, as a user would, and return the S3 event EventBridge would carry."""
        s3 = boto3.client("s3")
        key = self.upload_key(data_path, dataset)
        with open(data_path, "rb") as body:
            response = s3.put_object(Bucket=self.resources.input_bucket, Key=key, Body=body)
        size = Path(data_path).stat().st_size
        # The key as S3 documents it in notifications: URL-encoded like a form (start_run decodes it).
        detail_object = {"key": urllib.parse.quote_plus(key, safe="/"), "size": size, "etag": response["ETag"].strip('"'),
                         "sequencer": f"{int(time.time() * 1e6):016X}{next(self._uploads):04X}"}
        if response.get("VersionId"):
            detail_object["version-id"] = response["VersionId"]
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": self.stack.account,
            "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [f"arn:aws:s3:::{self.resources.input_bucket}"],
            "detail": {
                "version": "0",
                "bucket": {"name": self.resources.input_bucket},
                "object": detail_object,
                "request-id": uuid.uuid4().hex[:16].upper(),
                "requester": self.stack.account,
                "source-ip-address": "127.0.0.1",
                "reason": "PutObject",
            },
        }

    def run(
        self,
        data_path: Path,
        decision: str = "approve",
        faults: Faults | None = None,
        reason: str = "Rejected from the command line (REJECT=1).",
        timeout: float = 3600.0,
        dataset: str | None = None,
    ) -> RunResult:
        """Upload (as a file of `dataset`, default: the stack's DefaultDataset), let start_run
        start the execution, follow it to the end, and report."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}")
        self.faults = faults or Faults()
        self._iam_mark = self._iam_position()
        aws.endpoint_updates.rollback_next = self.faults.rollback
        aws.read_mailbox(self.resources.mailbox_url)  # an earlier run's mail is not this run's
        started = time.monotonic()
        event = self.upload(data_path, dataset)
        started_run = self.lambdas.invoke("start_run", event)
        if started_run.get("action") not in ("started", "duplicate"):
            raise RuntimeError(f"start_run did not start an execution: {started_run}")
        execution_arn = started_run["execution_arn"]
        run_id = started_run["execution_name"]
        self.say(f"run {run_id}: {uploaded_uri(event)}")
        return self._follow(execution_arn, run_id, decision, reason, timeout, started, data_path, event)

    def rollback(self, version: int, decision: str = "approve", dataset: str | None = None,
                 reason: str = "Rejected from the command line (REJECT=1).", timeout: float = 3600.0) -> RunResult:
        """What `scripts/deploy.py rollback` does on AWS: start the pipeline with the documented rollback
        input, then follow it (its confirmation goes through the approval page) to the end."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}")
        self.faults = Faults()
        self._iam_mark = self._iam_position()
        aws.endpoint_updates.rollback_next = False
        aws.read_mailbox(self.resources.mailbox_url)
        started = time.monotonic()
        request = {"model_package_version": version, **({"dataset": dataset} if dataset else {})}
        run_id = f"rollback-v{version}-{uuid.uuid4().hex[:8]}"
        execution_arn = boto3.client("stepfunctions").start_execution(
            stateMachineArn=self.machine.arn, name=run_id, input=json.dumps({"rollback": request}))["executionArn"]
        self.say(f"rollback {run_id}: production back to version {version}")
        return self._follow(execution_arn, run_id, decision, reason, timeout, started, None, None)

    def _follow(self, execution_arn: str, run_id: str, decision: str, reason: str, timeout: float, started: float,
                data_path: Path | None, event: dict | None) -> RunResult:
        mail: list[dict] = []
        approval = {"decision": decision, "decided": False, "response_status": None, "page": None}
        tracker = HistoryTracker(on_line=self.say)

        def on_events(events: list[dict]) -> None:
            tracker.feed(events)
            for message in aws.read_mailbox(self.resources.mailbox_url, self._sqs):
                mail.append(message)
                self._on_mail(message, approval, reason, run_id)

        try:
            description = self.machine.wait(execution_arn, timeout=timeout, on_events=on_events, poll=0.5)
        except KeyboardInterrupt:
            description = self._stop(execution_arn, "Interrupted", "Stopped with Ctrl-C")
        except AutoDecisionFailed as exc:
            description = self._stop(execution_arn, "AutoDecisionFailed", str(exc))
        # Deliveries of the final notification can trail the execution's end by a poll.
        on_events([])
        cleanup = self._run_ended(description, timeout=timeout)
        seconds = time.monotonic() - started
        report = self._report(run_id, execution_arn, description, tracker, mail, approval, data_path, event, seconds)
        report["cleanup"] = cleanup
        exit_code = exit_code_for(report)
        return RunResult(run_id, execution_arn, description["status"], report, exit_code)

    def execution_status_event(self, description: dict) -> dict:
        """The EventBridge event Step Functions emits for this execution's status (documented shape)."""
        def millis(moment):
            return int(moment.timestamp() * 1000) if moment else None

        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": EXECUTION_STATUS_CHANGE,
            "source": "aws.states",
            "account": self.stack.account,
            "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [description["executionArn"]],
            "detail": {
                "executionArn": description["executionArn"],
                "stateMachineArn": description["stateMachineArn"],
                "name": description["name"],
                "status": description["status"],
                "startDate": millis(description.get("startDate")),
                "stopDate": millis(description.get("stopDate")),
                "input": description.get("input"),
                "inputDetails": {"included": True},
                "output": description.get("output"),
                "outputDetails": {"included": True} if description.get("output") is not None else None,
            },
        }

    def _run_ended(self, description: dict, timeout: float) -> dict | None:
        """What the template's RunEndedRule does on AWS: an execution that ended in a status its
        pattern names starts the cleanup state machine with the event as input."""
        event = self.execution_status_event(description)
        rule = self.stack.resources["RunEndedRule"]["Properties"]
        if not aws.eventbridge_delivers(self.stack.resolve(rule["EventPattern"]), event):
            return None
        self.say(f"run ended {description['status']}: the cleanup state machine runs (RunEndedRule)")
        # The rule's target starts the execution with the target's role.
        target_role = self._principal(self.stack_iam.rule_target_principal, "RunEndedRule", self.cleanup_machine.arn)
        if target_role is not None:
            try:
                self.enforcer.require_call(target_role, "stepfunctions", "StartExecution",
                                           {"stateMachineArn": self.cleanup_machine.arn})
            except ClientError as error:  # EventBridge cannot deliver: the event goes to the rule's dead-letter queue
                return {"execution_arn": None, "status": "NOT_STARTED", "error": error.response["Error"]["Code"],
                        "cause": error.response["Error"]["Message"]}
        arn = self.cleanup_machine.start(f"run-ended-{uuid.uuid4().hex[:12]}", event)
        try:
            ended = self.cleanup_machine.wait(arn, timeout=timeout, poll=0.2)
        except TimeoutError as exc:
            return {"execution_arn": arn, "status": "RUNNING", "error": str(exc)}
        output = json.loads(ended["output"]) if ended.get("output") else {}
        return {"execution_arn": arn, "status": ended["status"], "result": output.get("cleanup"),
                "error": ended.get("error"), "cause": ended.get("cause")}

    def _stop(self, execution_arn: str, error: str, cause: str) -> dict:
        """StopExecution, as from the console: the run ends ABORTED and is still reported."""
        self.say(f"stopping the execution: {cause}")
        sfn_client = boto3.client("stepfunctions")
        sfn_client.stop_execution(executionArn=execution_arn, error=error, cause=cause)
        description = sfn_client.describe_execution(executionArn=execution_arn)
        if description["status"] == "RUNNING":
            # moto marks a stopped execution ABORTED only once its current task returns (for an
            # approval, at the end of the window): report it as AWS would show it now.
            description = {**description, "status": "ABORTED", "error": error, "cause": cause,
                           "stopDate": datetime.datetime.now(datetime.timezone.utc)}
        elif description["status"] == "ABORTED" and not description.get("error"):
            # AWS's DescribeExecution of a stopped execution carries StopExecution's error and cause; moto's may not.
            description = {**description, "error": error, "cause": cause}
        return description

    def approval_page_path(self, run_id: str) -> Path:
        return self.workdir / f"approval-page-{run_id}.html"

    def _on_mail(self, message: dict, approval: dict, reason: str, run_id: str) -> None:
        from localmode import approval_server

        def keep_page(status: int, page: str) -> None:
            """What the browser showed before the form was submitted, for the reviewer to look at later."""
            path = self.approval_page_path(run_id)
            path.write_text(approval_server.redacted_page(page), encoding="utf-8")
            approval["page"] = str(path)
            self.say(f"approval page ({status}) saved as {path}")

        links = approval_server.links_in(message["message"])
        self.say("")
        self.say("=" * 72)
        self.say(f"EMAIL  Subject: {message['subject']}")
        self.say("-" * 72)
        for line in message["message"].splitlines():
            self.say(f"  {line}")
        self.say("=" * 72)
        if not links:
            return
        decision = approval["decision"]
        if decision in ("approve", "reject"):
            self.say(f"{'AUTO_APPROVE' if decision == 'approve' else 'REJECT'}: opening the {decision} link and submitting its form")
            try:
                status, _page = approval_server.browser_decide(links[decision], decision,
                                                               reason if decision == "reject" else "", on_page=keep_page)
            except Exception as exc:
                raise AutoDecisionFailed(f"the approval page could not be used: {exc}") from exc
            approval.update(decided=True, response_status=status)
            self.say(f"approval page answered {status}")
            if status != 200:
                raise AutoDecisionFailed(f"the approval page answered {status} to the {decision} form")
        elif decision == "manual":
            self.say(f"Open this link in a browser to decide: {links.get('approve')}")
            self.say("(waiting for a person; Ctrl-C stops the run)")

    # --- after a run -------------------------------------------------------------------
    def _report(self, run_id, execution_arn, description, tracker, mail, approval, data_path, event, seconds) -> dict:
        data = tracker.last_state_data if isinstance(tracker.last_state_data, dict) else {}
        qa_state = tracker.state_data("RunQATests") or {}
        qa = qa_state.get("qa") if isinstance(qa_state, dict) else None
        names = (data.get("plan") or {}).get("names") or {}
        manifest = self._read_json(f"{data['run']['run_prefix']}manifest.json") if data.get("run") else None
        qa_report = self._read_json(qa["report_uri"]) if qa and qa.get("report_uri") else None
        endpoints = self.endpoints()
        resolved = data.get("dataset") if isinstance(data.get("dataset"), dict) else {}
        production = (names.get("production_endpoint") or resolved.get("production_endpoint")
                      or self.stack.parameter("ProductionEndpointName"))
        # What TrainXGBoost returned, or the wait loop after a lost answer found.
        training = data.get("training") if isinstance(data.get("training"), dict) else {}
        return {
            "run_id": run_id,
            "execution_arn": execution_arn,
            "status": description["status"],
            "outcome": outcome_of(description, approval),
            "started_at": description["startDate"].isoformat(),
            "ended_at": description["stopDate"].isoformat() if description.get("stopDate") else None,
            "seconds": round(seconds, 2),
            "data": ({"path": str(data_path), "input_uri": uploaded_uri(event), "dataset": resolved.get("name"),
                      "spec_uri": resolved.get("spec_uri")} if event else None),
            "faults": self.faults.describe(),
            "states": [r.to_json() for r in tracker.records],
            "state_seconds": tracker.breakdown(),
            "step_seconds": tracker.step_seconds(),
            "qa": {**(qa or {}), "report": qa_report} if qa else None,
            "artifacts": {
                "run_prefix": (data.get("run") or {}).get("run_prefix"),
                "manifest": manifest.get("uris") if manifest else None,
                "model_artifacts": training.get("model_artifacts"),
                "training_metrics": self.training_worker.jobs[-1].get("FinalMetricDataList") if self.training_worker.jobs else None,
            },
            "endpoints": {
                "qa": {"name": names.get("qa_endpoint"), "exists": names.get("qa_endpoint") in endpoints},
                "production": {
                    "name": production,
                    "exists": production in endpoints,
                    "config": endpoints.get(production, {}).get("config"),
                    "status": endpoints.get(production, {}).get("status"),
                    "url": f"{self.inference_url}/endpoints/{production}/invocations",
                },
                "all": endpoints,
            },
            "registry": self.registry_entries(production),
            # The approval reference works like a password until used: it stays out of the report.
            "approval": approval,
            "notifications": [{**m, "message": _redact_approval_links(m["message"])} for m in mail],
            "failure": failure_of(tracker, description),
            "iam": self._iam_report(),
            "timings": {
                **self.timings,
                "spark_start_seconds": SparkProvider.start_seconds,
                "glue_job_seconds": (self.glue_worker.runs[-1].get("manifest") or {}).get("seconds") if self.glue_worker.runs else None,
                "training_seconds": self.training_worker.jobs[-1].get("TrainingTimeInSeconds") if self.training_worker.jobs else None,
            },
        }

    def _read_json(self, uri: str) -> Any:
        try:
            bucket, key = s3util.split_uri(uri)
            return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception:
            return None

    def registry_entries(self, production_endpoint: str | None = None) -> list[dict]:
        """The model package versions of the production endpoint's group, oldest first (the registry as
        SageMaker Studio lists it): version, status, the decision's description, run and QA accuracy."""
        sagemaker = boto3.client("sagemaker")
        group = production_endpoint or self.stack.parameter("ProductionEndpointName")
        try:
            summaries = sagemaker.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime",
                                                      SortOrder="Ascending")["ModelPackageSummaryList"]
        except Exception:
            return []
        entries = []
        for summary in summaries:
            package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            metadata = package.get("CustomerMetadataProperties") or {}
            entries.append({
                "version": package.get("ModelPackageVersion"),
                "status": package.get("ModelApprovalStatus"),
                "approval_description": package.get("ApprovalDescription"),
                "run_id": metadata.get("run_id"),
                "qa_accuracy": metadata.get("qa_accuracy"),
                "arn": package["ModelPackageArn"],
            })
        return entries

    def save_buckets(self, target: Path | None = None) -> Path:
        """Every object of the local account's buckets written to `<target>/<bucket>/<key>` (default:
        `<workdir>/s3`), the layout they have on S3: each run's bundles, model.tar.gz, splits, manifest
        and QA report under runs/<run id>/, the deployed models under models/, the registry's model
        files, the capture files under capture/. The buckets live in memory and end with the command."""
        writer = getattr(self.inference_server, "capture", None)
        if writer is not None:
            writer.flush()
        target = Path(target or self.workdir / "s3")
        s3 = boto3.client("s3")
        with as_harness():
            for bucket in s3.list_buckets()["Buckets"]:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
                    for item in page.get("Contents", []):
                        path = target / bucket["Name"] / item["Key"]
                        if item["Key"].endswith("/"):
                            continue
                        path.parent.mkdir(parents=True, exist_ok=True)
                        s3.download_file(bucket["Name"], item["Key"], str(path))
        return target

    def capture_files(self) -> list[str]:
        """The data capture files written so far (what is captured but not yet written is written first)."""
        writer = getattr(self.inference_server, "capture", None)
        if writer is not None:
            writer.flush()
        s3 = boto3.client("s3")
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.resources.artifacts_bucket, Prefix="capture/"):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return [f"s3://{self.resources.artifacts_bucket}/{key}" for key in sorted(keys)]

    def endpoints(self) -> dict[str, dict]:
        sagemaker = boto3.client("sagemaker")
        found = {}
        for summary in sagemaker.list_endpoints()["Endpoints"]:
            described = sagemaker.describe_endpoint(EndpointName=summary["EndpointName"])
            found[summary["EndpointName"]] = {"status": described["EndpointStatus"], "config": described["EndpointConfigName"]}
        return found

    def invoke_endpoint(self, endpoint_name: str, body: bytes, content_type: str = "text/csv",
                        accept: str | None = None) -> tuple[str, str]:
        """InvokeEndpoint through the local inference server, as a client would. Returns (content type, body)."""
        client = boto3.client("sagemaker-runtime", endpoint_url=self.inference_url)
        extra = {"Accept": accept} if accept else {}
        response = client.invoke_endpoint(EndpointName=endpoint_name, Body=body, ContentType=content_type, **extra)
        return response["ContentType"], response["Body"].read().decode("utf-8")

    def sample_row(self, report: dict) -> tuple[str, str]:
        """A raw held-out row (features only, as a client sends it) and its true label, from the run's test split."""
        test_uri = (report["artifacts"]["manifest"] or {}).get("test")
        s3 = boto3.client("s3")
        bucket, prefix = s3util.split_uri(test_uri)
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            text = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("utf-8")
            for line in text.splitlines():
                if line.strip():
                    features, _, label = line.rpartition(",")
                    return features, label
        raise FileNotFoundError(f"no test rows under {test_uri}")

    def request_for(self, features: str, test_uri: str) -> tuple[str, bytes]:
        """(Content-Type, body) of a request for one raw test row, as a client of that run's endpoint
        sends it: the CSV record itself, or for a wide table the JSON that carries the run's schema
        (dataset_spec.serving.request_body; the schema sits at model/preprocess/ beside data/test/)."""
        from dataset_spec.serving import request_body

        s3 = boto3.client("s3")
        bucket, prefix = s3util.split_uri(test_uri)
        run_prefix = prefix.removesuffix("/").removesuffix("data/test")
        schema = json.loads(s3.get_object(Bucket=bucket, Key=f"{run_prefix}model/preprocess/schema.json")["Body"].read())
        fields = next(csv.reader([features]))
        content_type, body = request_body(fields, schema)
        return (content_type, features.encode("utf-8")) if content_type == "text/csv" else (content_type, body)


def _redact_approval_links(text: str) -> str:
    return re.sub(r"(/approvals/)[A-Za-z0-9_-]+", r"\1<reference>", text)


def outcome_of(description: dict, approval: dict) -> str:
    if description["status"] == "SUCCEEDED":
        return "deployed"
    if description.get("error") == "Pipeline.ApprovalRejected":
        return "rejected"
    if description["status"] == "ABORTED":
        return "interrupted" if description.get("error") == "Interrupted" else "failed"
    return "failed"


# Exit codes of `python -m localmode run` (documented in its --help).
EXIT_DEPLOYED, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def exit_code_for(report: dict) -> int:
    return {"deployed": EXIT_DEPLOYED, "rejected": EXIT_REJECTED, "interrupted": EXIT_INTERRUPTED}.get(
        report["outcome"], EXIT_FAILED
    )


def _quiet_libraries() -> None:
    # moto logs each caught task failure with a full component dump; the progress lines say it better.
    for name in ("moto", "botocore", "urllib3", "py4j", "werkzeug"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
