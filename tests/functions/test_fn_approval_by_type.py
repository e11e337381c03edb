"""The approval email and page show what fits the problem type (issue 11):
the gate always; the confusion matrix and per-class table for classification,
ROC AUC for two classes; RMSE, MAE, R-squared and the residual summary for
regression; the dataset by name. Values from the data (feature fields in the
largest errors, label names) are neutralised and escaped like every other."""
from __future__ import annotations

import unicodedata

import pytest
from approval_support import (  # noqa: F401 (fixtures)
    API_BASE_URL,
    api,
    approval_api,
    approval_event,
    emails,
    request_approval,
    world,
)

from lambda_fixtures import TABLE, put
from localmode.approval_server import links_in


REGRESSION_REPORT = {
    "problem_type": "regression", "dataset": "diabetes", "label_name": "progression",
    "gate": {"metric": "r2", "threshold": 0.5, "threshold_source": "R2Threshold", "higher_is_better": True,
             "value": 0.612345, "passed": True},
    "rows": 67, "scored_rows": 67, "invalid_predictions": 0,
    "rmse": 48.123456, "mae": 37.5, "r2": 0.612345, "label_mean": 152.1, "label_std": 77.0,
    "residuals": {"mean": -1.25, "quantiles": {"p00": -130.5, "p05": -80.0, "p25": -30.0, "p50": 0.5, "p75": 28.0,
                                               "p95": 90.0, "p100": 155.25}},
    "largest_errors": [
        {"row": 12, "features": ["59", "2", "32.1", "N/A"], "truth": 310.0, "predicted": 154.75, "residual": 155.25},
        {"row": 3, "features": ["48", "", "21.6", "87"], "truth": 25.0, "predicted": 155.5, "residual": -130.5},
    ],
}

BINARY_REPORT = {
    "problem_type": "binary", "dataset": "breast-cancer", "label_name": "diagnosis",
    "gate": {"metric": "roc_auc", "threshold": 0.95, "threshold_source": "spec", "higher_is_better": True,
             "value": 0.962, "passed": True},
    "rows": 86, "accuracy": 0.965116, "macro_f1": 0.9612, "roc_auc": 0.962, "positive_label": "malignant",
    "binary_threshold": 0.5, "roc_auc_basis": "predicted labels ...",
    "labels": ["benign", "malignant"], "confusion_matrix": [[52, 2], [1, 31]],
    "per_class": {"benign": {"precision": 0.981132, "recall": 0.962963, "f1": 0.971963, "support": 54},
                  "malignant": {"precision": 0.939394, "recall": 0.96875, "f1": 0.953846, "support": 32}},
    "invalid_predictions": 0,
}


def send(world, request_approval, report: dict, dataset: dict | None = None) -> dict:
    put(world["s3"], world["run"]["run_prefix"] + "qa/report.json", report)
    event = approval_event(world)
    event["qa"] = {"problem_type": report["problem_type"], "metric": report["gate"]["metric"],
                   "value": report["gate"]["value"], "threshold": report["gate"]["threshold"],
                   "accuracy": report.get("accuracy"), "rows": report["rows"], "report_uri": event["qa"]["report_uri"]}
    event["dataset"] = dataset or {"name": report["dataset"], "production_endpoint": f"{report['dataset']}-prod"}
    event["names"]["production_endpoint"] = event["dataset"]["production_endpoint"]
    request_approval.request_approval(world["s3"], world["dynamodb"], world["sns"], event, TABLE,
                                      world["topic_arn"], API_BASE_URL)
    [email] = emails(world)
    reference = links_in(email["Message"])["approve"].rsplit("/", 1)[-1].split("?")[0]
    return {"email": email, "reference": reference}


def test_regression_email_and_page_show_errors_not_a_confusion_matrix(request_approval, world, api):
    sent = send(world, request_approval, REGRESSION_REPORT)
    subject, message = sent["email"]["Subject"], sent["email"]["Message"]
    assert subject.startswith("Approve diabetes run ") and subject.endswith("QA r2 0.6123")
    assert "Dataset:    diabetes (regression, label progression)" in message
    assert "Gate:       r2 0.6123 >= 0.5000 on 67 held-out rows, threshold from R2Threshold" in message
    assert "RMSE:       48.1235" in message and "MAE: 37.5000" in message and "R-squared: 0.6123" in message
    assert "p05" in message and "-80.0000" in message and "155.2500" in message
    assert "59,2,32.1,N/A" in message  # the row behind the largest error
    assert "Confusion matrix" not in message and "Accuracy" not in message
    assert "production endpoint diabetes-prod" in message

    status, page, _ = api("GET", sent["reference"])
    assert status == 200
    assert "Approve diabetes run" in page and "<dt>Dataset</dt><dd>diabetes (regression, label progression)" in page
    assert "r2 0.6123 &ge; 0.5000 on 67 held-out rows, threshold from R2Threshold" in page
    assert "<dt>RMSE</dt><dd>48.1235</dd>" in page and "<th>p95</th>" in page and "<td>48,,21.6,87</td>" in page
    assert "Confusion matrix" not in page
    assert 'checked' not in page  # nothing pre-selected, whatever the type


def test_the_largest_errors_name_each_field_by_its_column(request_approval, world, api):
    """The largest errors once showed a bare record (",2,3,west,2002,"): with the report's
    feature_names each field carries its column's name, in the email and on the page."""
    report = {**REGRESSION_REPORT, "feature_names": ["age", "sex", "bmi", "bp"]}
    sent = send(world, request_approval, report)
    assert "age=59, sex=2, bmi=32.1, bp=N/A" in sent["email"]["Message"]
    assert "test row" in sent["email"]["Message"]
    _, page, _ = api("GET", sent["reference"])
    assert "<td>age=48, sex=, bmi=21.6, bp=87</td>" in page and "<th>test row</th>" in page


def test_binary_email_and_page_show_roc_auc_and_the_confusion_matrix(request_approval, world, api):
    sent = send(world, request_approval, BINARY_REPORT)
    message = sent["email"]["Message"]
    assert "Gate:       roc_auc 0.9620 >= 0.9500 on 86 held-out rows, threshold from spec" in message
    assert "ROC AUC:    0.9620 (from the endpoint's labels at threshold 0.50 for malignant" in message
    assert "balanced accuracy" in message
    assert "Confusion matrix" in message and "malignant" in message and "RMSE" not in message
    status, page, _ = api("GET", sent["reference"])
    assert "<dt>ROC AUC</dt><dd>0.9620" in page and "<td>31</td>" in page and "<dt>Macro F1</dt>" in page


def test_a_multiclass_report_shows_the_per_class_f1_and_macro_f1(request_approval, world, api):
    report = {**BINARY_REPORT, "problem_type": "multiclass", "dataset": "penguins",
              "gate": {**BINARY_REPORT["gate"], "metric": "macro_f1", "value": 0.9612, "threshold": 0.9}}
    sent = send(world, request_approval, report)
    message = sent["email"]["Message"]
    assert "ROC AUC" not in message and "macro F1: 0.9612" in message
    assert "f1" in message.splitlines()[[i for i, line in enumerate(message.splitlines()) if "precision" in line][0]]


def _visible_line_breaks(text: str) -> list[str]:
    return [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


def test_data_in_the_largest_errors_cannot_fake_lines_or_markup(request_approval, world, api):
    """Feature fields come from the uploaded file: a newline must not start a fake
    "Approve:" line in the email, markup must not reach the page as markup."""
    evil = "https://evil.example/approvals/" + "A" * 43 + "?decision=approve"
    report = {**REGRESSION_REPORT, "largest_errors": [
        {"row": 1, "features": [f"x\nApprove: {evil}", "<script>alert(1)</script>", "\u202eevil"],
         "truth": 1.0, "predicted": 2.0, "residual": -1.0}]}
    sent = send(world, request_approval, report, dataset={"name": "dia\u2028betes", "production_endpoint": "d-prod"})
    message = sent["email"]["Message"]
    assert [line for line in message.splitlines() if line.startswith("Approve:")] == [
        f"Approve: {API_BASE_URL}/approvals/{sent['reference']}?decision=approve"]
    assert _visible_line_breaks(message) == [] and _visible_line_breaks(sent["email"]["Subject"]) == []
    status, page, _ = api("GET", sent["reference"])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "x\\x0aApprove:" in page and "\\u202eevil" in page and "dia\\u2028betes" in page
    assert _visible_line_breaks(page) == []


def test_a_record_stored_before_issue_11_still_shows_its_accuracy_gate(request_approval, world, api):
    """An approval pending across the deployment of this change: its stored summary has
    accuracy and threshold, no gate, no problem type."""
    import json

    from approval_support import QA_REPORT, record
    from pipeline_common.approvals import approval_key

    sent = send(world, request_approval, BINARY_REPORT)
    old_summary = {"run_id": world["run"]["run_id"], "input_uri": "s3://in/input/car.csv",
                   "production_endpoint": "car-evaluation", "accuracy": 0.984556, "threshold": 0.9, "rows": 259,
                   "report_uri": "s3://a/qa/report.json", **{k: QA_REPORT[k] for k in ("labels", "confusion_matrix", "per_class")}}
    assert record(world, sent["reference"])
    world["dynamodb"].update_item(TableName=TABLE, Key={"pk": {"S": approval_key(sent["reference"])}},
                                  UpdateExpression="SET summary = :s", ExpressionAttributeValues={":s": {"S": json.dumps(old_summary)}})
    status, page, _ = api("GET", sent["reference"])
    assert status == 200
    assert "accuracy 0.9846 &ge; 0.9000 on 259 held-out rows" in page and "<td>170</td>" in page
    assert "Approve run " in page  # no dataset recorded: none is made up
