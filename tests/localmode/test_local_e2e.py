"""The whole pipeline locally, several uploads against one local account:
the real definition, Glue script on Spark, XGBoost, Lambdas, approval page
and inference server. The first run deploys production; the others must
leave it serving that model whatever goes wrong (guarantee 1)."""
from __future__ import annotations

import html
import json
import re
import threading
from pathlib import Path
import time

import boto3
import pytest

import asl_reference
from localmode import approval_server, rollback_cli, runner
from localmode.asl import TaskFailed
from localmode.faults import Faults
from localmode.iam.enforce import acting_as, as_harness, current
from localmode.session import EXIT_DEPLOYED, EXIT_FAILED, EXIT_REJECTED, RunResult

pytestmark = [pytest.mark.slow, pytest.mark.spark]


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


def test_a_run_leaves_its_artifacts_on_disk_in_the_layout_they_have_on_s3(account, deployed):
    """The local buckets end with the command; issue 23 found nothing to take home. Each run writes
    the buckets to <out>/s3/<bucket>/<key>: the bundles, the model, the splits, the QA report, the
    registry's model files and the capture files."""
    saved = Path(deployed.report["artifacts"]["saved_to"])
    run = saved / account.resources.artifacts_bucket / "runs" / deployed.run_id
    for relative in ("manifest.json", "model/preprocess/model.tar.gz", "model/preprocess/schema.json",
                     "model/postprocess/model.tar.gz", "qa/report.json",
                     f"training/{deployed.run_id}-train/output/model.tar.gz"):
        assert (run / relative).is_file(), relative
    assert list((run / "data" / "test").glob("part-*"))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["run_id"] == deployed.run_id
    models = saved / account.resources.artifacts_bucket / "models" / deployed.run_id
    assert {"preprocess", "xgboost", "postprocess"} <= {p.name for p in models.iterdir()}
    assert list((saved / account.resources.artifacts_bucket / "capture").rglob("*.jsonl"))
    assert "artifacts, as on S3" in "\n".join(account.lines)


def test_approved_run_deploys_a_model_that_answers_raw_rows(account, deployed, dataset_spec):
    report = deployed.report
    assert report["status"] == "SUCCEEDED" and report["outcome"] == "deployed"
    assert report["qa"]["accuracy"] >= 0.95
    assert report["qa"]["report"]["confusion_matrix"]
    # The dataset's first model: nothing to compare it with, and the report says so.
    assert report["qa"]["report"]["production"]["compared"] is False and report["qa"]["report"]["versus_production"] is None
    assert report["qa"]["report"]["production"]["note"].endswith("yet: this is the dataset's first model")
    # The QA endpoint is gone; production serves this run's config.
    assert report["endpoints"]["qa"]["name"] not in account.endpoints()
    production = production_of(account, deployed)
    # Production runs the run's registered version (1), through a config of its own (with data capture).
    assert production["status"] == "InService"
    assert re.fullmatch(rf"{deployed.production_endpoint}-v1-[0-9a-f]{{12}}-config", production["config"])
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
    # The registry keeps the rejected version, with the reviewer's reason; production never ran it.
    [rejected] = [entry for entry in result.report["registry"] if entry["run_id"] == result.run_id]
    assert (rejected["status"], rejected["approval_description"]) == ("Rejected", "Rejected by the reviewer: numbers look wrong to me")
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
        principal, state = current()  # the job trains on as the state machine's integration would

        def keep_training():
            with acting_as(principal, state):
                trained.append(train(request))

        worker = threading.Thread(target=keep_training, name=f"training-{name}")
        worker.start()
        with as_harness():  # the test's own look at SageMaker
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


def package_of(account, version: int) -> dict:
    [entry] = [e for e in account.registry_entries() if e["version"] == version]
    return boto3.client("sagemaker").describe_model_package(ModelPackageName=entry["arn"])


def serving_containers(account, endpoint: str) -> list[dict]:
    sagemaker = boto3.client("sagemaker")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=account.endpoints()[endpoint]["config"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return [{k: c.get(k) for k in ("Image", "ModelDataUrl", "Environment")} for c in model["Containers"]]


def test_an_approved_run_is_an_approved_registry_version_and_production_runs_exactly_it(account, deployed):
    package = package_of(account, 1)
    metadata = package["CustomerMetadataProperties"]
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"].startswith("Approved on the approval page at ")
    # Lineage: the input object and its version, the Glue job run, the training job, each model file's origin.
    assert metadata["run_id"] == deployed.run_id
    assert metadata["input_uri"] == deployed.report["data"]["input_uri"]
    assert metadata["input_version_id"] and metadata["glue_job_run_id"]
    assert metadata["training_job"] == f"{deployed.run_id}-train"
    assert metadata["container_2_source"] == deployed.report["artifacts"]["model_artifacts"]
    # The QA report is the version's model metrics, kept where runs/'s expiry does not reach.
    metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert metrics_uri.endswith(f"models/{deployed.run_id}/registry/qa-report.json")
    assert json.loads(boto3.client("s3").get_object(Bucket=account.resources.artifacts_bucket,
                                                    Key=metrics_uri.split("/", 3)[3])["Body"].read()) \
        == deployed.report["qa"]["report"]
    # Production's model is the version's containers, file for file.
    spec = [{k: c.get(k) for k in ("Image", "ModelDataUrl", "Environment")}
            for c in package["InferenceSpecification"]["Containers"]]
    assert serving_containers(account, deployed.production_endpoint) == spec
    # Production (only) captures its traffic, encrypted, under capture/.
    production_config = boto3.client("sagemaker").describe_endpoint_config(
        EndpointConfigName=account.endpoints()[deployed.production_endpoint]["config"])
    capture = production_config["DataCaptureConfig"]
    assert capture["InitialSamplingPercentage"] == 100 and capture["KmsKeyId"]
    assert capture["DestinationS3Uri"] == f"s3://{account.resources.artifacts_bucket}/capture"


def test_the_production_endpoint_captures_requests_and_responses_in_sagemakers_format(account, deployed):
    """The capture files AWS documents (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html):
    JSON Lines under <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/, one record per request with
    captureData.endpointInput/endpointOutput (observedContentType, mode, data, encoding), eventMetadata
    (eventId, inferenceTime) and eventVersion "0"."""
    before = set(account.capture_files())
    features, _ = account.sample_row(deployed.report)
    answers = [account.invoke_endpoint(deployed.production_endpoint, features.encode("utf-8")) for _ in range(3)]
    new = sorted(set(account.capture_files()) - before)

    assert new
    s3 = boto3.client("s3")
    records = []
    for uri in new:
        key = uri.split("/", 3)[3]
        assert re.fullmatch(rf"capture/{deployed.production_endpoint}/AllTraffic/\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/[^/]+\.jsonl", key)
        obj = s3.get_object(Bucket=account.resources.artifacts_bucket, Key=key)
        assert obj["ServerSideEncryption"] == "aws:kms"
        records += [json.loads(line) for line in obj["Body"].read().decode("utf-8").splitlines()]
    assert len(records) == 3  # 100 percent sampled
    for record, (content_type, answer) in zip(records, answers):
        assert record["eventVersion"] == "0"
        assert record["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT",
                                                          "data": features, "encoding": "CSV"}
        assert record["captureData"]["endpointOutput"] == {"observedContentType": content_type, "mode": "OUTPUT",
                                                           "data": answer, "encoding": "CSV"}
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", record["eventMetadata"]["inferenceTime"])
        assert len(record["eventMetadata"]["eventId"]) == 36
    account.lines.append("captured record: " + json.dumps(records[0]))
    # The QA endpoint (hundreds of QA requests) captured nothing.
    assert not [uri for uri in account.capture_files() if "-qa/" in uri]


@pytest.fixture(scope="module")
def series(account, deployed, car_data):
    """`make local AUTO_APPROVE=1 RUNS=2` on the account where production serves the first upload's model:
    two runs through the runner, each compared with the production the run before it left."""
    args = runner.parse_args(["--auto-approve", "--data", str(car_data), "--runs", "2"])
    exit_code, report_path = runner.execute_runs(account, args, car_data, Faults())
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert exit_code == EXIT_DEPLOYED, json.dumps([run["failure"] for run in report["runs"]])
    return report_path, report


def printed_email(lines: list[str], subject_start: str) -> list[str]:
    """The lines of the printed email whose subject starts so (without the frame and indent)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"EMAIL  Subject: {subject_start}"))
    end = next(i for i in range(start + 2, len(lines)) if lines[i] == "=" * 72)
    return [line[2:] for line in lines[start + 2:end]]


def approval_record(account, run_id: str) -> dict:
    items = boto3.client("dynamodb").scan(TableName=account.resources.state_table)["Items"]
    [record] = [item for item in items if item.get("run_id", {}).get("S") == run_id and "nonce" in item]
    return record


def test_the_second_run_of_a_series_shows_the_first_runs_production_on_its_email_and_page(account, deployed, series):
    report_path, report = series
    first, second = report["runs"]
    assert report_path == account.workdir / "report.json" and report["run_id"] == second["run_id"]
    assert [(r["outcome"], r["exit_code"]) for r in report["runs"]] == [("deployed", 0), ("deployed", 0)]
    assert second["registry_version"] == first["registry_version"] + 1
    for run in (first, second):
        assert json.loads(Path(run["report"]).read_text(encoding="utf-8"))["run_id"] == run["run_id"]
    # The second run's QA asked the production endpoint the first run of the series had just deployed.
    endpoint = deployed.production_endpoint
    assert second["production"]["compared"] is True
    assert second["production"]["note"] == f"production endpoint {endpoint} (InService) answered the same rows"
    assert re.fullmatch(rf"{endpoint}-v{first['registry_version']}-[0-9a-f]{{12}}-config",
                        json.loads(Path(first["report"]).read_text(encoding="utf-8"))["endpoints"]["production"]["config"])
    versus = second["versus_production"]
    assert versus["rows_answered_differently"] == 0 or versus["examples"]

    # What the reviewer read: the printed email's Production line gives production's figure on the same rows.
    email = printed_email(account.lines, f"Approve car run {second['run_id']}")
    [production_line] = [line for line in email if line.startswith("Production: ")]
    assert production_line.startswith(f"Production: {versus['metric']} ")
    assert f"{versus['production']:.4f}" in production_line
    assert "not compared" not in production_line and "first model" not in production_line

    # What the browser opened before submitting: saved, showing the same comparison, without the form's nonce.
    page_path = account.approval_page_path(second["run_id"])
    assert second["approval_page"] == str(page_path)
    assert any(line == f"approval page (200) saved as {page_path}" for line in account.lines)
    page = page_path.read_text(encoding="utf-8")
    assert 'name="nonce" value="redacted"' in page
    assert approval_record(account, second["run_id"])["nonce"]["S"] not in page
    assert not re.search(r"/approvals/(?!<reference>)", page)
    assert production_line.removeprefix("Production: ") in html.unescape(page)


def test_a_rollback_redeploys_the_first_version_through_its_confirmation_page(account, deployed, series):
    _, report = series
    second = report["runs"][-1]
    newest = second["registry_version"]
    assert account.endpoints()[deployed.production_endpoint]["config"] != deployed.report["endpoints"]["production"]["config"]
    shown_before = len(account.lines)

    # As `python -m localmode rollback --version 1 --auto-approve` does it once its runs are made.
    exit_code, report_path = rollback_cli.roll_back(account, 1, "approve")
    result_report = json.loads(report_path.read_text(encoding="utf-8"))
    result = RunResult(result_report["run_id"], result_report["execution_arn"], result_report["status"], result_report,
                       exit_code)

    assert result.exit_code == EXIT_DEPLOYED, json.dumps(result.report["failure"])
    # What the command printed: the registry after the rollback (version 1 Approved again serving), production, and
    # the capture record its smoke prediction left, read back from S3.
    shown = account.lines[shown_before:]
    after = shown[shown.index("registry after the rollback:") + 1:]
    entries = {int(m.group(1)): m.group(2) for m in (re.match(r"  version (\d+): (\w+)", line) for line in after) if m}
    assert entries[1] == entries[newest] == "Approved" and len(entries) == newest
    assert "Rejected" in entries.values()  # the rejected run's version keeps its status
    production = result.report["endpoints"]["production"]
    assert f"production endpoint {production['name']}: InService on {production['config']}" in shown
    assert re.fullmatch(rf"{deployed.production_endpoint}-v1-[0-9a-f]{{12}}-config", production["config"])
    [captured] = result.report["captured"]
    [record] = [json.loads(line) for line in captured["records"]]
    assert record["captureData"]["endpointInput"]["data"] == result.report["smoke"]["request"]
    assert record["captureData"]["endpointOutput"]["data"] == result.report["smoke"]["prediction"]
    assert f"captured in {captured['uri']}:" in shown and captured["uri"].startswith(f"s3://{account.resources.artifacts_bucket}/capture/")
    # The confirmation was a rollback's: which version, and what serves now.
    [confirmation] = [m for m in result.report["notifications"] if m["subject"].startswith("Roll ")]
    assert confirmation["subject"] == f"Roll {deployed.production_endpoint} back to version 1?"
    assert f"Now serving: version {newest} (run {second['run_id']}" in confirmation["message"]
    assert f"Run:        {deployed.run_id} on {deployed.report['data']['input_uri']}" in confirmation["message"]
    assert "AUTO_APPROVE: opening the approve link" in "\n".join(account.lines)
    # Production runs version 1 again, through the same deployment (blue/green update).
    assert serving_containers(account, deployed.production_endpoint) == serving_containers_of_package(account, 1)
    assert result.report["states"][-1]["name"] == "Succeeded"
    assert any(s["name"] == "CheckProduction" for s in result.report["states"])
    mails = [m["subject"] for m in result.report["notifications"]]
    assert f"{deployed.production_endpoint} rolled back to version 1" in mails
    assert_production_unchanged(account, deployed)
    account.lines.append("registry after the rollback: " + json.dumps(result.report["registry"]))
    statuses = {e["version"]: e["status"] for e in result.report["registry"]}
    assert statuses[1] == statuses[newest] == "Approved"


def serving_containers_of_package(account, version: int) -> list[dict]:
    return [{k: c.get(k) for k in ("Image", "ModelDataUrl", "Environment")}
            for c in package_of(account, version)["InferenceSpecification"]["Containers"]]


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


def test_a_challenger_worse_than_production_is_refused_before_approval(account, deployed, car_data, monkeypatch):
    """Injected: one boosting round of depth-1 trees (the stack's training settings turned down), and a
    threshold low enough that only the comparison with production can refuse the model."""
    monkeypatch.setitem(account.lambdas.environments["prepare_training"], "XGBOOST_NUM_ROUND", "1")
    monkeypatch.setitem(account.lambdas.environments["prepare_training"], "XGBOOST_MAX_DEPTH", "1")
    monkeypatch.setitem(account.lambdas.environments["qa_test"], "ACCURACY_THRESHOLD", "0.5")
    registered_before = len(account.registry_entries())
    result = account.run(car_data, decision="approve")

    assert result.exit_code == EXIT_FAILED
    assert_failure_reported(result, "RunQATests", "WorseThanProduction")
    assert f"worse than production {deployed.production_endpoint}'s" in result.report["failure"]["message"]
    report = json.loads(boto3.client("s3").get_object(
        Bucket=account.resources.artifacts_bucket, Key=f"runs/{result.run_id}/qa/report.json")["Body"].read())
    versus = report["versus_production"]
    assert report["production"]["compared"] is True and report["production"]["accuracy"] >= 0.95
    # `regression`: how much worse than production in the gate's metric (positive: worse).
    assert versus["passed"] is False and versus["metric"] == "accuracy"
    assert versus["regression"] > versus["max_regression"] > 0
    assert versus["rows_answered_differently"] >= 1 and versus["examples"]
    # Refused before anyone was asked: nothing registered, no approval email, production as it was.
    assert len(account.registry_entries()) == registered_before
    assert not [m for m in result.report["notifications"] if m["subject"].startswith("Approve run")]
    assert_production_unchanged(account, deployed)
