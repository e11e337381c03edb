"""The whole pipeline locally, several uploads against one local account:
the real definition, Glue script on Spark, XGBoost, Lambdas, approval page
and inference server. The first run deploys production; the others must
leave it serving that model whatever goes wrong (guarantee 1)."""
from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

import asl_reference
from localmode import approval_server, runner
from localmode.asl import TaskFailed
from localmode.faults import Faults
from localmode.session import EXIT_DEPLOYED, EXIT_FAILED, EXIT_REJECTED, LocalPipeline, RunResult

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    lines: list[str] = []
    with LocalPipeline(tmp_path_factory.mktemp("local-account"), say=lines.append) as pipeline:
        pipeline.lines = lines
        yield pipeline


@pytest.fixture(scope="module")
def deployed(account, car_data):
    """The first upload, run as `make local AUTO_APPROVE=1` runs it: production exists from here on."""
    args = runner.parse_args(["--auto-approve", "--data", str(car_data)])
    exit_code, report_path = runner.execute(account, args, car_data, Faults())
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert exit_code == EXIT_DEPLOYED, json.dumps(report["failure"])
    return RunResult(report["run_id"], report["execution_arn"], report["status"], report, exit_code)


def production_of(account, deployed) -> dict:
    return account.endpoints()[deployed.production_endpoint]


def assert_production_unchanged(account, deployed) -> None:
    """Production still serves the first run's model, and answers."""
    endpoint = production_of(account, deployed)
    assert endpoint == {"status": "InService", "config": deployed.report["endpoints"]["production"]["config"]}
    features, _ = account.sample_row(deployed.report)
    _, answer = account.invoke_endpoint(deployed.production_endpoint, features.encode("utf-8"))
    assert answer.strip() in deployed.report["qa"]["report"]["labels"]


def assert_failure_reported(result, state: str, error: str) -> None:
    report = result.report
    assert report["status"] == "FAILED"
    assert (report["failure"]["state"], report["failure"]["error"]) == (state, error), json.dumps(report["failure"])
    subjects = [mail["subject"] for mail in report["notifications"]]
    assert f"Pipeline run {result.run_id} failed in {state}" in subjects
    assert not report["endpoints"]["qa"]["exists"]
    qa_name = report["endpoints"]["qa"]["name"]
    assert qa_name is None or qa_name not in report["endpoints"]["all"]


def test_approved_run_deploys_a_model_that_answers_raw_rows(account, deployed, dataset_spec):
    report = deployed.report
    assert report["status"] == "SUCCEEDED" and report["outcome"] == "deployed"
    assert report["qa"]["accuracy"] >= 0.95
    assert report["qa"]["report"]["confusion_matrix"]
    # The QA endpoint is gone; production serves this run's config.
    assert report["endpoints"]["qa"]["name"] not in account.endpoints()
    production = production_of(account, deployed)
    assert production == {"status": "InService", "config": f"{deployed.run_id}-config"}
    # Raw CSV rows, as a client sends them, come back as the spec's labels.
    labels = next(c["values"] for c in dataset_spec["columns"] if c["name"] == dataset_spec["label"])
    features, truth = account.sample_row(report)
    content_type, answer = account.invoke_endpoint(deployed.production_endpoint, features.encode("utf-8"))
    assert answer.strip() in labels and truth in labels
    unseen = ",".join(["brand-new"] + features.split(",")[1:])
    assert account.invoke_endpoint(deployed.production_endpoint, unseen.encode("utf-8"))[1].strip() in labels
    # Every state that ran is accounted for, in order, with its timing.
    names = [state["name"] for state in report["states"]]
    assert names[:4] == ["ValidateInput", "Initialize", "ResolveDataset", "PreprocessWithGlue"] and names[-1] == "Succeeded"
    assert all(state["outcome"] == "succeeded" for state in report["states"])
    assert report["artifacts"]["model_artifacts"].endswith(f"/training/{deployed.run_id}-train/output/model.tar.gz")
    assert report["artifacts"]["manifest"]["test"].startswith("s3://")
    # What the command showed: progress, the approval email, the smoke prediction and a curl to try.
    shown = "\n".join(account.lines)
    assert "PreprocessWithGlue done in" in shown and "EMAIL  Subject: Approve car run" in shown
    assert "AUTO_APPROVE: opening the approve link" in shown
    assert report["smoke"]["prediction"] in labels
    assert f"curl -s -X POST {report['endpoints']['production']['url']}" in shown


def test_rejection_leaves_production_on_the_previous_model(account, deployed, car_data):
    result = account.run(car_data, decision="reject", reason="numbers look wrong to me")

    assert result.exit_code == EXIT_REJECTED and result.report["outcome"] == "rejected"
    assert_failure_reported(result, "RequestApproval", "ApprovalRejected")
    assert result.report["cleanup"]["status"] == "SUCCEEDED"  # the emulated RunEndedRule ran the cleanup
    assert "numbers look wrong to me" in result.report["failure"]["cause"]
    assert result.report["approval"]["decided"] and result.report["approval"]["response_status"] == 200
    # The approval email is in the report, its single-use reference is not.
    [request] = [m for m in result.report["notifications"] if m["subject"].startswith("Approve car run")]
    assert "/approvals/<reference>?decision=reject" in request["message"]
    assert_production_unchanged(account, deployed)


def test_rolled_back_production_update_keeps_the_previous_model(account, deployed, car_data, monkeypatch):
    # This time a person decides: the command prints the link and waits; they open it and approve.
    def person_reads(line: str) -> None:
        account.lines.append(line)
        if line.startswith("Open this link in a browser to decide: "):
            link = line.split(": ", 1)[1]
            threading.Thread(target=approval_server.browser_decide, args=(link, "approve")).start()

    monkeypatch.setattr(account, "say", person_reads)
    result = account.run(car_data, decision="manual", faults=Faults(rollback=True))

    assert result.exit_code == EXIT_FAILED
    assert result.report["states"][[s["name"] for s in result.report["states"]].index("RequestApproval")]["outcome"] == "succeeded"
    assert_failure_reported(result, "CheckProduction", "ProductionRolledBack")
    assert "still holds the production lock" in result.report["failure"]["message"]
    assert_production_unchanged(account, deployed)


def test_quality_below_threshold_fails_before_approval(account, deployed, car_data, monkeypatch):
    # The stack updated with a stricter AccuracyThreshold: the real qa_test Lambda refuses the model.
    monkeypatch.setitem(account.lambdas.environments["qa_test"], "ACCURACY_THRESHOLD", "0.9999")
    result = account.run(car_data, decision="approve")

    assert result.exit_code == EXIT_FAILED
    assert_failure_reported(result, "RunQATests", "QualityBelowThreshold")
    assert "0.9999" in result.report["failure"]["message"]
    assert not any(s["name"] == "RequestApproval" for s in result.report["states"])
    assert_production_unchanged(account, deployed)


def test_training_fault_after_production_exists(account, deployed, car_data):
    result = account.run(car_data, decision="approve", faults=Faults(states={"TrainXGBoost"}))

    assert result.exit_code == EXIT_FAILED
    assert_failure_reported(result, "TrainXGBoost", "States.TaskFailed")
    assert "LOCAL_FAULTS=TrainXGBoost" in result.report["failure"]["message"]
    assert "What to do: " in result.report["failure"]["explanation"]
    assert not any(s["name"] == "CreateQAEndpoint" for s in result.report["states"])
    assert_production_unchanged(account, deployed)


def test_malformed_data_fails_in_glue_with_the_jobs_message(account, deployed, car_data, tmp_path):
    rows = car_data.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "car-broken.data"
    bad.write_text("\n".join(rows[:5] + ["vhigh,vhigh,2,2,small"] + rows[5:20]) + "\n", encoding="utf-8")
    before = account.endpoints()

    result = account.run(bad, decision="approve")

    assert result.exit_code == EXIT_FAILED
    assert_failure_reported(result, "PreprocessWithGlue", "States.TaskFailed")
    job_message = account.glue_worker.runs[-1]["ErrorMessage"]
    assert result.report["failure"]["message"] == job_message
    assert "line 6" in job_message
    # Nothing was created or deployed, and the run left no manifest behind.
    assert account.endpoints() == before
    assert result.report["artifacts"]["manifest"] is None
    assert_production_unchanged(account, deployed)


def test_a_key_with_spaces_plus_and_non_ascii_reaches_the_glue_job(account, deployed, car_data, tmp_path):
    """The object S3 stores as "car data+v2 é (1).csv" arrives in the event URL-encoded, the
    form S3 documents for its notification keys (start_run's docstring cites it). The run
    starts and the Glue step reads that object, not the neighbour a wrong decoding names."""
    name = "car data+v2 é (1).csv"
    upload = tmp_path / name
    upload.write_bytes(car_data.read_bytes())
    rows = [line for line in car_data.read_text(encoding="utf-8").splitlines() if line.strip()]
    bucket, prefix = account.resources.input_bucket, account.resources.input_prefix
    # Percent-decoding without "+" -> " " would read the key as this one: a smaller file of the same format.
    boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}car+data+v2 é (1).csv",
                                  Body="\n".join(rows[:300]).encode("utf-8"))

    result = account.run(upload, decision="approve", faults=Faults(states={"TrainXGBoost"}))

    assert result.report["data"]["input_uri"] == f"s3://{bucket}/{prefix}{name}"
    glue = [state for state in result.report["states"] if state["name"] == "PreprocessWithGlue"]
    assert glue and glue[0]["outcome"] == "succeeded", result.report["failure"]
    manifest = account.glue_worker.runs[-1]["manifest"]
    assert manifest["input_uri"] == f"s3://{bucket}/{prefix}{name}"
    assert manifest["rows"]["total"] == len(rows)
    assert_failure_reported(result, "TrainXGBoost", "States.TaskFailed")


def test_a_stopped_run_leaves_nothing_running(account, deployed, car_data, monkeypatch):
    """Stopped (Ctrl-C) while the QA endpoint exists: no Catch runs in a stopped execution, so the
    emulated RunEndedRule starts the cleanup state machine, which deletes the endpoint."""
    def stop_while_the_qa_endpoint_exists(line: str) -> None:
        account.lines.append(line)
        if line.strip().endswith("WaitForQAEndpoint ...") and not getattr(stop_while_the_qa_endpoint_exists, "done", False):
            stop_while_the_qa_endpoint_exists.done = True
            raise KeyboardInterrupt

    monkeypatch.setattr(account, "say", stop_while_the_qa_endpoint_exists)
    result = account.run(car_data, decision="approve")

    assert (result.report["status"], result.report["outcome"]) == ("ABORTED", "interrupted"), json.dumps(result.report["failure"])
    cleanup = result.report["cleanup"]
    assert cleanup["status"] == "SUCCEEDED"
    assert cleanup["result"]["qa_endpoint"] == f"{result.run_id}-qa" and cleanup["result"]["action"] == "deleted"
    assert f"{result.run_id}-qa" not in account.endpoints()
    assert_production_unchanged(account, deployed)


def test_a_lost_training_answer_continues_with_the_job_it_started(account, deployed, car_data, monkeypatch):
    """CreateTrainingJob made the job, but Step Functions got a 500 instead of its answer. The job trains on
    (here on a thread, as SageMaker would); RecoverTraining finds it in SageMaker and the run waits for that job
    instead of creating it again, then goes on with its model (and is rejected, so production stays)."""
    handlers = account.machine.dispatcher.handlers
    train = handlers["sagemaker:createTrainingJob.sync"]
    sagemaker = boto3.client("sagemaker")
    trained = []

    def answer_lost(request):
        name = request.parameters["TrainingJobName"]
        worker = threading.Thread(target=lambda: trained.append(train(request)), name=f"training-{name}")
        worker.start()
        while not sagemaker.list_training_jobs(NameContains=name)["TrainingJobSummaries"] and worker.is_alive():
            time.sleep(0.05)
        raise TaskFailed("SageMaker.AmazonSageMakerException",
                         "We encountered an internal error. Please try again. (Service: AmazonSageMaker; Status Code: "
                         "500; Error Code: InternalFailure; Request ID: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0; Proxy: null)")

    monkeypatch.setitem(handlers, "sagemaker:createTrainingJob.sync", answer_lost)
    jobs_before = len(account.training_worker.jobs)
    result = account.run(car_data, decision="reject", reason="checking the recovered model only")

    assert_failure_reported(result, "RequestApproval", "ApprovalRejected")
    outcomes = {state["name"]: state["outcome"] for state in result.report["states"]}
    assert outcomes["RecoverTraining"] == "succeeded" and outcomes["CheckTraining"] == "succeeded"
    # One job, trained once, and the QA endpoint served its model.
    assert len(trained) == 1 and len(account.training_worker.jobs) == jobs_before + 1
    assert sagemaker.describe_training_job(TrainingJobName=f"{result.run_id}-train")["TrainingJobStatus"] == "Completed"
    assert result.report["artifacts"]["model_artifacts"] == trained[0]["ModelArtifacts"]["S3ModelArtifacts"]
    assert result.report["qa"]["accuracy"] >= 0.95
    assert_production_unchanged(account, deployed)


def test_every_task_received_its_parameters_resolved_as_aws_would(account, deployed, car_data):
    """Every call a worker received in this module's runs, against an independent evaluation of its state's
    Parameters (tests/asl_reference.py) over the state's input from the execution history: no literal `.$`
    field, no other value. A run failing in its first Task, and then in its cleanup, makes sure the failure
    path's Tasks are in too."""
    result = account.run(car_data, decision="approve", faults=Faults(states={"PreprocessWithGlue", "CleanupAfterFailure"}))
    assert result.exit_code == EXIT_FAILED
    calls = account.machine.dispatcher.calls
    definition = account.machine.definition

    assert asl_reference.tasks_not_called(definition, calls) == []
    assert asl_reference.check_task_parameters(definition, calls, account.machine.history) == []
    # Training ran with the role the plan named, the stack's SageMaker execution role (SageMaker refuses others).
    role = account.stack.role_assumable_by("sagemaker.amazonaws.com")
    assert account.training_worker.jobs and {job["RoleArn"] for job in account.training_worker.jobs} == {role}
