"""Tests the QA endpoint the way clients will use it: every held-out row as one
raw CSV record (feature fields only), `text/csv` (a table too wide for the
container's schema variable: one JSON request carrying the schema, as
dataset_spec.serving.request_body writes it), and compares the answers
with the true labels. What is measured follows the manifest's problem_type
(pipeline_common.metrics): accuracy, per-class precision/recall/F1, macro F1
and the confusion matrix for classification, ROC AUC too for two classes;
RMSE, MAE, R-squared and a residual summary for regression. The quality gate
is the manifest's quality_gate (metric and threshold; a null threshold takes
the stack's default). Writes qa/report.json; a failed gate fails the run with
QualityBelowThreshold, naming metric, value, threshold and direction.

Champion versus challenger: when the dataset's production endpoint serves,
the same rows go to it too, so the report (and the approval email) shows
both models on identical rows, measured by the gate's metric, and the rows
they answer differently. A challenger worse than production by more than
MAX_REGRESSION_AGAINST_PRODUCTION in that metric (absolute for accuracy,
macro F1, ROC AUC and R-squared; relative to production's for RMSE and MAE,
whose scale is the label's) fails with WorseThanProduction before anyone is
asked to approve it. Those requests are production traffic: its data
capture records them too."""
from __future__ import annotations

import codecs
import csv
import hashlib
import heapq
import math

import boto3
from aws_lambda_powertools import Logger, Tracer
from botocore.exceptions import ClientError

from dataset_spec.serving import csv_record, request_body
from pipeline_common.aws_errors import named_aws_errors
from pipeline_common.config import env_float, env_int
from pipeline_common.errors import InvalidEvent, ManifestInvalid
from pipeline_common.manifest import feature_names, load_manifest, manifest_uri_for, problem_type
from pipeline_common.metrics import (
    GateInvalid,
    binary_metrics,
    classification_metrics,
    decide_gate,
    gate_message,
    regression_metrics,
)
from pipeline_common.s3 import list_data_objects, parse_s3_uri, put_json
from pipeline_common.sagemaker import is_not_found
from pipeline_common.timeutil import iso, utc_now

logger = Logger()
tracer = Tracer()

REPORT_KEY = "qa/report.json"
_EXAMPLES_KEPT = 5
# The difference of two ratios carries float error (59/60 - 56/60 > 3/60); one row of the
# largest test (QA_MAX_ROWS) moves a ratio by far more than this, so it never hides a real row.
_FLOAT_SLACK = 1e-9
# Statuses in which an endpoint answers InvokeEndpoint (an update keeps the old fleet serving).
_SERVING = ("InService", "Updating", "SystemUpdating", "RollingBack")


class QualityBelowThreshold(Exception):
    """The model misses its quality gate on the held-out rows."""


class WorseThanProduction(Exception):
    """The new model's accuracy on the held-out rows is below production's on the same rows by more than
    MAX_REGRESSION_AGAINST_PRODUCTION."""


class TestDataInvalid(Exception):
    """The held-out test data cannot be read as the manifest describes it."""

    __test__ = False  # a domain error, not a pytest test class


def _sample_key(seed: int, index: int) -> bytes:
    """A row's place in the seeded random order: a hash of the seed and the row's position in the
    test split (parts in their listed order), so the same split and seed choose the same rows."""
    return hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()


def _quotas(counts: dict[str, int], size: int) -> dict[str, int]:
    """Each stratum's share of `size` rows, proportional to its count (largest remainders, ties by
    stratum name), so the sample's label mix is the split's within one row per label."""
    total = sum(counts.values())
    exact = {label: size * count / total for label, count in counts.items()}
    quotas = {label: math.floor(value) for label, value in exact.items()}
    left = size - sum(quotas.values())
    for label in sorted(exact, key=lambda label: (quotas[label] - exact[label], label))[:left]:
        quotas[label] += 1
    return quotas


def read_test_rows(s3, test_uri: str, feature_count: int, max_rows: int, seed: int = 0,
                   stratified: bool = True) -> list[tuple[list[str], str]]:
    """read_test_sample's rows."""
    return read_test_sample(s3, test_uri, feature_count, max_rows, seed, stratified)[0]


def read_test_sample(s3, test_uri: str, feature_count: int, max_rows: int, seed: int = 0,
                     stratified: bool = True) -> tuple[list[tuple[list[str], str]], dict]:
    """(features, true label) pairs from the test split's CSV parts, and how they were chosen. All
    rows when the split has at most `max_rows`; else a seeded uniform random sample of `max_rows`,
    stratified by label for classification (a sorted input keeps its order in the split, so the
    first rows are no sample at all). Streamed: at most `max_rows` rows per label are held."""
    kept: dict[str, list[tuple[bytes, int, list[str]]]] = {}
    counts: dict[str, int] = {}
    index = 0
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
            stratum = fields[-1] if stratified else ""
            counts[stratum] = counts.get(stratum, 0) + 1
            candidates = kept.setdefault(stratum, [])
            # The max_rows smallest keys of each stratum: a max-heap by negated key.
            entry = (bytes(255 - b for b in _sample_key(seed, index)), index, fields)
            if len(candidates) < max_rows:
                heapq.heappush(candidates, entry)
            elif entry[0] > candidates[0][0]:
                heapq.heapreplace(candidates, entry)
            index += 1
    total = sum(counts.values())
    if total <= max_rows:
        chosen = [entry for candidates in kept.values() for entry in candidates]
        sample = {"method": "all", "rows": total, "of": total}
    else:
        quotas = _quotas(counts, max_rows)
        chosen = [entry for stratum, candidates in kept.items()
                  for entry in sorted(candidates, reverse=True)[:quotas[stratum]]]
        sample = {"method": "stratified random by label" if stratified else "uniform random",
                  "rows": len(chosen), "of": total, "seed": seed}
    # In the split's order, so reports list examples as the split holds them.
    rows = [(fields[:-1], fields[-1]) for _, _, fields in sorted(chosen, key=lambda entry: entry[1])]
    return rows, sample


def _manifest_seed(manifest: dict) -> int:
    """The run's seed (the split's), so a rerun of the same file scores the same rows."""
    seed = manifest.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


def first_csv_field(body: bytes) -> str:
    text = body.decode("utf-8").strip()
    if not text:
        return ""
    return next(csv.reader([text.splitlines()[0]]), [""])[0].strip()


def predict(runtime, endpoint_name: str, features: list[str], schema: dict | None = None) -> str:
    """`schema`: the preprocess container's (the manifest's schemas.preprocess); a schema too long
    for the container's environment makes the request JSON that carries it (dataset_spec.serving)."""
    content_type, body = request_body(features, schema) if schema else ("text/csv", csv_record(features))
    response = runtime.invoke_endpoint(
        EndpointName=endpoint_name,
        ContentType=content_type,
        Accept="text/csv",
        Body=body,
    )
    return first_csv_field(response["Body"].read())


def number_or_none(text: str | None) -> float | None:
    """The regression answer as a number; None for text that is not a finite number."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def ask_endpoint(runtime, endpoint_name: str, rows, valid, schema: dict | None = None) -> tuple[list, list[dict]]:
    """Each row's answer (None when the container refused it) and a few
    examples of answers that are not usable, with why."""
    answers, examples = [], []
    for features, truth in rows:
        try:
            answer = predict(runtime, endpoint_name, features, schema)
        except ClientError as error:
            # The container refused this one row (4xx/5xx from a model): a
            # wrong answer for this row, not a reason to stop testing the rest.
            if error.response.get("Error", {}).get("Code") != "ModelError":
                raise
            answer, problem = None, error.response.get("Error", {}).get("Message", "ModelError")
        else:
            answer, problem = valid(answer)
        if problem and len(examples) < _EXAMPLES_KEPT:
            examples.append({"features": features, "truth": truth, "problem": problem})
        answers.append(answer)
    return answers, examples


def score(manifest: dict, rows, answers: list) -> tuple[dict, dict]:
    """(metrics, exact values for the gate) by problem type."""
    kind = problem_type(manifest)
    truths = [truth for _, truth in rows]
    if kind == "regression":
        numbers = [number_or_none(truth) for truth in truths]
        bad = [i for i, value in enumerate(numbers) if value is None]
        if bad:
            raise TestDataInvalid(f"test row {bad[0] + 1}: the label {truths[bad[0]]!r} is not a number "
                                  f"({len(bad)} such rows)")
        return regression_metrics(numbers, answers, [features for features, _ in rows]), {}
    labels = manifest["label_values"]
    try:
        metrics = (binary_metrics if kind == "binary" else classification_metrics)(labels, truths, answers)
    except ValueError as error:
        raise TestDataInvalid(f"test labels do not fit the manifest: {error}") from None
    # The unrounded ratio: a rounded accuracy could pass a run just below the line.
    return metrics, {"accuracy": metrics["correct"] / metrics["rows"]}


def production_to_compare(sagemaker, production_endpoint: str | None) -> tuple[bool, str]:
    """(compare?, what the report says about production)."""
    if not production_endpoint:
        return False, "no production endpoint is configured for this dataset"
    try:
        status = sagemaker.describe_endpoint(EndpointName=production_endpoint)["EndpointStatus"]
    except ClientError as error:
        if not is_not_found(error):
            raise
        return False, f"no production endpoint {production_endpoint} yet: this is the dataset's first model"
    if status not in _SERVING:
        return False, f"production endpoint {production_endpoint} is {status} and answers nothing: not compared"
    return True, f"production endpoint {production_endpoint} ({status}) answered the same rows"


def regression_against(higher_is_better: bool, challenger, champion) -> float | None:
    """How much worse the challenger is in the gate's metric (negative: better); None when either is undefined.
    Absolute for the bounded metrics; relative for RMSE and MAE, which are in the label's units."""
    if challenger is None or champion is None:
        return None
    if higher_is_better:
        return champion - challenger
    return (challenger - champion) / champion if champion > 0 else (0.0 if challenger <= champion else float("inf"))


def comparison(rows, gate: dict, challenger_value, predictions, champion_value, champion_predictions,
               max_regression: float) -> dict:
    differing = [i for i, (new, old) in enumerate(zip(predictions, champion_predictions)) if new != old]
    # Unrounded values, as for the threshold: a rounded difference could pass a run just past the line.
    regression = regression_against(gate["higher_is_better"], challenger_value, champion_value)
    return {
        "metric": gate["metric"],
        "higher_is_better": gate["higher_is_better"],
        "new_model": challenger_value,
        "production": champion_value,
        "regression": None if regression is None else round(regression, 6),
        "rows_answered_differently": len(differing),
        "examples": [{"features": rows[i][0], "truth": rows[i][1], "new_model": predictions[i],
                      "production": champion_predictions[i]} for i in differing[:_EXAMPLES_KEPT]],
        "max_regression": max_regression,
        # An undefined metric on either side compares nothing: the gate itself judged the challenger.
        "passed": regression is None or regression <= max_regression + _FLOAT_SLACK,
    }


def qa_test(s3, runtime, event: dict, threshold: float, max_rows: int, r2_threshold: float = 0.5, sagemaker=None,
            max_regression: float = 0.0) -> dict:
    """`threshold`: the classification gate's default (AccuracyThreshold); `r2_threshold`: the
    regression gate's (R2Threshold). Either applies only when the manifest's gate has no threshold.
    `sagemaker` None: no comparison with production (as when it has no endpoint)."""
    try:
        run = event["run"]
        endpoint_name = event["names"]["qa_endpoint"]
        manifest_uri = event["manifest_uri"]
    except (TypeError, KeyError) as error:
        raise InvalidEvent(f"the event needs run, names.qa_endpoint and manifest_uri ({error})") from None
    production_endpoint = event["names"].get("production_endpoint")
    report_uri = manifest_uri_for(run) + REPORT_KEY
    manifest = load_manifest(s3, manifest_uri, run_id=run.get("run_id"))
    kind = problem_type(manifest)

    rows, sample = read_test_sample(s3, manifest["uris"]["test"], len(feature_names(manifest)), max_rows,
                                  seed=_manifest_seed(manifest), stratified=kind != "regression")
    if not rows:
        raise TestDataInvalid(f"no test rows under {manifest['uris']['test']}")

    compare, production_note = production_to_compare(sagemaker, production_endpoint) if sagemaker else (
        False, "no production endpoint is configured for this dataset")
    if kind == "regression":
        def valid(answer):
            number = number_or_none(answer)
            return number, None if number is not None else f"answer {answer!r} is not a number"
    else:
        labels = manifest["label_values"]

        def valid(answer):
            return answer, None if answer in labels else f"answer {answer!r} is not a label"

    # A wide table's endpoint takes JSON requests carrying this schema (dataset_spec.serving).
    schema = (manifest.get("schemas") or {}).get("preprocess")
    answers, invalid_examples = ask_endpoint(runtime, endpoint_name, rows, valid, schema)
    metrics, exact = score(manifest, rows, answers)
    try:
        gate = decide_gate(kind, manifest.get("quality_gate"), metrics, threshold, r2_threshold, exact)
    except GateInvalid as error:
        raise ManifestInvalid(f"manifest {manifest_uri}: {error}") from None
    production = {"endpoint_name": production_endpoint, "compared": compare, "note": production_note}
    versus = None
    if compare:
        champion_answers, _ = ask_endpoint(runtime, production_endpoint, rows, valid, schema)
        champion, champion_exact = score(manifest, rows, champion_answers)
        production.update(champion)
        metric = gate["metric"]
        # Unrounded on both sides, as for the gate.
        versus = comparison(rows, gate, exact.get(metric, gate["value"]), answers,
                            champion_exact.get(metric, champion.get(metric)),
                            champion_answers, max_regression)
    report = {
        **metrics,
        "run_id": run.get("run_id"),
        "dataset": manifest.get("dataset"),
        "problem_type": kind,
        "label_name": manifest.get("label_name"),
        # What each example's "features" fields are, in order.
        "feature_names": feature_names(manifest),
        "binary_threshold": manifest.get("binary_threshold") if kind == "binary" else None,
        "endpoint_name": endpoint_name,
        "gate": gate,
        "threshold": gate["threshold"],
        "passed": gate["passed"],
        "rows_available": manifest["rows"]["test"],
        "sample": sample,
        "invalid_examples": invalid_examples,
        "production": production,
        "versus_production": versus,
        "tested_at": iso(utc_now()),
    }
    put_json(s3, report_uri, report)
    logger.info("QA finished", extra={"problem_type": kind, "gate": gate, "rows": metrics["rows"]})
    if not gate["passed"]:
        invalid = metrics["invalid_predictions"]
        detail = (f"{metrics['correct']}/{metrics['rows']} held-out rows correct" if kind != "regression"
                  else f"{metrics['scored_rows']} of {metrics['rows']} held-out rows answered with a number")
        invalid_note = f", {invalid} invalid answers" if invalid and kind != "regression" else ""
        raise QualityBelowThreshold(f"{gate_message(gate, kind, metrics)} ({detail}{invalid_note}); report: {report_uri}")
    if versus and not versus["passed"]:
        direction = "higher is better" if versus["higher_is_better"] else "lower is better"
        amount = (f"{versus['regression']:.4f}" if versus["higher_is_better"] else f"{versus['regression']:.1%}")
        allowed = f"{max_regression:.4f}" if versus["higher_is_better"] else f"{max_regression:.1%}"
        raise WorseThanProduction(
            f"QA {versus['metric']} {versus['new_model']:.4f} is {amount} worse than production "
            f"{production_endpoint}'s {versus['production']:.4f} ({direction}) on the same {metrics['rows']} held-out "
            f"rows (at most {allowed} allowed; {versus['rows_answered_differently']} rows answered "
            f"differently); report: {report_uri}"
        )
    return {
        "problem_type": kind,
        "metric": gate["metric"],
        "value": gate["value"],
        "threshold": gate["threshold"],
        "higher_is_better": gate["higher_is_better"],
        # null for regression; kept for what read accuracy before issue 11.
        "accuracy": metrics.get("accuracy"),
        "correct": metrics.get("correct"),
        "rows": metrics["rows"],
        "rows_available": manifest["rows"]["test"],
        "sample": sample,
        "report_uri": report_uri,
        "passed": True,
        "production": {"endpoint_name": production_endpoint, "compared": compare, "note": production_note,
                       "accuracy": production.get("accuracy"),
                       "value": versus["production"] if versus else None},
        "regression_against_production": versus["regression"] if versus else None,
        "rows_answered_differently": versus["rows_answered_differently"] if versus else None,
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
        r2_threshold=env_float("R2_THRESHOLD", 0.5, maximum=1.0),
        sagemaker=boto3.client("sagemaker"),
        max_regression=env_float("MAX_REGRESSION_AGAINST_PRODUCTION", 0.0, minimum=0.0, maximum=1.0),
    )
