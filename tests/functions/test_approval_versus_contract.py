"""request_approval's champion-versus-challenger summary and its rollback
confirmation, one function at a time and word for word (issue 12's additions,
pinned for issue 13's mutation run).

The verdict is the sentence an approver decides on: "better"/"worse" the
wrong way round, a relative change shown as an absolute one, or the allowance
misstated would mislead them. The rollback email names the version it deploys
and what serves now; a rollback request missing either is refused before any
record or email exists.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from approval_support import (  # noqa: F401 (fixtures)
    API_BASE_URL,
    TOKEN,
    emails,
    record,
    request_approval,
    world,
)

from lambda_fixtures import TABLE
from localmode.approval_server import links_in
from pipeline_common.errors import InvalidEvent

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


# ------------------------------------------------------------------ the verdict

def versus(**changes) -> dict:
    """qa_test's `versus_production` (see qa_test.comparison) for an accuracy gate."""
    return {"metric": "accuracy", "higher_is_better": True, "new_model": 0.9769, "production": 0.9731,
            "regression": -0.0038, "max_regression": 0.01, **changes}


@pytest.mark.parametrize("changes, sentence", [
    ({}, "accuracy 0.9769 against production's 0.9731: better by 0.0038 (worse by more than 0.0100 fails QA)"),
    ({"new_model": 0.95, "production": 1.0, "regression": 0.05, "max_regression": 0.05},
     "accuracy 0.9500 against production's 1.0000: worse by 0.0500 (worse by more than 0.0500 fails QA)"),
    # A regression below a unit is still worse (not rounded into "equal" by a coarser test).
    ({"new_model": 0.9, "production": 0.9004, "regression": 0.0004},
     "accuracy 0.9000 against production's 0.9004: worse by 0.0004 (worse by more than 0.0100 fails QA)"),
    ({"new_model": 0.9, "production": 0.9, "regression": 0.0},
     "accuracy 0.9000 against production's 0.9000: equal (worse by more than 0.0100 fails QA)"),
    ({"new_model": 0.9, "production": 0.9, "regression": 0},
     "accuracy 0.9000 against production's 0.9000: equal (worse by more than 0.0100 fails QA)"),
    ({"metric": "macro_f1", "new_model": None, "production": 0.9, "regression": None},
     "macro_f1 n/a against production's 0.9000: not comparable (a metric is undefined) (worse by more than 0.0100 "
     "fails QA)"),
    # No allowance recorded (or 0): any regression fails, and the sentence says 0.
    ({"max_regression": None}, "accuracy 0.9769 against production's 0.9731: better by 0.0038 (worse by more than "
                               "0.0000 fails QA)"),
    ({"max_regression": 0.0}, "accuracy 0.9769 against production's 0.9731: better by 0.0038 (worse by more than "
                              "0.0000 fails QA)"),
    # Which way is better is the gate's: without it, higher is better, in absolute terms.
    ({"higher_is_better": None, "regression": 0.25, "max_regression": 0.5},
     "accuracy 0.9769 against production's 0.9731: worse by 0.2500 (worse by more than 0.5000 fails QA)"),
    # RMSE and MAE: relative to production's, as a percentage.
    ({"metric": "rmse", "higher_is_better": False, "new_model": 7.0711, "production": 11.1803,
      "regression": -0.367544, "max_regression": 0.1},
     "rmse 7.0711 against production's 11.1803: better by 36.8% (worse by more than 10.0% fails QA)"),
    ({"metric": "mae", "higher_is_better": False, "new_model": 5.25, "production": 5.0, "regression": 0.05,
      "max_regression": 0.1},
     "mae 5.2500 against production's 5.0000: worse by 5.0% (worse by more than 10.0% fails QA)"),
    ({"metric": "mae", "higher_is_better": False, "new_model": 5.0, "production": 5.0, "regression": 0.0,
      "max_regression": None},
     "mae 5.0000 against production's 5.0000: equal (worse by more than 0.0% fails QA)"),
])
def test_the_verdict_says_which_way_by_how_much_and_the_allowance(request_approval, changes, sentence):
    given = versus(**changes)
    if changes.get("higher_is_better", True) is None:
        del given["higher_is_better"]
    assert request_approval.verdict(given) == sentence


# ------------------------------------------------------------------ the figures side by side

CLASSES = {"problem_type": "multiclass", "accuracy": 0.9, "macro_f1": 0.85, "roc_auc": 0.5,
           "per_class": {"acc": {"recall": 0.5, "f1": 0.6, "precision": 0.7}, "good": {"recall": 1.0, "f1": 0.9}}}
CHAMPION = {"accuracy": 0.8, "macro_f1": 0.7, "roc_auc": 0.4, "per_class": {"acc": {"recall": 0.25, "f1": 0.4}}}


def test_multiclass_rows_are_headline_metrics_then_recall_and_f1_per_class(request_approval):
    # A class production never predicted (or never saw) has no figure there; no ROC AUC outside binary.
    assert request_approval.side_by_side(CLASSES, CHAMPION) == [
        ["accuracy", 0.9, 0.8], ["macro F1", 0.85, 0.7],
        ["acc recall", 0.5, 0.25], ["acc F1", 0.6, 0.4], ["good recall", 1.0, None], ["good F1", 0.9, None]]
    without_type = {key: value for key, value in CLASSES.items() if key != "problem_type"}
    assert request_approval.side_by_side(without_type, {}) == [
        ["accuracy", 0.9, None], ["macro F1", 0.85, None],
        ["acc recall", 0.5, None], ["acc F1", 0.6, None], ["good recall", 1.0, None], ["good F1", 0.9, None]]
    assert request_approval.side_by_side({"accuracy": 0.9}, {"accuracy": 0.8, "per_class": {"a": {"f1": 1.0}}}) == [
        ["accuracy", 0.9, 0.8], ["macro F1", None, None]]


def test_binary_rows_add_the_roc_auc(request_approval):
    assert request_approval.side_by_side({**CLASSES, "problem_type": "binary", "roc_auc": 0.91},
                                         {**CHAMPION, "roc_auc": 0.88}) == [
        ["accuracy", 0.9, 0.8], ["macro F1", 0.85, 0.7], ["ROC AUC", 0.91, 0.88],
        ["acc recall", 0.5, 0.25], ["acc F1", 0.6, 0.4], ["good recall", 1.0, None], ["good F1", 0.9, None]]


def test_regression_rows_are_errors_then_residual_mean_and_quantiles(request_approval):
    new = {"problem_type": "regression", "rmse": 7.07, "mae": 5.0, "r2": 0.9, "accuracy": 0.1,
           "residuals": {"mean": 0.0, "quantiles": {"p05": -8.0, "p50": 0.0, "p95": 9.5}}}
    # Production's report from before a quantile was added lacks it: shown as missing, not dropped.
    old = {"rmse": 11.18, "mae": 7.5, "r2": 0.8, "residuals": {"mean": 2.5, "quantiles": {"p05": -20.0, "p50": 1.0}}}
    assert request_approval.side_by_side(new, old) == [
        ["RMSE", 7.07, 11.18], ["MAE", 5.0, 7.5], ["R-squared", 0.9, 0.8], ["residual mean", 0.0, 2.5],
        ["residual p05", -8.0, -20.0], ["residual p50", 0.0, 1.0], ["residual p95", 9.5, None]]
    assert request_approval.side_by_side(new, {"rmse": 11.18, "residuals": {"mean": 2.5}}) == [
        ["RMSE", 7.07, 11.18], ["MAE", 5.0, None], ["R-squared", 0.9, None], ["residual mean", 0.0, 2.5],
        ["residual p05", -8.0, None], ["residual p50", 0.0, None], ["residual p95", 9.5, None]]
    assert request_approval.side_by_side({"problem_type": "regression", "rmse": 7.07}, {"residuals": None}) == [
        ["RMSE", 7.07, None], ["MAE", None, None], ["R-squared", None, None], ["residual mean", None, None]]


# ------------------------------------------------------------------ the summary's comparison record

EXAMPLES = [{"features": ["high", "med"], "truth": "acc", "new_model": "acc", "production": "unacc"}]


def test_a_compared_report_becomes_verdict_figures_and_examples(request_approval):
    report = {**CLASSES, "rows": 20,
              "production": {**CHAMPION, "endpoint_name": "car-prod", "compared": True, "note": "answered"},
              "versus_production": versus(rows_answered_differently=3, examples=EXAMPLES)}
    assert request_approval.versus_production(report) == {
        "compared": True, "note": "answered",
        "verdict": "accuracy 0.9769 against production's 0.9731: better by 0.0038 (worse by more than 0.0100 fails QA)",
        "rows": 20, "rows_answered_differently": 3,
        "figures": [["accuracy", 0.9, 0.8], ["macro F1", 0.85, 0.7], ["acc recall", 0.5, 0.25], ["acc F1", 0.6, 0.4],
                    ["good recall", 1.0, None], ["good F1", 0.9, None]],
        "examples": EXAMPLES}
    # Identical answers: no examples recorded, an empty list shown.
    same = request_approval.versus_production({**report, "versus_production": versus(rows_answered_differently=0,
                                                                                     examples=None)})
    assert same["examples"] == [] and same["rows_answered_differently"] == 0
    # Without qa_test's production block the figures have nothing on production's side.
    alone = request_approval.versus_production({"accuracy": 0.9, "rows": 4, "versus_production": versus()})
    assert alone["note"] is None and alone["figures"] == [["accuracy", 0.9, None], ["macro F1", None, None]]


@pytest.mark.parametrize("report, note", [
    ({}, "not compared with production"),
    ({"production": None, "versus_production": None}, "not compared with production"),
    ({"production": {"note": ""}, "versus_production": {}}, "not compared with production"),
    ({"production": {"compared": False, "note": "no production endpoint car-prod yet: this is the dataset's first "
                                                "model"}, "versus_production": None},
     "no production endpoint car-prod yet: this is the dataset's first model"),
])
def test_an_uncompared_report_keeps_only_the_reason(request_approval, report, note):
    assert request_approval.versus_production(report) == {"compared": False, "note": note}


# ------------------------------------------------------------------ the email's lines

COMPARED = {"compared": True, "note": "answered", "verdict": "V", "rows": 20, "rows_answered_differently": 2,
            "figures": [["accuracy", 0.9, 0.8], ["macro F1", 0.85, None]],
            "examples": [{"truth": "acc", "new_model": "unacc", "production": "acc", "features": ["high", "med"]},
                         {"truth": 3.5, "new_model": 2.25, "production": 4, "features": ["x" * 61]},
                         {"truth": "good", "new_model": "acc", "production": None}]}
FIGURE_TABLE = "\n".join(["  figure  new model  production",
                          "accuracy     0.9000      0.8000",
                          "macro F1     0.8500         n/a"])


def test_the_email_section_lists_figures_and_the_differing_rows(request_approval):
    assert request_approval.versus_lines({"versus_production": COMPARED}) == [
        "", "Versus production, on the same held-out rows", FIGURE_TABLE, "",
        "Rows answered differently: 2 of 20",
        # Features shortened to 60 characters; that column is right-aligned to them.
        "\n".join([
            "  true  new model  production  " + "features".rjust(60),
            "   acc      unacc         acc  " + "high,med".rjust(60),
            "3.5000     2.2500           4  " + "x" * 57 + "...",
            "  good        acc        None  " + " " * 60]),
    ]


def test_without_differing_rows_or_comparison_the_section_shrinks(request_approval):
    assert request_approval.versus_lines({"versus_production": {**COMPARED, "examples": None}}) == [
        "", "Versus production, on the same held-out rows", FIGURE_TABLE, "", "Rows answered differently: 2 of 20"]
    assert request_approval.versus_lines({"versus_production": {"compared": False, "note": "n"}}) == []
    assert request_approval.versus_lines({"versus_production": None}) == []
    assert request_approval.versus_lines({}) == []


@pytest.mark.parametrize("value, text", [(0.5, "0.5000"), (2.0, "2.0000"), (3, "3"), ("acc", "acc"),
                                         ("2.5", "2.5"), (None, "None"), (True, "True")])
def test_an_answer_is_a_label_as_it_is_or_a_float_with_four_decimals(request_approval, value, text):
    assert request_approval.answer_text(value) == text


def test_the_production_line_is_the_verdict_or_the_reason(request_approval):
    assert request_approval.production_line({"versus_production": COMPARED}) == "Production: V"
    assert request_approval.production_line({"versus_production": {"compared": False, "note": "first model"}}) == \
        "Production: first model"
    assert request_approval.production_line({"versus_production": {**COMPARED, "compared": False}}) == \
        "Production: answered"
    assert request_approval.production_line({}) == "Production: None"


# ------------------------------------------------------------------ the rollback email

TARGET = {"version": 1, "status": "Approved", "approval_description": "Approved on the approval page",
          "run_id": "car-first", "input_uri": "s3://in/input/car.data", "input_version_id": "v-42",
          "glue_job_run_id": "jr_1", "training_job": "car-first-train",
          "qa": {"accuracy": 0.97231, "rows": 259, "metric": "accuracy"}, "qa_report_uri": "s3://a/qa.json"}
ROLLBACK = {"kind": "rollback", "run_id": "rollback-v1-1700000000", "production_endpoint": "car-evaluation",
            "model_package_group": "car-evaluation-models", "target": TARGET,
            "serving": {"version": 2, "run_id": "car-second", "qa": {"accuracy": 0.9612, "rows": 259}}}


def rollback_message(now: str, target_qa: str = "accuracy 0.9723, rows 259, metric accuracy",
                     link: str = f"{API_BASE_URL}/approvals/REF") -> list[str]:
    return [
        "Someone asked to roll production endpoint car-evaluation back to version 1 of model group "
        "car-evaluation-models (rollback run rollback-v1-1700000000).",
        "",
        f"Now serving: {now}",
        "Roll back to: version 1, Approved: Approved on the approval page",
        f"  QA:         {target_qa}",
        "  Run:        car-first on s3://in/input/car.data (version v-42)",
        "  Glue run:   jr_1; training job car-first-train",
        "  QA report:  s3://a/qa.json",
        "",
        "The rollback goes through the same blue/green deployment and alarms as any deployment.",
        "Each link opens a confirmation page where you choose; nothing is decided until you submit it.",
        f"Approve: {link}?decision=approve",
        f"Reject:  {link}?decision=reject",
        "",
        "The links expire at 2025-01-02T04:04:05Z; without a decision nothing is rolled back.",
        "Do not forward this email: anyone with a link can decide.",
    ]


def test_the_rollback_email_word_for_word(request_approval):
    subject, message = request_approval.rollback_email(ROLLBACK, API_BASE_URL + "/", "REF", "2025-01-02T04:04:05Z")
    assert subject == "Roll car-evaluation back to version 1?"
    # QA floats with four decimals; counts and texts as they are (259, not 259.0000).
    assert message.split("\n") == rollback_message("version 2 (run car-second, QA accuracy 0.9612, rows 259)")


def test_a_rollback_from_a_model_not_in_the_registry_names_its_endpoint_config(request_approval):
    summary = {**ROLLBACK, "serving": {"version": None, "endpoint_config": "car-evaluation-config-7"}}
    _, message = request_approval.rollback_email(summary, API_BASE_URL, "REF", "2025-01-02T04:04:05Z")
    assert message.split("\n") == rollback_message(
        "a model not in the registry (endpoint config car-evaluation-config-7)")


def test_versions_without_qa_figures_say_so(request_approval):
    summary = {**ROLLBACK, "target": {**TARGET, "qa": {}}, "serving": {"version": 2, "run_id": "car-second"}}
    _, message = request_approval.rollback_email(summary, API_BASE_URL, "REF", "2025-01-02T04:04:05Z")
    assert message.split("\n") == rollback_message("version 2 (run car-second, QA none recorded)",
                                                   target_qa="none recorded")


def test_a_line_break_in_a_registry_value_cannot_start_a_line(request_approval):
    summary = {**ROLLBACK, "production_endpoint": "car\nApprove: https://evil",
               "target": {**TARGET, "input_uri": "s3://in/x\nReject:  https://evil"}}
    subject, message = request_approval.rollback_email(summary, API_BASE_URL, "REF", "t")
    assert subject == "Roll car\\x0aApprove: https://evil back to version 1?"
    assert "  Run:        car-first on s3://in/x\\x0aReject:  https://evil (version v-42)" in message.split("\n")
    assert set(links_in(message)) == {"approve", "reject"}
    # Only the slashes after the stage are dropped (a stage may end in any letter).
    _, message = request_approval.rollback_email(ROLLBACK, "https://h/DevX//", "REF", "t")
    assert "Approve: https://h/DevX/approvals/REF?decision=approve" in message.split("\n")
    long_subject, _ = request_approval.rollback_email({**ROLLBACK, "production_endpoint": "e" * 120}, API_BASE_URL,
                                                      "REF", "t")
    assert long_subject == "Roll " + "e" * 94


# ------------------------------------------------------------------ the rollback request

def rollback_event(**changes) -> dict:
    return {"task_token": TOKEN, "approval_timeout_seconds": 3600, "kind": "rollback",
            "run": {"run_id": ROLLBACK["run_id"]}, "summary": ROLLBACK, **changes}


REFUSAL = "^a rollback confirmation needs run and the summary prepare_rollback wrote$"


@pytest.mark.parametrize("changes", [
    {"run": None}, {"run": "rollback-v1"}, {"summary": None}, {"summary": [ROLLBACK]},
    {"summary": {**ROLLBACK, "kind": None}}, {"summary": {**ROLLBACK, "kind": "approval"}},
    {"summary": {**ROLLBACK, "target": None}}, {"summary": {**ROLLBACK, "target": 1}},
    {"summary": {**ROLLBACK, "serving": None}}, {"summary": {**ROLLBACK, "serving": ["v2"]}},
])
def test_a_rollback_without_prepare_rollbacks_summary_is_refused(request_approval, changes):
    event = rollback_event(**changes)
    if changes.get("run", "") is None:
        del event["run"]
    with pytest.raises(InvalidEvent, match=REFUSAL):
        request_approval._validated(event)


def test_a_rollback_needs_no_qa_but_still_a_token_and_a_window(request_approval):
    event = rollback_event()
    assert request_approval._validated(event) is event
    with pytest.raises(InvalidEvent, match="^" + re.escape("the event has no task_token (invoke this function with "
                                                           ".waitForTaskToken)") + "$"):
        request_approval._validated(rollback_event(task_token=""))
    with pytest.raises(InvalidEvent, match="^approval_timeout_seconds must be a positive integer, got 0$"):
        request_approval._validated(rollback_event(approval_timeout_seconds=0))
    # Any other kind is a run's approval, which needs its QA result.
    with pytest.raises(InvalidEvent, match="^the event has no names object$"):
        request_approval._validated(rollback_event(kind="Rollback", names=None, qa={}))


def test_a_rollback_request_stores_its_summary_and_mails_the_rollback_email(request_approval, world):
    result = request_approval.request_approval(world["s3"], world["dynamodb"], world["sns"], rollback_event(),
                                               TABLE, world["topic_arn"], API_BASE_URL, now=NOW)
    assert result == {"approval_requested": True, "expires_at": "2025-01-02T04:04:05Z"}
    [email] = emails(world)
    reference = links_in(email["Message"])["approve"].split("/approvals/", 1)[1].split("?", 1)[0]
    assert email["Subject"] == "Roll car-evaluation back to version 1?"
    assert email["Message"].split("\n") == rollback_message(
        "version 2 (run car-second, QA accuracy 0.9612, rows 259)", link=f"{API_BASE_URL}/approvals/{reference}")
    item = record(world, reference)
    # The page renders the summary prepare_rollback wrote, as it was written (no QA report read).
    assert json.loads(item["summary"]["S"]) == ROLLBACK
    assert item["run_id"]["S"] == "rollback-v1-1700000000" and item["status"]["S"] == "pending"
    assert item["task_token"]["S"] == TOKEN and "execution_arn" not in item
