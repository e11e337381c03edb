"""qa_test: every held-out row goes to the QA endpoint as a client would send
it; the metrics are the ones a person would compute by hand."""
from __future__ import annotations

import csv
import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from lambda_fixtures import REGION, put


@pytest.fixture
def qa(load_function, monkeypatch):
    monkeypatch.setenv("ACCURACY_THRESHOLD", "0.9")
    monkeypatch.delenv("QA_MAX_ROWS", raising=False)
    return load_function("qa_test")


@pytest.fixture(scope="module")
def held_out_rows(car_data) -> list[list[str]]:
    """A deterministic sample of real car.data rows: features then label."""
    with open(car_data, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    sample = rows[::29]  # every class is present in this sample
    assert {row[-1] for row in sample} == {"unacc", "acc", "good", "vgood"}
    return sample


def write_test_split(s3, manifest: dict, rows: list[list[str]], parts: int = 2) -> None:
    prefix = manifest["uris"]["test"]
    for part in range(parts):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows[part::parts])
        put(s3, f"{prefix}part-{part:05d}-abc.csv", buffer.getvalue())
    put(s3, prefix + "_SUCCESS", b"")


def rows_in_read_order(rows: list[list[str]], parts: int = 2) -> list[list[str]]:
    return [row for part in range(parts) for row in rows[part::parts]]


def csv_body(text: str) -> StreamingBody:
    data = text.encode("utf-8")
    return StreamingBody(io.BytesIO(data), len(data))


def qa_event(stored_run) -> dict:
    run = stored_run["run"]
    return {"run": run, "names": {"qa_endpoint": f"{run['run_id']}-qa"}, "manifest_uri": stored_run["manifest_uri"]}


def stub_endpoint(stub: Stubber, endpoint: str, rows: list[list[str]], answers: list[str]) -> None:
    """One request per row, exactly as a client sends it: the feature fields
    as one CSV line, text/csv. The stubbed container answers `answers[i]`."""
    for row, answer in zip(rows, answers):
        stub.add_response(
            "invoke_endpoint",
            {"Body": csv_body(answer + "\n"), "ContentType": "text/csv"},
            {"EndpointName": endpoint, "ContentType": "text/csv", "Accept": "text/csv",
             "Body": ",".join(row[:-1]).encode("utf-8")},
        )


def read_report(s3, stored_run) -> dict:
    bucket, key = (stored_run["run"]["run_prefix"] + "qa/report.json")[5:].split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_metrics_and_report(qa, stored_run, s3, held_out_rows, monkeypatch):
    monkeypatch.setenv("ACCURACY_THRESHOLD", "0.8")
    write_test_split(s3, stored_run["manifest"], held_out_rows)
    rows = rows_in_read_order(held_out_rows)
    truths = [row[-1] for row in rows]
    answers = list(truths)
    # Three unacc rows predicted acc, one acc row predicted unacc.
    unacc = [i for i, t in enumerate(truths) if t == "unacc"][:3]
    acc = [i for i, t in enumerate(truths) if t == "acc"][:1]
    for i in unacc:
        answers[i] = "acc"
    for i in acc:
        answers[i] = "unacc"

    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = qa_event(stored_run)
    with Stubber(runtime) as stub:
        stub_endpoint(stub, event["names"]["qa_endpoint"], rows, answers)
        result = qa.qa_test(s3, runtime, event, threshold=0.8, max_rows=5000)
        stub.assert_no_pending_responses()

    n = len(rows)
    counts = {label: truths.count(label) for label in ("unacc", "acc", "good", "vgood")}
    assert result["rows"] == n
    assert result["correct"] == n - 4
    assert result["accuracy"] == round((n - 4) / n, 6)
    assert result["report_uri"] == stored_run["run"]["run_prefix"] + "qa/report.json"
    assert result["threshold"] == 0.8 and result["passed"] is True

    report = read_report(s3, stored_run)
    assert report["labels"] == ["unacc", "acc", "good", "vgood"]
    expected_matrix = [
        [counts["unacc"] - 3, 3, 0, 0],
        [1, counts["acc"] - 1, 0, 0],
        [0, 0, counts["good"], 0],
        [0, 0, 0, counts["vgood"]],
    ]
    assert report["confusion_matrix"] == expected_matrix
    per_class = report["per_class"]
    assert per_class["unacc"]["recall"] == round((counts["unacc"] - 3) / counts["unacc"], 6)
    assert per_class["unacc"]["precision"] == round((counts["unacc"] - 3) / (counts["unacc"] - 3 + 1), 6)
    assert per_class["acc"]["recall"] == round((counts["acc"] - 1) / counts["acc"], 6)
    assert per_class["acc"]["precision"] == round((counts["acc"] - 1) / (counts["acc"] - 1 + 3), 6)
    assert per_class["good"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": counts["good"]}
    assert report["invalid_predictions"] == 0
    assert report["passed"] is True


def test_below_threshold_fails_with_the_numbers_and_keeps_the_report(qa, stored_run, s3, held_out_rows, context):
    write_test_split(s3, stored_run["manifest"], held_out_rows)
    rows = rows_in_read_order(held_out_rows)
    answers = ["unacc"] * len(rows)  # a model that always says "unacc"
    expected_correct = sum(1 for row in rows if row[-1] == "unacc")

    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = qa_event(stored_run)
    with Stubber(runtime) as stub:
        stub_endpoint(stub, event["names"]["qa_endpoint"], rows, answers)
        with pytest.raises(Exception) as raised:
            qa.qa_test(s3, runtime, event, threshold=0.9, max_rows=5000)
    assert type(raised.value).__name__ == "QualityBelowThreshold"
    message = str(raised.value)
    assert f"{expected_correct}/{len(rows)}" in message
    assert f"{expected_correct / len(rows):.4f}" in message and "0.9000" in message
    assert "qa/report.json" in message
    report = read_report(s3, stored_run)
    assert report["passed"] is False and report["correct"] == expected_correct


def test_exactly_at_the_threshold_passes(qa):
    manifest = {"problem_type": "binary", "label_values": ["a", "b"]}
    rows = [([], truth) for truth in ["a"] * 7 + ["b"] * 3]
    metrics, exact = qa.score(manifest, rows, ["a"] * 10)
    assert metrics["correct"] == 7 and metrics["rows"] == 10
    # 0.7 * 10 is 7.000000000000001 in floating point; the check must still pass 7/10.
    gate = qa.decide_gate("binary", {"metric": "accuracy", "threshold": 0.7}, metrics, 0.9, 0.5, exact)
    assert gate["passed"] is True


def test_refused_rows_and_non_label_answers_count_as_wrong(qa, stored_run, s3, held_out_rows):
    rows = rows_in_read_order(held_out_rows[:6])
    write_test_split(s3, stored_run["manifest"], held_out_rows[:6])
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = qa_event(stored_run)
    endpoint = event["names"]["qa_endpoint"]
    with Stubber(runtime) as stub:
        stub.add_client_error("invoke_endpoint", "ModelError", "Received client error (400) from container")
        stub.add_response("invoke_endpoint", {"Body": csv_body("2.0\n")})  # the class index, not a label
        stub_endpoint(stub, endpoint, rows[2:], [row[-1] for row in rows[2:]])
        with pytest.raises(Exception) as raised:
            qa.qa_test(s3, runtime, event, threshold=0.9, max_rows=5000)
    assert "2 invalid answers" in str(raised.value)
    report = read_report(s3, stored_run)
    assert report["correct"] == 4 and report["rows"] == 6 and report["invalid_predictions"] == 2
    assert [example["problem"] for example in report["invalid_examples"]][1] == "answer '2.0' is not a label"


def test_other_endpoint_errors_stop_the_test(qa, stored_run, s3, held_out_rows):
    write_test_split(s3, stored_run["manifest"], held_out_rows[:4])
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        stub.add_client_error("invoke_endpoint", "ValidationException", "Endpoint car-qa of account x not found.")
        with pytest.raises(Exception, match="not found"):
            qa.qa_test(s3, runtime, qa_event(stored_run), threshold=0.9, max_rows=5000)


def test_quoted_fields_and_crlf_lines_are_read_as_csv(qa, stored_run, s3):
    prefix = stored_run["manifest"]["uris"]["test"]
    put(s3, prefix + "part-00000.csv", b'vhigh,vhigh,2,2,small,low,unacc\r\n"5more",med,"4",more,big,high,acc\r\n\r\n')
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = qa_event(stored_run)
    rows = [["vhigh", "vhigh", "2", "2", "small", "low", "unacc"], ["5more", "med", "4", "more", "big", "high", "acc"]]
    with Stubber(runtime) as stub:
        stub_endpoint(stub, event["names"]["qa_endpoint"], rows, ["unacc", '"acc"'])
        result = qa.qa_test(s3, runtime, event, threshold=0.9, max_rows=5000)
        stub.assert_no_pending_responses()
    assert result["accuracy"] == 1.0 and result["rows"] == 2


def test_row_cap(qa, stored_run, s3, held_out_rows):
    write_test_split(s3, stored_run["manifest"], held_out_rows, parts=1)
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = qa_event(stored_run)
    # Five rows of the split, chosen as QA chooses them (a seeded stratified sample, not the first five).
    chosen = [features + [truth] for features, truth in qa.read_test_rows(
        s3, stored_run["manifest"]["uris"]["test"], 6, 5, seed=stored_run["manifest"].get("seed", 0))]
    assert len(chosen) == 5 and chosen != held_out_rows[:5]
    with Stubber(runtime) as stub:
        stub_endpoint(stub, event["names"]["qa_endpoint"], chosen, [r[-1] for r in chosen])
        result = qa.qa_test(s3, runtime, event, threshold=0.9, max_rows=5)
        stub.assert_no_pending_responses()
    assert result["rows"] == 5 and result["rows_available"] == stored_run["manifest"]["rows"]["test"]
    assert result["sample"] == {"method": "stratified random by label", "rows": 5, "of": len(held_out_rows),
                                "seed": stored_run["manifest"].get("seed", 0)}


def test_wrong_field_count_names_the_file_and_line(qa, stored_run, s3):
    prefix = stored_run["manifest"]["uris"]["test"]
    put(s3, prefix + "part-00000.csv", "vhigh,vhigh,2,2,small,low,unacc\nvhigh,vhigh,2,2,unacc\n")
    with pytest.raises(Exception, match=r"part-00000.csv row 2: 5 fields") as raised:
        qa.qa_test(s3, boto3.client("sagemaker-runtime", region_name=REGION), qa_event(stored_run), 0.9, 5000)
    assert type(raised.value).__name__ == "TestDataInvalid"


def test_no_test_rows(qa, stored_run, s3):
    put(s3, stored_run["manifest"]["uris"]["test"] + "_SUCCESS", b"")
    with pytest.raises(Exception, match="no test rows") as raised:
        qa.qa_test(s3, boto3.client("sagemaker-runtime", region_name=REGION), qa_event(stored_run), 0.9, 5000)
    assert type(raised.value).__name__ == "TestDataInvalid"


def test_unknown_true_label(qa):
    with pytest.raises(Exception, match="'maybe'") as raised:
        qa.score({"label_values": ["a", "b"]}, [([], "a"), ([], "maybe")], ["a", "b"])
    assert type(raised.value).__name__ == "TestDataInvalid"


def test_handler_bad_event_and_bad_threshold(qa, context, monkeypatch, aws):
    with pytest.raises(Exception) as raised:
        qa.lambda_handler({"run": {}}, context)
    assert type(raised.value).__name__ == "InvalidEvent"
    monkeypatch.setenv("ACCURACY_THRESHOLD", "1.5")
    with pytest.raises(Exception, match="ACCURACY_THRESHOLD"):
        qa.lambda_handler({"run": {}}, context)


# ---------------------------------------------------------------- issue 11: QA follows the label

def contract_run(s3, kind: str, rows: list[list[str]], **changes) -> dict:
    from lambda_fixtures import contract_manifest, make_run

    run = make_run(f"{kind}-qa-run")
    manifest = contract_manifest(kind, run, **changes)
    put(s3, run["run_prefix"] + "manifest.json", manifest)
    write_test_split(s3, manifest, rows, parts=1)
    return {"run": run, "manifest": manifest, "manifest_uri": run["run_prefix"] + "manifest.json"}


def test_binary_qa_reports_roc_auc_from_the_labels_and_gates_on_it(qa, s3):
    """The spec's gate (roc_auc >= 0.9) decides, not accuracy; the report says what the AUC is made of."""
    truths = ["malignant"] * 10 + ["benign"] * 30
    rows = [[f"{10 + i}.5", "", "left", truth] for i, truth in enumerate(truths)]  # a missing numeric field stays empty
    answers = ["malignant"] * 9 + ["benign"] + ["benign"] * 27 + ["malignant"] * 3
    stored = contract_run(s3, "binary", rows)
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = qa_event(stored)
    with Stubber(runtime) as stub:
        stub_endpoint(stub, event["names"]["qa_endpoint"], rows, answers)
        result = qa.qa_test(s3, runtime, event, threshold=0.99, max_rows=5000)
        stub.assert_no_pending_responses()
    # TPR 0.9, FPR 0.1: the one-point ROC curve's area is 0.9 (= balanced accuracy).
    assert result["metric"] == "roc_auc" and result["value"] == pytest.approx(0.9) and result["threshold"] == 0.9
    assert result["problem_type"] == "binary" and result["accuracy"] == 0.9
    report = read_report(s3, stored)
    assert report["gate"] == {"metric": "roc_auc", "threshold": 0.9, "threshold_source": "spec",
                              "higher_is_better": True, "value": 0.9, "passed": True}
    assert report["problem_type"] == "binary" and report["positive_label"] == "malignant"
    assert "balanced accuracy" in report["roc_auc_basis"]
    assert report["confusion_matrix"] == [[27, 3], [1, 9]]


def regression_rows(n: int = 30) -> list[list[str]]:
    return [[str(40 + i), "1" if i % 2 else "", f"{20 + i * 0.5}", f"{100 + 5 * i}"] for i in range(n)]


def test_regression_qa_measures_numbers_and_summarises_the_residuals(qa, s3, monkeypatch):
    rows = regression_rows()
    truths = [float(row[-1]) for row in rows]
    predictions = [t + (8.0 if i == 7 else (-1.0) ** i) for i, t in enumerate(truths)]
    stored = contract_run(s3, "regression", rows)
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = qa_event(stored)
    with Stubber(runtime) as stub:
        stub_endpoint(stub, event["names"]["qa_endpoint"], rows, [repr(p) for p in predictions])
        result = qa.qa_test(s3, runtime, event, threshold=0.95, max_rows=5000, r2_threshold=0.6)
        stub.assert_no_pending_responses()
    residuals = [t - p for t, p in zip(truths, predictions)]
    rmse = (sum(r * r for r in residuals) / len(rows)) ** 0.5
    assert result["metric"] == "r2" and result["threshold"] == 0.6 and result["accuracy"] is None
    report = read_report(s3, stored)
    assert report["gate"]["threshold_source"] == "R2Threshold" and report["gate"]["passed"] is True
    assert report["rmse"] == pytest.approx(rmse, abs=1e-5)
    assert report["largest_errors"][0]["row"] == 8 and report["largest_errors"][0]["residual"] == -8.0
    assert report["largest_errors"][0]["features"] == rows[7][:-1]
    assert "confusion_matrix" not in report and report["label_name"] == "progression"


def test_regression_gate_failure_names_metric_value_threshold_and_direction(qa, s3):
    rows = regression_rows(10)
    stored = contract_run(s3, "regression", rows, quality_gate={"metric": "rmse", "threshold": 2.0,
                                                                "higher_is_better": False})
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = qa_event(stored)
    with Stubber(runtime) as stub:
        stub_endpoint(stub, event["names"]["qa_endpoint"], rows, [str(float(row[-1]) + 3) for row in rows])
        with pytest.raises(Exception) as raised:
            qa.qa_test(s3, runtime, event, threshold=0.95, max_rows=5000)
    assert type(raised.value).__name__ == "QualityBelowThreshold"
    assert str(raised.value).startswith("QA rmse 3.0000 is above the threshold 2.0000 (lower is better; threshold from spec)")
    assert read_report(s3, stored)["gate"]["passed"] is False


def test_a_regression_answer_that_is_not_a_number_fails_the_run(qa, s3):
    rows = regression_rows(4)
    stored = contract_run(s3, "regression", rows, quality_gate={"metric": "mae", "threshold": 100.0,
                                                                "higher_is_better": False})
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = qa_event(stored)
    with Stubber(runtime) as stub:
        stub_endpoint(stub, event["names"]["qa_endpoint"], rows, [row[-1] for row in rows[:3]] + ["unacc"])
        with pytest.raises(Exception, match="1 of 4 held-out rows got no numeric answer"):
            qa.qa_test(s3, runtime, event, threshold=0.95, max_rows=5000)
    report = read_report(s3, stored)
    assert report["invalid_predictions"] == 1 and report["invalid_examples"][0]["problem"] == "answer 'unacc' is not a number"


def test_a_regression_label_that_is_not_a_number_is_test_data_invalid(qa, s3):
    rows = regression_rows(3)
    rows[1][-1] = "high"
    stored = contract_run(s3, "regression", rows)
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = qa_event(stored)
    with Stubber(runtime) as stub:
        stub_endpoint(stub, event["names"]["qa_endpoint"], rows, ["1.0"] * 3)
        with pytest.raises(Exception, match="test row 2: the label 'high' is not a number") as raised:
            qa.qa_test(s3, runtime, event, threshold=0.95, max_rows=5000)
    assert type(raised.value).__name__ == "TestDataInvalid"


def test_the_handler_takes_the_regression_default_from_r2_threshold(qa, s3, context, monkeypatch):
    rows = regression_rows(6)
    stored = contract_run(s3, "regression", rows)
    monkeypatch.setenv("R2_THRESHOLD", "0.999")
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        stub_endpoint(stub, f"{stored['run']['run_id']}-qa", rows, [str(float(r[-1]) + 2) for r in rows])
        monkeypatch.setattr(qa.boto3, "client", lambda name, **_: runtime if name == "sagemaker-runtime" else s3)
        with pytest.raises(Exception, match="threshold 0.9990 .*R2Threshold"):
            qa.lambda_handler(qa_event(stored), context)


# Champion versus challenger: the same held-out rows go to production (when it serves) and to the QA endpoint.
PRODUCTION = "car-evaluation"


def versus_event(stored_run) -> dict:
    event = qa_event(stored_run)
    event["names"]["production_endpoint"] = PRODUCTION
    return event


def production_described(sagemaker, status: str) -> Stubber:
    """DescribeEndpoint's answer (botocore's model: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html)."""
    stub = Stubber(sagemaker)
    stub.add_response("describe_endpoint", {
        "EndpointName": PRODUCTION, "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{PRODUCTION}",
        "EndpointConfigName": "car-evaluation-v1-config", "EndpointStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"},
        {"EndpointName": PRODUCTION})
    return stub


def stub_both(stub: Stubber, qa_endpoint: str, rows, new_answers, production_answers) -> None:
    """Every row to the QA endpoint, then the same records, in the same order, to production."""
    stub_endpoint(stub, qa_endpoint, rows, new_answers)
    stub_endpoint(stub, PRODUCTION, rows, production_answers)


def answers_wrong_on(truths: list[str], wrong: list[int]) -> list[str]:
    return [("acc" if truth == "unacc" else "unacc") if i in wrong else truth for i, truth in enumerate(truths)]


def run_versus(qa, stored_run, s3, held_out_rows, new_wrong, production_wrong, max_regression):
    write_test_split(s3, stored_run["manifest"], held_out_rows)
    rows = rows_in_read_order(held_out_rows)
    truths = [row[-1] for row in rows]
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    event = versus_event(stored_run)
    with Stubber(runtime) as stub, production_described(sagemaker, "InService"):
        stub_both(stub, event["names"]["qa_endpoint"], rows, answers_wrong_on(truths, new_wrong),
                  answers_wrong_on(truths, production_wrong))
        try:
            return rows, qa.qa_test(s3, runtime, event, threshold=0.8, max_rows=5000, sagemaker=sagemaker,
                                    max_regression=max_regression)
        finally:
            stub.assert_no_pending_responses()


def test_the_report_shows_both_models_on_the_same_rows(qa, stored_run, s3, held_out_rows):
    # The new model misses rows 0-1, production misses rows 1-6: 6 rows answered differently, 4 more right.
    rows, result = run_versus(qa, stored_run, s3, held_out_rows, new_wrong=[0, 1], production_wrong=[1, 2, 3, 4, 5, 6],
                              max_regression=0.0)
    n = len(rows)
    assert result["accuracy"] == round((n - 2) / n, 6)
    assert result["production"] == {"endpoint_name": PRODUCTION, "compared": True, "accuracy": round((n - 6) / n, 6),
                                    "value": (n - 6) / n,
                                    "note": f"production endpoint {PRODUCTION} (InService) answered the same rows"}
    assert result["regression_against_production"] == round(-4 / n, 6) and result["rows_answered_differently"] == 6
    report = read_report(s3, stored_run)
    assert report["production"]["correct"] == n - 6 and report["production"]["rows"] == n
    assert sum(map(sum, report["production"]["confusion_matrix"])) == n
    versus = report["versus_production"]
    assert versus["passed"] is True and versus["rows_answered_differently"] == 6
    # A few of them, each with what both models said.
    assert len(versus["examples"]) == 5
    first = versus["examples"][0]
    assert first["features"] == rows[0][:-1] and first["truth"] == rows[0][-1]
    assert first["new_model"] != first["truth"] and first["production"] == first["truth"]


def test_a_challenger_worse_than_production_fails_before_approval_with_the_cause(qa, stored_run, s3, held_out_rows):
    with pytest.raises(Exception) as raised:
        run_versus(qa, stored_run, s3, held_out_rows, new_wrong=[0, 1, 2, 3], production_wrong=[0],
                   max_regression=0.02)
    assert type(raised.value).__name__ == "WorseThanProduction"
    n = len(rows_in_read_order(held_out_rows))
    message = str(raised.value)
    # The gate's metric (car: accuracy) decides, absolute for a bounded metric.
    assert (f"QA accuracy {(n - 4) / n:.4f} is {3 / n:.4f} worse than production {PRODUCTION}'s {(n - 1) / n:.4f} "
            f"(higher is better) on the same {n} held-out rows") in message
    assert "at most 0.0200 allowed; 3 rows answered differently" in message and "qa/report.json" in message
    report = read_report(s3, stored_run)
    assert report["passed"] is True and report["versus_production"]["passed"] is False


def test_a_regression_within_the_allowance_passes(qa, stored_run, s3, held_out_rows):
    n = len(rows_in_read_order(held_out_rows))
    # Exactly the allowance (3 rows of n) passes: the unrounded ratio is compared.
    _, result = run_versus(qa, stored_run, s3, held_out_rows, new_wrong=[0, 1, 2, 3], production_wrong=[0],
                           max_regression=3 / n)
    assert result["regression_against_production"] == round(3 / n, 6) and result["passed"] is True


def test_the_first_run_of_a_dataset_says_there_is_no_production_yet(qa, stored_run, s3, held_out_rows):
    """moto's DescribeEndpoint answers a missing endpoint as SageMaker does (ValidationException, "Could not find")."""
    write_test_split(s3, stored_run["manifest"], held_out_rows[:4])
    rows = rows_in_read_order(held_out_rows[:4])
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    event = versus_event(stored_run)
    with Stubber(runtime) as stub:
        stub_endpoint(stub, event["names"]["qa_endpoint"], rows, [row[-1] for row in rows])  # no production calls
        result = qa.qa_test(s3, runtime, event, threshold=0.8, max_rows=5000,
                            sagemaker=boto3.client("sagemaker", region_name=REGION))
        stub.assert_no_pending_responses()
    assert result["production"]["compared"] is False and result["regression_against_production"] is None
    assert result["production"]["note"] == f"no production endpoint {PRODUCTION} yet: this is the dataset's first model"
    assert read_report(s3, stored_run)["versus_production"] is None


def test_a_production_endpoint_that_does_not_serve_is_not_compared(qa, stored_run, s3, held_out_rows):
    write_test_split(s3, stored_run["manifest"], held_out_rows[:4])
    rows = rows_in_read_order(held_out_rows[:4])
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    event = versus_event(stored_run)
    with Stubber(runtime) as stub, production_described(sagemaker, "Failed"):
        stub_endpoint(stub, event["names"]["qa_endpoint"], rows, [row[-1] for row in rows])
        result = qa.qa_test(s3, runtime, event, threshold=0.8, max_rows=5000, sagemaker=sagemaker)
        stub.assert_no_pending_responses()
    assert result["production"]["note"] == f"production endpoint {PRODUCTION} is Failed and answers nothing: not compared"


def test_handler_refuses_a_regression_allowance_outside_0_to_1(qa, context, monkeypatch, aws):
    monkeypatch.setenv("MAX_REGRESSION_AGAINST_PRODUCTION", "-0.1")
    with pytest.raises(Exception, match="MAX_REGRESSION_AGAINST_PRODUCTION"):
        qa.lambda_handler({"run": {}}, context)
