"""request_approval's output one piece at a time: the facts the approver
decides on (summary, email, subject), which events it refuses, and the record
the approval page later trusts (expiry, retention, execution, nonce).

An approver who decides on a page missing the input, the start time or the
production endpoint, or a record whose expiry is off, is the failure these
guard against. The record and the email go through moto (DynamoDB, SNS to an
SQS "mailbox"); the QA report is read from moto's S3.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from approval_support import (  # noqa: F401 (fixtures)
    API_BASE_URL,
    TOKEN,
    approval_event,
    emails,
    record,
    request,
    request_approval,
    world,
)

from lambda_fixtures import TABLE
from pipeline_common.errors import InvalidEvent

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
REPORT = {"labels": ["a", "b"], "confusion_matrix": [[3, 1], [0, 4]], "accuracy": 0.875, "macro_f1": 0.8,
          "per_class": {"a": {"precision": 1.0, "recall": 0.75, "f1": 0.857, "support": 4}}}


def event(**changes) -> dict:
    base = {"run": {"run_id": "car-1", "input_uri": "s3://in/input/car.data", "started_at": "2025-01-02T03:00:00Z"},
            "names": {"production_endpoint": "car-prod", "qa_endpoint": "car-1-qa"},
            "qa": {"accuracy": 0.875, "threshold": 0.8, "rows": 8, "report_uri": "s3://a/qa.json"}}
    return {**base, **changes}


# ------------------------------------------------------------------ the summary

def test_the_summary_holds_every_fact_the_approver_sees(request_approval):
    summary = request_approval.approval_summary(event(), REPORT)
    assert summary == {
        "run_id": "car-1", "dataset": None, "input_uri": "s3://in/input/car.data",
        "started_at": "2025-01-02T03:00:00Z", "production_endpoint": "car-prod", "qa_endpoint": "car-1-qa",
        "problem_type": "multiclass", "label_name": None,
        "gate": {"metric": "accuracy", "value": 0.875, "threshold": 0.8, "higher_is_better": True,
                 "threshold_source": None},
        "rows": 8, "sample": None, "report_uri": "s3://a/qa.json", "invalid_predictions": 0,
        "accuracy": 0.875, "macro_f1": 0.8, "labels": ["a", "b"], "confusion_matrix": [[3, 1], [0, 4]],
        "per_class": REPORT["per_class"],
        # A report from before the comparison with production (or with nothing to compare) says so.
        "versus_production": {"compared": False, "note": "not compared with production"}}


def test_the_dataset_and_problem_type_come_from_the_run_first(request_approval):
    summary = request_approval.approval_summary(event(dataset={"name": "wine"}),
                                                {**REPORT, "dataset": "old", "invalid_predictions": 2})
    assert summary["dataset"] == "wine" and summary["invalid_predictions"] == 2
    assert request_approval.approval_summary(event(dataset="wine"), {**REPORT, "dataset": "car"})["dataset"] == "car"
    # The report's problem type wins over the QA result's; the QA result's over the default.
    assert request_approval.approval_summary(event(qa={**event()["qa"], "problem_type": "binary"}),
                                             {**REPORT, "problem_type": "regression"})["problem_type"] == "regression"
    binary = request_approval.approval_summary(event(qa={**event()["qa"], "problem_type": "binary"}),
                                               {**REPORT, "roc_auc": 0.9, "positive_label": "b",
                                                "binary_threshold": 0.5, "roc_auc_basis": "labels"})
    assert binary["problem_type"] == "binary"
    assert (binary["roc_auc"], binary["positive_label"], binary["binary_threshold"], binary["roc_auc_basis"]) == \
        (0.9, "b", 0.5, "labels")
    assert "roc_auc" not in request_approval.approval_summary(event(), {**REPORT, "roc_auc": 0.9})


def test_a_regression_summary_carries_errors_not_classes(request_approval):
    report = {"problem_type": "regression", "rmse": 1.0, "mae": 0.5, "r2": 0.7, "label_mean": 3.0, "label_std": 1.0,
              "residuals": {"mean": 0.1}, "largest_errors": [], "scored_rows": 9, "accuracy": 0.1, "labels": ["x"]}
    summary = request_approval.approval_summary(event(), report)
    assert {key: summary[key] for key in ("rmse", "mae", "r2", "label_mean", "label_std", "residuals",
                                          "largest_errors", "scored_rows")} == \
        {key: report[key] for key in ("rmse", "mae", "r2", "label_mean", "label_std", "residuals", "largest_errors",
                                      "scored_rows")}
    assert "accuracy" not in summary and "labels" not in summary


def test_a_qa_result_from_before_issue_11_is_an_accuracy_gate(request_approval):
    assert request_approval.gate_of({"accuracy": 0.9, "threshold": 0.8}) == {
        "metric": "accuracy", "value": 0.9, "threshold": 0.8, "higher_is_better": True, "threshold_source": None}
    assert request_approval.gate_of({"metric": "rmse", "value": 2.0, "accuracy": 0.1, "threshold": 3.0,
                                     "higher_is_better": False}) == {
        "metric": "rmse", "value": 2.0, "threshold": 3.0, "higher_is_better": False, "threshold_source": None}


# ------------------------------------------------------------------ the email's text

def test_tables_are_right_aligned_to_their_widest_cell(request_approval):
    assert request_approval.text_table(["class", "n"], [["a", "10"], ["long-name", "2"]]).split("\n") == [
        "    class   n", "        a  10", "long-name   2"]


def test_the_classification_lines(request_approval):
    summary = request_approval.approval_summary(event(), REPORT)
    lines = request_approval.classification_lines(summary)
    assert lines[0] == "Accuracy:   0.8750    macro F1: 0.8000"
    assert lines[2].split("\n") == ["class  precision  recall     f1  support", "    a      1.000   0.750  0.857        4"]
    assert lines[4] == "Confusion matrix (rows: true class, columns: predicted class)"
    assert lines[5].split("\n") == ["true \\ predicted  a  b", "               a  3  1", "               b  0  4"]
    binary = {**summary, "problem_type": "binary", "roc_auc": 0.9, "binary_threshold": 0.5, "positive_label": "b"}
    assert request_approval.classification_lines(binary)[1] == (
        "ROC AUC:    0.9000 (from the endpoint's labels at threshold 0.50 for b: one ROC point, = balanced accuracy)")


def test_the_regression_lines(request_approval):
    summary = {"rmse": 1.0, "mae": 0.5, "r2": 0.7, "label_mean": 3.0, "label_std": 1.25,
               "residuals": {"mean": 0.125, "quantiles": {"p50": 0.5, "p90": 2.0}},
               "largest_errors": [{"row": 4, "truth": 9.0, "predicted": 5.0, "residual": 4.0, "features": ["x", "y"]}]}
    lines = request_approval.regression_lines(summary)
    assert lines[0] == "RMSE:       1.0000    MAE: 0.5000    R-squared: 0.7000"
    assert lines[1] == "Label:      mean 3.0000, std 1.2500 on the held-out rows"
    assert lines[3] == "Residuals (true - predicted): mean 0.1250"
    assert lines[4].split("\n") == ["   p50     p90", "0.5000  2.0000"]
    assert lines[2] == lines[5] == ""
    assert lines[6] == "Largest errors"
    assert lines[7].split("\n") == ["test row    true  predicted  residual  features",
                                    "       4  9.0000     5.0000    4.0000       x,y"]
    assert request_approval.regression_lines({})[4] == "(none)"


def test_long_feature_lists_are_shortened_to_sixty_characters(request_approval):
    assert request_approval.shorten("x" * 60) == "x" * 60
    assert request_approval.shorten("x" * 61) == "x" * 57 + "..."
    assert request_approval.shorten("abcdef", limit=5) == "ab..."


def test_the_gate_line_says_which_way_it_was_judged(request_approval):
    assert request_approval.gate_line({"rows": 8, "gate": {"metric": "accuracy", "value": 0.875, "threshold": 0.8}}) == \
        "Gate:       accuracy 0.8750 >= 0.8000 on 8 held-out rows"
    assert request_approval.gate_line({"rows": 8, "gate": {"metric": "rmse", "value": 1.0, "threshold": 2.0,
                                                           "higher_is_better": False, "threshold_source": "spec"}}) == \
        "Gate:       rmse 1.0000 <= 2.0000 on 8 held-out rows, threshold from spec"


def test_the_email_names_run_dataset_input_production_report_and_expiry(request_approval):
    summary = request_approval.approval_summary(event(dataset={"name": "car"}), {**REPORT, "label_name": "class"})
    subject, message = request_approval.approval_email(summary, API_BASE_URL + "//", "REF", "2025-01-02T04:04:05Z")
    assert subject == "Approve car run car-1 for production? QA accuracy 0.8750"
    lines = message.split("\n")
    assert lines[:8] == [
        "Run car-1 passed QA and waits for your decision before it replaces",
        "production endpoint car-prod.",
        "",
        "Dataset:    car (multiclass, label class)",
        "Input:      s3://in/input/car.data",
        "Gate:       accuracy 0.8750 >= 0.8000 on 8 held-out rows",
        "Production: not compared with production",
        "QA report:  s3://a/qa.json",
    ]
    assert f"Approve: {API_BASE_URL}/approvals/REF?decision=approve" in lines
    assert f"Reject:  {API_BASE_URL}/approvals/REF?decision=reject" in lines
    assert "The links expire at 2025-01-02T04:04:05Z; without a decision the run fails then and" in lines
    # Only slashes are trimmed from the base URL: a stage may end in any character.
    _, staged = request_approval.approval_email(summary, "https://api.example/stageX/", "REF", "t")
    assert "Approve: https://api.example/stageX/approvals/REF?decision=approve" in staged.split("\n")
    no_dataset, _ = request_approval.approval_email(request_approval.approval_summary(event(), REPORT), API_BASE_URL,
                                                    "REF", "t")
    assert no_dataset == "Approve run car-1 for production? QA accuracy 0.8750"


def test_the_subject_fits_sns_and_stays_on_one_line(request_approval):
    summary = request_approval.approval_summary(event(run={"run_id": "r\n" + "x" * 200}), REPORT)
    subject, message = request_approval.approval_email(summary, API_BASE_URL, "REF", "t")
    assert len(subject) == 99 and subject.startswith("Approve run r\\x0axxx")
    assert message.startswith("Run r\\x0axxx")


# ------------------------------------------------------------------ which events

@pytest.mark.parametrize("bad, message", [
    ([], "the event must be a JSON object"),
    ({"task_token": ""}, "the event has no task_token (invoke this function with .waitForTaskToken)"),
    ({"task_token": 5}, "the event has no task_token (invoke this function with .waitForTaskToken)"),
    ({"run": "x"}, "the event has no run object"),
    ({"names": None}, "the event has no names object"),
    ({"qa": []}, "the event has no qa object"),
    ({"approval_timeout_seconds": 0}, "approval_timeout_seconds must be a positive integer, got 0"),
    ({"approval_timeout_seconds": True}, "approval_timeout_seconds must be a positive integer, got True"),
    ({"approval_timeout_seconds": "3600"}, "approval_timeout_seconds must be a positive integer, got '3600'"),
    ({"approval_timeout_seconds": 1.5}, "approval_timeout_seconds must be a positive integer, got 1.5"),
    ({"qa": {"report_uri": None}}, "qa.report_uri is missing"),
])
def test_malformed_events_are_refused_with_the_reason(request_approval, bad, message):
    full = {"task_token": TOKEN, **event(), "approval_timeout_seconds": 60}
    candidate = bad if isinstance(bad, list) else {**full, **bad}
    with pytest.raises(InvalidEvent) as refused:
        request_approval._validated(candidate)
    # The whole message: it is what the failed run shows in the console.
    assert str(refused.value) == message
    assert request_approval._validated({**full, "approval_timeout_seconds": 1})["approval_timeout_seconds"] == 1


# ------------------------------------------------------------------ the record

def test_the_record_expires_with_the_window_and_is_kept_thirty_days_more(request_approval, world):
    sent = request(world, request_approval, now=NOW, timeout=7200)
    item = record(world, sent["reference"])
    expires = NOW + timedelta(seconds=7200)
    assert int(item["expires_at"]["N"]) == int(expires.timestamp())
    assert int(item["ttl"]["N"]) == int((expires + timedelta(days=30)).timestamp())
    assert item["created_at"]["S"] == "2025-01-02T03:04:05Z"
    assert item["run_id"]["S"] == world["run"]["run_id"]
    assert item["execution_arn"]["S"] == world["run"]["execution_arn"]
    assert len(item["nonce"]["S"]) >= 32 and item["nonce"]["S"] not in sent["email"]["Message"]
    summary = json.loads(item["summary"]["S"])
    assert summary["input_uri"] == world["run"]["input_uri"] and summary["started_at"] == world["run"]["started_at"]
    assert "The links expire at 2025-01-02T05:04:05Z;" in sent["email"]["Message"]


@pytest.mark.parametrize("arn", [None, "", 7])
def test_a_run_without_an_execution_arn_stores_none(request_approval, world, arn):
    run = {**world["run"], "execution_arn": arn}
    sent = request(world, request_approval, now=NOW, run=run)
    assert "execution_arn" not in record(world, sent["reference"])


def test_the_answer_states_the_expiry(request_approval, world):
    result = request_approval.request_approval(world["s3"], world["dynamodb"], world["sns"], approval_event(world, 60),
                                                TABLE, world["topic_arn"], API_BASE_URL, now=NOW)
    assert result == {"approval_requested": True, "expires_at": "2025-01-02T03:05:05Z"}
    [email] = emails(world)
    assert email["Subject"].startswith("Approve run ")


def test_the_record_is_never_written_over(request_approval, world, monkeypatch):
    """A reference that already exists (it never does, by its 256 bits) fails instead of replacing a record."""
    monkeypatch.setattr(request_approval, "new_reference", lambda: "R" * 43)
    request_approval.request_approval(world["s3"], world["dynamodb"], world["sns"], approval_event(world), TABLE,
                                      world["topic_arn"], API_BASE_URL, now=NOW)
    emails(world)
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        request_approval.request_approval(world["s3"], world["dynamodb"], world["sns"], approval_event(world), TABLE,
                                          world["topic_arn"], API_BASE_URL, now=NOW)
