"""Tests the QA endpoint the way clients will use it: every held-out row as one
raw CSV record (feature fields only), `text/csv`, and compares the answers
with the true labels. Writes qa/report.json; below the threshold the run
fails with QualityBelowThreshold."""
from __future__ import annotations

import codecs
import csv
import io

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from pipeline_common.aws_errors import named_aws_errors
from pipeline_common.config import env_float, env_int
from pipeline_common.errors import InvalidEvent
from pipeline_common.manifest import feature_names, load_manifest, manifest_uri_for
from pipeline_common.s3 import list_data_objects, parse_s3_uri, put_json
from pipeline_common.timeutil import iso, utc_now

logger = Logger()
tracer = Tracer()

REPORT_KEY = "qa/report.json"
_EXAMPLES_KEPT = 5


class QualityBelowThreshold(Exception):
    """The model's accuracy on the held-out rows is below ACCURACY_THRESHOLD."""


class TestDataInvalid(Exception):
    """The held-out test data cannot be read as the manifest describes it."""

    __test__ = False  # a domain error, not a pytest test class


def read_test_rows(s3, test_uri: str, feature_count: int, max_rows: int) -> list[tuple[list[str], str]]:
    """(features, true label) pairs from the test split's CSV parts, streamed
    so that a large split costs only the rows used."""
    rows: list[tuple[list[str], str]] = []
    for part_uri in list_data_objects(s3, test_uri):
        bucket, key = parse_s3_uri(part_uri)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        lines = codecs.iterdecode(body.iter_lines(keepends=True), "utf-8")
        for row_number, fields in enumerate(csv.reader(lines), start=1):
            if not fields or fields == [""]:
                continue
            if len(fields) != feature_count + 1:
                raise TestDataInvalid(
                    f"{part_uri} row {row_number}: {len(fields)} fields, expected {feature_count} features and the label"
                )
            rows.append((fields[:-1], fields[-1]))
            if len(rows) >= max_rows:
                return rows
    return rows


def csv_record(fields: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue().encode("utf-8")


def first_csv_field(body: bytes) -> str:
    text = body.decode("utf-8").strip()
    if not text:
        return ""
    return next(csv.reader([text.splitlines()[0]]), [""])[0].strip()


def predict(runtime, endpoint_name: str, features: list[str]) -> str:
    response = runtime.invoke_endpoint(
        EndpointName=endpoint_name,
        ContentType="text/csv",
        Accept="text/csv",
        Body=csv_record(features),
    )
    return first_csv_field(response["Body"].read())


def compute_metrics(labels: list[str], truths: list[str], predictions: list[str | None]) -> dict:
    """Accuracy, per-class precision/recall and the confusion matrix (rows =
    true label, columns = predicted label, both in `labels` order). A
    prediction outside `labels` (or None: the endpoint refused the row) counts
    as wrong and is reported under invalid_predictions."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    correct = 0
    invalid = 0
    for truth, predicted in zip(truths, predictions):
        if truth not in index:
            raise TestDataInvalid(f"test label {truth!r} is not one of the manifest's labels {labels}")
        if predicted == truth:
            correct += 1
        if predicted in index:
            matrix[index[truth]][index[predicted]] += 1
        else:
            invalid += 1
    rows = len(truths)
    per_class = {}
    for i, label in enumerate(labels):
        true_positive = matrix[i][i]
        predicted_count = sum(matrix[r][i] for r in range(len(labels)))
        support = sum(1 for truth in truths if truth == label)
        per_class[label] = {
            "precision": round(true_positive / predicted_count, 6) if predicted_count else None,
            "recall": round(true_positive / support, 6) if support else None,
            "support": support,
        }
    return {
        "rows": rows,
        "correct": correct,
        "accuracy": round(correct / rows, 6) if rows else 0.0,
        "labels": list(labels),
        "confusion_matrix": matrix,
        "per_class": per_class,
        "invalid_predictions": invalid,
    }


def qa_test(s3, runtime, event: dict, threshold: float, max_rows: int) -> dict:
    try:
        run = event["run"]
        endpoint_name = event["names"]["qa_endpoint"]
        manifest_uri = event["manifest_uri"]
    except (TypeError, KeyError) as error:
        raise InvalidEvent(f"the event needs run, names.qa_endpoint and manifest_uri ({error})") from None
    report_uri = manifest_uri_for(run) + REPORT_KEY
    manifest = load_manifest(s3, manifest_uri, run_id=run.get("run_id"))
    labels = manifest["label_values"]

    rows = read_test_rows(s3, manifest["uris"]["test"], len(feature_names(manifest)), max_rows)
    if not rows:
        raise TestDataInvalid(f"no test rows under {manifest['uris']['test']}")

    predictions: list[str | None] = []
    invalid_examples = []
    for features, truth in rows:
        try:
            predicted = predict(runtime, endpoint_name, features)
        except ClientError as error:
            # The container refused this one row (4xx/5xx from a model): a
            # wrong answer for this row, not a reason to stop testing the rest.
            if error.response.get("Error", {}).get("Code") != "ModelError":
                raise
            predicted = None
            problem = error.response.get("Error", {}).get("Message", "ModelError")
        else:
            problem = None if predicted in labels else f"answer {predicted!r} is not a label"
        if problem and len(invalid_examples) < _EXAMPLES_KEPT:
            invalid_examples.append({"features": features, "truth": truth, "problem": problem})
        predictions.append(predicted)

    metrics = compute_metrics(labels, [truth for _, truth in rows], predictions)
    # The unrounded ratio: a rounded accuracy could pass a run just below the line.
    passed = metrics["correct"] / metrics["rows"] >= threshold
    report = {
        **metrics,
        "run_id": run.get("run_id"),
        "endpoint_name": endpoint_name,
        "threshold": threshold,
        "passed": passed,
        "rows_available": manifest["rows"]["test"],
        "invalid_examples": invalid_examples,
        "tested_at": iso(utc_now()),
    }
    put_json(s3, report_uri, report)
    logger.info(
        "QA finished",
        extra={"accuracy": metrics["accuracy"], "threshold": threshold, "rows": metrics["rows"], "passed": passed},
    )
    if not passed:
        invalid_note = f", {metrics['invalid_predictions']} invalid answers" if metrics["invalid_predictions"] else ""
        raise QualityBelowThreshold(
            f"QA accuracy {metrics['accuracy']:.4f} is below the threshold {threshold:.4f} "
            f"({metrics['correct']}/{metrics['rows']} held-out rows correct{invalid_note}); report: {report_uri}"
        )
    return {
        "accuracy": metrics["accuracy"],
        "threshold": threshold,
        "rows": metrics["rows"],
        "correct": metrics["correct"],
        "rows_available": manifest["rows"]["test"],
        "report_uri": report_uri,
        "passed": True,
    }


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@named_aws_errors
def lambda_handler(event, context):
    return qa_test(
        boto3.client("s3"),
        boto3.client("sagemaker-runtime"),
        event,
        threshold=env_float("ACCURACY_THRESHOLD", minimum=0.0, maximum=1.0),
        max_rows=env_int("QA_MAX_ROWS", 5000, minimum=1),
    )
