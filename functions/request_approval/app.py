"""Asks a person to approve the run (invoked with .waitForTaskToken).

The task token stays in DynamoDB; the email carries links with an unguessable
reference whose hash is the record's key. Nothing here decides anything:
the approval API does, from a form the person submits.
"""
from __future__ import annotations

import json
from datetime import timedelta

import boto3
from aws_lambda_powertools import Logger, Tracer

from pipeline_common.approvals import approval_key, format_metric, new_nonce, new_reference
from pipeline_common.config import env_str
from pipeline_common.errors import InvalidEvent
from pipeline_common.logs import quiet_library_loggers
from pipeline_common.s3 import get_json
from pipeline_common.summary import (
    answer,
    approval_sections,
    classification_sections,
    field_text,
    gate_field,
    production_field,
    regression_sections,
    rollback_sections,
    shorten,
    text_lines,
    text_of,
    text_table,
    versus_sections,
)
from pipeline_common.text import printable, printable_tree
from pipeline_common.timeutil import iso, utc_now

# The PutItem body holds the task token and the nonce, the SNS body the link reference.
quiet_library_loggers()
logger = Logger()
tracer = Tracer()

# Decided records stay a while for audit; expiry itself is enforced in code.
_RECORD_RETENTION = timedelta(days=30)
# SNS: "Subjects must be UTF-8 text with no line breaks or control characters,
# and less than 100 characters long" (botocore's model of sns:Publish).
_SUBJECT_LIMIT = 99


def approval_summary(event: dict, report: dict) -> dict:
    """What the person sees (email and page): run, dataset, endpoints, the
    gate and the QA results that fit the problem type."""
    run, names, qa = event["run"], event["names"], event["qa"]
    dataset = event.get("dataset") if isinstance(event.get("dataset"), dict) else {}
    kind = report.get("problem_type") or qa.get("problem_type") or "multiclass"
    summary = {
        "run_id": run.get("run_id"),
        "dataset": dataset.get("name") or report.get("dataset"),
        "input_uri": run.get("input_uri"),
        "started_at": run.get("started_at"),
        "production_endpoint": names.get("production_endpoint"),
        "qa_endpoint": names.get("qa_endpoint"),
        "problem_type": kind,
        "label_name": report.get("label_name"),
        "gate": report.get("gate") or gate_of(qa),
        "rows": qa.get("rows"),
        "sample": report.get("sample") or qa.get("sample"),
        "report_uri": qa.get("report_uri"),
        "invalid_predictions": report.get("invalid_predictions", 0),
        "versus_production": versus_production(report),
    }
    if kind == "regression":
        keys = ("rmse", "mae", "r2", "label_mean", "label_std", "residuals", "largest_errors", "scored_rows",
                "feature_names", "residual_points")
    else:
        keys = ("accuracy", "macro_f1", "labels", "confusion_matrix", "per_class")
        if kind == "binary":
            keys += ("roc_auc", "roc_auc_basis", "positive_label", "binary_threshold")
    summary.update({key: report.get(key) for key in keys})
    return summary


def gate_of(qa: dict) -> dict:
    """The gate as a QA result from before issue 11 states it (accuracy only)."""
    return {"metric": qa.get("metric") or "accuracy", "value": qa.get("value", qa.get("accuracy")),
            "threshold": qa.get("threshold"), "higher_is_better": qa.get("higher_is_better", True),
            "threshold_source": None}


def versus_production(report: dict) -> dict:
    """Champion versus challenger as the approver reads it, from qa_test's `production`
    and `versus_production`: the verdict in words, the figures of both models side by side
    and a few of the rows they answer differently. The page renders the same record."""
    production, versus = report.get("production") or {}, report.get("versus_production")
    if not versus:
        return {"compared": False, "note": production.get("note") or "not compared with production"}
    return {
        "compared": True,
        "note": production.get("note"),
        "verdict": verdict(versus),
        "rows": report.get("rows"),
        "rows_answered_differently": versus.get("rows_answered_differently"),
        "figures": side_by_side(report, production),
        "examples": versus.get("examples") or [],
    }


def verdict(versus: dict) -> str:
    """E.g. "accuracy 0.9769 against production's 0.9731: better by 0.0038 (worse by more than 0.0100 fails QA)"."""
    regression, allowed = versus.get("regression"), versus.get("max_regression") or 0.0
    # Bounded metrics are compared in absolute terms, RMSE and MAE relative to production's (qa_test).
    amount = (lambda value: f"{value:.4f}") if versus.get("higher_is_better", True) else (lambda value: f"{value:.1%}")
    if regression is None:
        change = "not comparable (a metric is undefined)"
    elif regression > 0:
        change = f"worse by {amount(regression)}"
    elif regression < 0:
        change = f"better by {amount(-regression)}"
    else:
        change = "equal"
    return (f"{versus.get('metric')} {format_metric(versus.get('new_model'))} against production's "
            f"{format_metric(versus.get('production'))}: {change} (worse by more than {amount(allowed)} fails QA)")


def side_by_side(report: dict, production: dict) -> list[list]:
    """[figure, new model, production] rows: the headline metrics, then per class (F1 and recall) or the residuals."""
    if report.get("problem_type") == "regression":
        rows = [[name, report.get(key), production.get(key)] for name, key in
                (("RMSE", "rmse"), ("MAE", "mae"), ("R-squared", "r2"))]
        new, old = report.get("residuals") or {}, production.get("residuals") or {}
        rows.append(["residual mean", new.get("mean"), old.get("mean")])
        old_quantiles = old.get("quantiles") or {}
        rows += [[f"residual {name}", value, old_quantiles.get(name)]
                 for name, value in (new.get("quantiles") or {}).items()]
        return rows
    rows = [["accuracy", report.get("accuracy"), production.get("accuracy")],
            ["macro F1", report.get("macro_f1"), production.get("macro_f1")]]
    if report.get("problem_type") == "binary":
        rows.append(["ROC AUC", report.get("roc_auc"), production.get("roc_auc")])
    old_classes = production.get("per_class") or {}
    for label, stats in (report.get("per_class") or {}).items():
        old = old_classes.get(label) or {}
        rows.append([f"{label} recall", stats.get("recall"), old.get("recall")])
        rows.append([f"{label} F1", stats.get("f1"), old.get("f1")])
    return rows


def versus_lines(summary: dict) -> list[str]:
    """The email's champion-versus-challenger section (empty when production was not compared)."""
    lines = text_lines(versus_sections(summary))
    return ["", *lines] if lines else []


def answer_text(value) -> str:
    """A label as it is; a regression answer with the metrics' four decimals."""
    return text_of(answer(value))


def production_line(summary: dict) -> str:
    return field_text(production_field(summary))


def classification_lines(summary: dict) -> list[str]:
    return text_lines(classification_sections(summary))


def regression_lines(summary: dict) -> list[str]:
    return text_lines(regression_sections(summary))


def gate_line(summary: dict) -> str:
    return field_text(gate_field(summary))


def approval_link(base_url: str, reference: str) -> str:
    return f"{base_url.rstrip('/')}/approvals/{reference}"


def approval_email(summary: dict, base_url: str, reference: str, expires_at: str) -> tuple[str, str]:
    # Every value from the run (the S3 key above all) on one visible line: a
    # newline in it would otherwise start a line of its own, e.g. a fake link.
    summary = printable_tree(summary)
    gate = summary.get("gate") or {}
    dataset = f"{summary['dataset']} " if summary.get("dataset") else ""
    subject = (f"Approve {dataset}run {summary['run_id']} for production? "
               f"QA {gate.get('metric')} {format_metric(gate.get('value'))}")
    link = approval_link(base_url, reference)
    message = "\n".join(
        [
            *text_lines(approval_sections(summary)),
            "",
            "Each link opens a confirmation page where you choose; nothing is decided until you submit it.",
            f"Approve: {link}?decision=approve",
            f"Reject:  {link}?decision=reject",
            "",
            f"The links expire at {expires_at}; without a decision the run fails then and",
            "production stays as it is. Do not forward this email: anyone with a link can decide.",
        ]
    )
    return printable(subject)[:_SUBJECT_LIMIT], message


def rollback_email(summary: dict, base_url: str, reference: str, expires_at: str) -> tuple[str, str]:
    """The confirmation of a rollback: the version it deploys, and what production serves now."""
    summary = printable_tree(summary)
    target = summary["target"]
    subject = f"Roll {summary['production_endpoint']} back to version {target['version']}?"
    link = approval_link(base_url, reference)
    message = "\n".join(
        [
            *text_lines(rollback_sections(summary)),
            "Each link opens a confirmation page where you choose; nothing is decided until you submit it.",
            f"Approve: {link}?decision=approve",
            f"Reject:  {link}?decision=reject",
            "",
            f"The links expire at {expires_at}; without a decision nothing is rolled back.",
            "Do not forward this email: anyone with a link can decide.",
        ]
    )
    return printable(subject)[:_SUBJECT_LIMIT], message


def _validated(event) -> dict:
    if not isinstance(event, dict):
        raise InvalidEvent("the event must be a JSON object")
    token = event.get("task_token")
    if not isinstance(token, str) or not token:
        raise InvalidEvent("the event has no task_token (invoke this function with .waitForTaskToken)")
    timeout = event.get("approval_timeout_seconds")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
        raise InvalidEvent(f"approval_timeout_seconds must be a positive integer, got {timeout!r}")
    if event.get("kind") == "rollback":
        summary = event.get("summary")
        if not isinstance(event.get("run"), dict) or not isinstance(summary, dict) or summary.get("kind") != "rollback" \
                or not isinstance(summary.get("target"), dict) or not isinstance(summary.get("serving"), dict):
            raise InvalidEvent("a rollback confirmation needs run and the summary prepare_rollback wrote")
        return event
    for field in ("run", "names", "qa"):
        if not isinstance(event.get(field), dict):
            raise InvalidEvent(f"the event has no {field} object")
    if not isinstance(event["qa"].get("report_uri"), str):
        raise InvalidEvent("qa.report_uri is missing")
    return event


def request_approval(s3, dynamodb, sns, event: dict, table: str, topic_arn: str, api_base_url: str, now=None) -> dict:
    event = _validated(event)
    now = now or utc_now()
    expires = now + timedelta(seconds=event["approval_timeout_seconds"])
    rollback = event.get("kind") == "rollback"
    summary = event["summary"] if rollback else approval_summary(event, get_json(s3, event["qa"]["report_uri"]))
    reference = new_reference()
    item = {
        "pk": {"S": approval_key(reference)},
        "status": {"S": "pending"},
        "task_token": {"S": event["task_token"]},
        "nonce": {"S": new_nonce()},
        "summary": {"S": json.dumps(summary)},
        "run_id": {"S": str(summary["run_id"])},
        "created_at": {"S": iso(now)},
        "expires_at": {"N": str(int(expires.timestamp()))},
        "ttl": {"N": str(int((expires + _RECORD_RETENTION).timestamp()))},
    }
    execution_arn = event["run"].get("execution_arn")
    if isinstance(execution_arn, str) and execution_arn:
        # Lets the approval page ask Step Functions what became of a decision
        # whose answer was lost (GetExecutionHistory).
        item["execution_arn"] = {"S": execution_arn}
    dynamodb.put_item(
        TableName=table,
        Item=item,
        # A fresh 256-bit reference never collides; the condition makes sure.
        ConditionExpression="attribute_not_exists(pk)",
    )
    subject, message = (rollback_email if rollback else approval_email)(summary, api_base_url, reference, iso(expires))
    sns.publish(TopicArn=topic_arn, Subject=subject, Message=message)
    logger.info("approval requested", extra={"run_id": summary["run_id"], "expires_at": iso(expires)})
    return {"approval_requested": True, "expires_at": iso(expires)}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    quiet_library_loggers()
    return request_approval(
        boto3.client("s3"),
        boto3.client("dynamodb"),
        boto3.client("sns"),
        event,
        table=env_str("STATE_TABLE"),
        topic_arn=env_str("TOPIC_ARN"),
        api_base_url=env_str("API_BASE_URL"),
    )
