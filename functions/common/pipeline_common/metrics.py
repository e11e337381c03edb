"""QA metrics by problem type, and the quality gate: pure Python (the Lambda
has no numpy), checked against scikit-learn in tests/functions/test_fn_metrics.py.

What the endpoint answers decides what can be measured:
- classification: the label string (binary too: the postprocess container
  turns XGBoost's probability into a label at the spec's binary_threshold);
- regression: the predicted number (XGBoost's CSV answer).

ROC AUC for two classes. A serial inference pipeline answers only its last
container's output, and SageMaker has no route to one container of it
(TargetContainerHostname is for direct-invocation endpoints only:
https://docs.aws.amazon.com/sagemaker/latest/dg/multi-container-direct.html),
so QA sees labels, not probabilities. The ROC curve of a classifier that
answers labels has one operating point, (FPR, TPR) at the spec's threshold,
joined to (0,0) and (1,1); its area is (1 + TPR - FPR) / 2, which equals
balanced accuracy. That is the `roc_auc` reported here (`roc_auc_basis` says
so), and what a `roc_auc` gate compares: it is not the threshold-free AUC of
the model's probabilities, which is at least as high for a sensible model.
"""
from __future__ import annotations

import math

# metric -> (problem types it measures, higher is better): the table the spec check uses too.
from dataset_spec import DEFAULT_GATE_METRIC, GATE_METRICS

ROC_AUC_BASIS = (
    "predicted labels at the spec's binary_threshold: one ROC operating point, "
    "area (1 + TPR - FPR) / 2 = balanced accuracy (the endpoint answers labels, not probabilities)"
)
RESIDUAL_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
LARGEST_ERRORS_KEPT = 5
_DIGITS = 6


def _round(value):
    return None if value is None else round(value, _DIGITS)


def _ratio(numerator: float, denominator: float):
    return numerator / denominator if denominator else None


# ------------------------------------------------------------ classification

def classification_metrics(labels: list[str], truths: list[str], predictions: list[str | None]) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro F1 and the
    confusion matrix (rows = true label, columns = predicted label, both in
    `labels` order). A prediction outside `labels` (None: the endpoint refused
    the row) counts as wrong, appears in no matrix column, and is counted under
    invalid_predictions."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({truth for truth in truths if truth not in index})
    if unknown:
        raise ValueError(f"true labels {unknown} are not among the manifest's labels {labels}")
    matrix = [[0] * len(labels) for _ in labels]
    correct = invalid = 0
    for truth, predicted in zip(truths, predictions, strict=True):
        if predicted == truth:
            correct += 1
        if predicted in index:
            matrix[index[truth]][index[predicted]] += 1
        else:
            invalid += 1
    per_class = {}
    f1_scores = []
    for i, label in enumerate(labels):
        true_positive = matrix[i][i]
        predicted_count = sum(row[i] for row in matrix)
        support = sum(1 for truth in truths if truth == label)
        precision, recall = _ratio(true_positive, predicted_count), _ratio(true_positive, support)
        # F1 is 0 when the class was never predicted correctly (scikit-learn's zero_division=0).
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
        if support or predicted_count:
            # Macro F1 averages over the classes that occur in the answers or the truth,
            # as scikit-learn does by default: a class absent from the test split is not scored.
            f1_scores.append(f1)
        per_class[label] = {"precision": _round(precision), "recall": _round(recall),
                            "f1": _round(f1) if support or predicted_count else None, "support": support}
    rows = len(truths)
    return {
        "rows": rows,
        "correct": correct,
        "accuracy": _round(_ratio(correct, rows)) if rows else 0.0,
        "macro_f1": _round(sum(f1_scores) / len(f1_scores)) if f1_scores else None,
        "labels": list(labels),
        "confusion_matrix": matrix,
        "per_class": per_class,
        "invalid_predictions": invalid,
    }


def binary_roc_auc(labels: list[str], truths: list[str], predictions: list[str | None]):
    """The ROC AUC of label answers (module docstring); `labels[1]` is the
    positive class (the one the postprocess answers at probability >=
    threshold). An invalid answer counts as the wrong class, as for accuracy.
    None when the held-out rows hold only one class (no ROC curve exists)."""
    if len(labels) != 2:
        raise ValueError(f"ROC AUC needs two classes, the manifest lists {len(labels)}")
    negative, positive = labels
    positives = sum(1 for truth in truths if truth == positive)
    negatives = sum(1 for truth in truths if truth == negative)
    if not positives or not negatives:
        return None
    true_positive = sum(1 for t, p in zip(truths, predictions) if t == positive and p == positive)
    false_positive = sum(1 for t, p in zip(truths, predictions) if t == negative and p != negative)
    return (1 + true_positive / positives - false_positive / negatives) / 2


def binary_metrics(labels: list[str], truths: list[str], predictions: list[str | None]) -> dict:
    metrics = classification_metrics(labels, truths, predictions)
    metrics["positive_label"] = labels[1]
    metrics["roc_auc"] = _round(binary_roc_auc(labels, truths, predictions))
    metrics["roc_auc_basis"] = ROC_AUC_BASIS
    return metrics


# ---------------------------------------------------------------- regression

def quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, 'linear')."""
    if not sorted_values:
        raise ValueError("no values")
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


# Enough points to see a trend or a bias in the plot, few enough for the report and the page.
RESIDUAL_POINTS_KEPT = 400


def regression_metrics(truths: list[float], predictions: list[float | None], features: list[list[str]] | None = None) -> dict:
    """RMSE, MAE, R-squared and a residual summary over the rows the endpoint
    answered with a number. Residual = true - predicted. `largest_errors` keeps
    the rows with the largest absolute residuals, with their feature fields.
    Rows without a numeric answer are counted under invalid_predictions (the
    gate fails when there are any: an unscored row cannot count as good)."""
    features = features if features is not None else [[] for _ in truths]
    scored = [(i, t, p) for i, (t, p) in enumerate(zip(truths, predictions, strict=True)) if p is not None]
    invalid = len(truths) - len(scored)
    result = {"rows": len(truths), "scored_rows": len(scored), "invalid_predictions": invalid}
    if not scored:
        return {**result, "rmse": None, "mae": None, "r2": None, "residuals": None, "largest_errors": [],
                "label_mean": None, "label_std": None, "baseline_mae": None}
    true_values = [t for _, t, _ in scored]
    residuals = [t - p for _, t, p in scored]
    n = len(scored)
    squared = sum(r * r for r in residuals)
    mean = sum(true_values) / n
    variance = sum((t - mean) ** 2 for t in true_values) / n
    median = quantile(sorted(true_values), 0.5)
    ordered = sorted(residuals)
    worst = sorted(range(n), key=lambda k: abs(residuals[k]), reverse=True)[:LARGEST_ERRORS_KEPT]
    return {
        **result,
        "rmse": _round(math.sqrt(squared / n)),
        "mae": _round(sum(abs(r) for r in residuals) / n),
        # Undefined when every held-out label is the same (no variance to explain).
        "r2": _round(1 - (squared / n) / variance) if variance > 0 else None,
        "label_mean": _round(mean),
        "label_std": _round(math.sqrt(variance)),
        # What always answering the median would score (the best constant under MAE).
        "baseline_mae": _round(sum(abs(t - median) for t in true_values) / n),
        "residuals": {
            "mean": _round(sum(residuals) / n),
            "quantiles": {f"p{round(q * 100):02d}": _round(quantile(ordered, q)) for q in RESIDUAL_QUANTILES},
        },
        "largest_errors": [
            {"row": scored[k][0] + 1, "features": features[scored[k][0]], "truth": scored[k][1],
             "predicted": scored[k][2], "residual": _round(residuals[k])}
            for k in worst
        ],
        # (predicted, residual) of the first rows scored (the test sample is in random order): the page's plot.
        "residual_points": [[_round(p), _round(t - p)] for _, t, p in scored[:RESIDUAL_POINTS_KEPT]],
    }


# ---------------------------------------------------------------------- gate

class GateInvalid(ValueError):
    """The manifest's quality_gate does not fit its problem type."""


def metric_fits(metric: str, problem_type: str) -> bool:
    return metric in GATE_METRICS and problem_type in GATE_METRICS[metric][0]


def gate_threshold(problem_type: str, metric: str, threshold, accuracy_default: float, r2_default: float,
                   metrics: dict) -> tuple[float | None, str]:
    """The threshold to compare with, and where it came from. A null
    threshold takes the stack's default: AccuracyThreshold for every
    classification metric; R2Threshold for r2; for rmse and mae the same bar
    in the label's units: rmse <= std * sqrt(1 - R2Threshold) (exactly r2 >=
    R2Threshold, since r2 = 1 - mse / var), mae <= (1 - R2Threshold) * the MAE
    of always answering the median (relative absolute error, the MAE analogue
    of r2)."""
    if threshold is not None:
        return float(threshold), "spec"
    if problem_type in ("binary", "multiclass"):
        return accuracy_default, "AccuracyThreshold"
    if metric == "r2":
        return r2_default, "R2Threshold"
    if metric == "rmse":
        std = metrics.get("label_std")
        return (None if std is None else std * math.sqrt(1 - r2_default)), "R2Threshold, as RMSE: label std x sqrt(1 - R2Threshold)"
    baseline = metrics.get("baseline_mae")
    return (None if baseline is None else (1 - r2_default) * baseline), "R2Threshold, as MAE: (1 - R2Threshold) x median-answer MAE"


def decide_gate(problem_type: str, quality_gate, metrics: dict, accuracy_default: float, r2_default: float,
                exact: dict | None = None) -> dict:
    """{"metric", "threshold", "threshold_source", "higher_is_better", "value", "passed"}.
    `exact` may carry unrounded values (e.g. accuracy as correct/rows) so a
    value just below the line never passes by rounding."""
    gate = quality_gate if isinstance(quality_gate, dict) else {}
    metric = gate.get("metric") or DEFAULT_GATE_METRIC[problem_type]
    if not metric_fits(metric, problem_type):
        raise GateInvalid(f"quality_gate.metric {metric!r} does not measure a {problem_type} model "
                          f"(fitting: {', '.join(m for m in GATE_METRICS if metric_fits(m, problem_type))})")
    higher = GATE_METRICS[metric][1]
    threshold, source = gate_threshold(problem_type, metric, gate.get("threshold"), accuracy_default, r2_default, metrics)
    value = (exact or {}).get(metric, metrics.get(metric))
    passed = value is not None and threshold is not None and (value >= threshold if higher else value <= threshold)
    if metrics.get("invalid_predictions") and problem_type == "regression":
        passed = False
    return {"metric": metric, "threshold": _round(threshold), "threshold_source": source, "higher_is_better": higher,
            "value": _round(value), "passed": passed}


def gate_message(gate: dict, problem_type: str, metrics: dict) -> str:
    """Why the gate failed, in one sentence naming metric, value, threshold and direction."""
    metric, value, threshold = gate["metric"], gate["value"], gate["threshold"]
    direction = "higher is better" if gate["higher_is_better"] else "lower is better"
    source = f"threshold from {gate['threshold_source']}"
    if value is None:
        why = {"r2": "R-squared is undefined (every held-out label is the same)",
               "roc_auc": "ROC AUC is undefined (the held-out rows hold one class only)"}.get(metric, f"{metric} could not be computed")
        return f"QA {why}; the gate needs {metric} {'>=' if gate['higher_is_better'] else '<='} {_shown(threshold)} ({source})"
    if threshold is None:
        return f"QA {metric} is {_shown(value)} but no threshold could be derived ({source})"
    invalid = metrics.get("invalid_predictions") or 0
    if problem_type == "regression" and invalid and (value >= threshold if gate["higher_is_better"] else value <= threshold):
        return (f"QA {metric} {_shown(value)} meets the threshold {_shown(threshold)} ({direction}, {source}), but "
                f"{invalid} of {metrics.get('rows')} held-out rows got no numeric answer")
    relation = "below" if gate["higher_is_better"] else "above"
    return f"QA {metric} {_shown(value)} is {relation} the threshold {_shown(threshold)} ({direction}; {source})"


def _shown(value) -> str:
    return "n/a" if value is None else f"{value:.4f}" if abs(value) < 1000 else f"{value:.6g}"
