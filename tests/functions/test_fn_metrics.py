"""pipeline_common.metrics against an independent implementation (scikit-learn,
numpy) on random answers, and the gate's arithmetic: what a reviewer reads and
what decides whether a model may reach production."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
from sklearn import metrics as sk

from pipeline_common.metrics import (
    ROC_AUC_BASIS,
    GateInvalid,
    binary_metrics,
    classification_metrics,
    decide_gate,
    gate_message,
    quantile,
    regression_metrics,
)

LABELS = ["unacc", "acc", "good", "vgood"]
INVALID = "<invalid>"  # how an answer that is not a label reaches the oracle


def random_answers(seed: int, labels: list[str], rows: int, invalid_share: float = 0.03):
    rng = random.Random(seed)
    truths = [rng.choice(labels) for _ in range(rows)]
    predictions = []
    for truth in truths:
        roll = rng.random()
        if roll < invalid_share:
            predictions.append(rng.choice([None, "not-a-label"]))
        elif roll < 0.75:
            predictions.append(truth)
        else:
            predictions.append(rng.choice(labels))
    return truths, predictions


def oracle_view(predictions):
    return [p if p in LABELS + ["benign", "malignant"] else INVALID for p in predictions]


@pytest.mark.parametrize("seed", range(6))
def test_classification_metrics_agree_with_scikit_learn(seed):
    truths, predictions = random_answers(seed, LABELS, 400)
    got = classification_metrics(LABELS, truths, predictions)
    expected_predictions = oracle_view(predictions)

    assert got["accuracy"] == pytest.approx(sk.accuracy_score(truths, expected_predictions), abs=1e-6)
    assert got["correct"] == sum(t == p for t, p in zip(truths, predictions))
    # The matrix leaves invalid answers out of every column; scikit-learn's, restricted to the labels, does too.
    assert got["confusion_matrix"] == sk.confusion_matrix(truths, expected_predictions, labels=LABELS).tolist()
    assert got["invalid_predictions"] == expected_predictions.count(INVALID)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        truths, expected_predictions, labels=LABELS, zero_division=0)
    for i, label in enumerate(LABELS):
        stats = got["per_class"][label]
        assert stats["precision"] == pytest.approx(precision[i], abs=1e-6)
        assert stats["recall"] == pytest.approx(recall[i], abs=1e-6)
        assert stats["f1"] == pytest.approx(f1[i], abs=1e-6)
        assert stats["support"] == support[i]
    present = sorted(set(truths) | {p for p in predictions if p in LABELS}, key=LABELS.index)
    assert got["macro_f1"] == pytest.approx(
        sk.f1_score(truths, expected_predictions, labels=present, average="macro", zero_division=0), abs=1e-6)


def test_macro_f1_leaves_out_a_class_absent_from_truth_and_answers():
    # "vgood" neither occurs nor is predicted: scikit-learn's macro average (default labels) skips it.
    truths = ["unacc", "acc", "good", "unacc"]
    predictions = ["unacc", "acc", "unacc", "unacc"]
    got = classification_metrics(LABELS, truths, predictions)
    assert got["per_class"]["vgood"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert got["macro_f1"] == pytest.approx(sk.f1_score(truths, predictions, average="macro", zero_division=0))


def test_a_true_label_outside_the_manifest_is_an_error_not_a_wrong_answer():
    with pytest.raises(ValueError, match="excellent"):
        classification_metrics(LABELS, ["excellent"], ["unacc"])


@pytest.mark.parametrize("seed", range(6))
def test_binary_roc_auc_is_scikit_learns_auc_of_the_label_answers(seed):
    labels = ["benign", "malignant"]
    truths, predictions = random_answers(seed, labels, 300, invalid_share=0.05)
    got = binary_metrics(labels, truths, predictions)
    y_true = [t == "malignant" for t in truths]
    # An invalid answer counts as the wrong class (as for accuracy): a score on the wrong side.
    scores = [1.0 if (p == "malignant" if p in labels else t != "malignant") else 0.0 for t, p in zip(truths, predictions)]
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y_true, scores), abs=1e-6)
    # One operating point: its area is balanced accuracy, which the report says.
    assert got["roc_auc"] == pytest.approx(
        sk.balanced_accuracy_score(truths, [p if p in labels else ("benign" if t == "malignant" else "malignant")
                                            for t, p in zip(truths, predictions)]), abs=1e-6)
    assert got["positive_label"] == "malignant" and got["roc_auc_basis"] == ROC_AUC_BASIS
    assert "balanced accuracy" in ROC_AUC_BASIS and "labels" in ROC_AUC_BASIS


def test_binary_roc_auc_is_undefined_with_one_class_only():
    got = binary_metrics(["no", "yes"], ["yes", "yes"], ["yes", "no"])
    assert got["roc_auc"] is None


@pytest.mark.parametrize("seed", range(6))
def test_regression_metrics_agree_with_scikit_learn_and_numpy(seed):
    rng = np.random.default_rng(seed)
    truths = rng.normal(150, 70, 250).round(2).tolist()
    predictions = [t + float(rng.normal(0, 40)) if rng.random() > 0.04 else None for t in truths]
    features = [[f"{i}", "", "x"] for i in range(len(truths))]
    got = regression_metrics(truths, predictions, features)
    scored = [(t, p) for t, p in zip(truths, predictions) if p is not None]
    y, yhat = np.array([t for t, _ in scored]), np.array([p for _, p in scored])
    assert got["scored_rows"] == len(scored) and got["invalid_predictions"] == len(truths) - len(scored)
    assert got["rmse"] == pytest.approx(math.sqrt(sk.mean_squared_error(y, yhat)), abs=1e-5)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, yhat), abs=1e-5)
    assert got["r2"] == pytest.approx(sk.r2_score(y, yhat), abs=1e-6)
    assert got["label_std"] == pytest.approx(np.std(y), abs=1e-5)
    assert got["baseline_mae"] == pytest.approx(sk.mean_absolute_error(y, np.full_like(y, np.median(y))), abs=1e-5)
    residuals = y - yhat
    assert got["residuals"]["mean"] == pytest.approx(residuals.mean(), abs=1e-5)
    for name, q in (("p00", 0), ("p05", 5), ("p25", 25), ("p50", 50), ("p75", 75), ("p95", 95), ("p100", 100)):
        assert got["residuals"]["quantiles"][name] == pytest.approx(np.percentile(residuals, q), abs=1e-5), name
    # The largest errors, largest first, with the row they came from (1-based, as in the test split).
    order = np.argsort(-np.abs(residuals), kind="stable")[:5]
    rows_scored = [i for i, p in enumerate(predictions) if p is not None]
    assert [e["row"] for e in got["largest_errors"]] == [rows_scored[k] + 1 for k in order]
    first = got["largest_errors"][0]
    assert first["features"] == features[first["row"] - 1]
    assert first["residual"] == pytest.approx(first["truth"] - first["predicted"], abs=1e-5)


def test_quantile_interpolates_like_numpy():
    values = sorted([3.0, -1.0, 7.5, 2.0, 2.0, 10.0])
    for q in (0, 0.05, 0.33, 0.5, 0.9, 1):
        assert quantile(values, q) == pytest.approx(np.quantile(values, q))


def test_r2_is_undefined_when_every_label_is_the_same():
    got = regression_metrics([5.0, 5.0, 5.0], [4.0, 5.0, 6.0])
    assert got["r2"] is None
    gate = decide_gate("regression", {"metric": "r2", "threshold": 0.2}, got, 0.95, 0.5)
    assert gate["passed"] is False
    assert "undefined" in gate_message(gate, "regression", got)


# ---------------------------------------------------------------------- the gate

def test_null_threshold_takes_the_stack_default_for_classification():
    metrics = {"accuracy": 0.96, "macro_f1": 0.90, "roc_auc": 0.93}
    gate = decide_gate("multiclass", {"metric": "accuracy", "threshold": None}, metrics, 0.95, 0.5)
    assert gate == {"metric": "accuracy", "threshold": 0.95, "threshold_source": "AccuracyThreshold",
                    "higher_is_better": True, "value": 0.96, "passed": True}
    assert decide_gate("binary", {"metric": "roc_auc", "threshold": None}, metrics, 0.95, 0.5)["passed"] is False
    assert decide_gate("binary", {"metric": "macro_f1", "threshold": 0.85}, metrics, 0.95, 0.5)["threshold_source"] == "spec"


def test_a_manifest_without_a_gate_is_judged_by_accuracy_or_r2():
    assert decide_gate("multiclass", None, {"accuracy": 0.97}, 0.95, 0.5)["metric"] == "accuracy"
    assert decide_gate("regression", None, {"r2": 0.6}, 0.95, 0.5)["metric"] == "r2"


def test_the_unrounded_accuracy_decides():
    # The reported accuracy is rounded to 6 digits; a value just below the line that rounds onto it must fail.
    metrics = {"accuracy": 0.95}
    gate = decide_gate("multiclass", {"metric": "accuracy", "threshold": None}, metrics, 0.95, 0.5,
                       exact={"accuracy": 0.9499999})
    assert gate["passed"] is False


def test_regression_defaults_put_rmse_and_mae_on_the_r2_bar():
    truths = [100.0, 150.0, 200.0, 250.0, 300.0, 120.0, 180.0, 260.0]
    predictions = [110.0, 140.0, 215.0, 240.0, 280.0, 130.0, 170.0, 275.0]
    metrics = regression_metrics(truths, predictions)
    rmse_gate = decide_gate("regression", {"metric": "rmse", "threshold": None}, metrics, 0.95, 0.5)
    r2_gate = decide_gate("regression", {"metric": "r2", "threshold": None}, metrics, 0.95, 0.5)
    # rmse <= std * sqrt(1 - R2Threshold) is exactly r2 >= R2Threshold.
    assert rmse_gate["threshold"] == pytest.approx(np.std(truths) * math.sqrt(0.5), abs=1e-5)
    assert rmse_gate["passed"] == r2_gate["passed"] is True
    strict = decide_gate("regression", {"metric": "rmse", "threshold": None}, metrics, 0.95, 0.995)
    assert strict["passed"] is decide_gate("regression", {"metric": "r2", "threshold": None}, metrics, 0.95, 0.995)["passed"] is False
    mae_gate = decide_gate("regression", {"metric": "mae", "threshold": None}, metrics, 0.95, 0.5)
    median = np.median(truths)
    assert mae_gate["threshold"] == pytest.approx(0.5 * np.mean(np.abs(np.array(truths) - median)), abs=1e-5)
    assert mae_gate["higher_is_better"] is False and "R2Threshold" in mae_gate["threshold_source"]


def test_lower_is_better_metrics_fail_above_the_threshold_and_the_message_says_so():
    metrics = {"rmse": 52.5, "invalid_predictions": 0, "rows": 88}
    gate = decide_gate("regression", {"metric": "rmse", "threshold": 48.0}, metrics, 0.95, 0.5)
    assert gate["passed"] is False
    message = gate_message(gate, "regression", metrics)
    assert "rmse 52.5000 is above the threshold 48.0000" in message
    assert "lower is better" in message and "spec" in message


def test_higher_is_better_message_names_metric_value_threshold_and_source():
    metrics = {"accuracy": 0.9, "invalid_predictions": 0}
    gate = decide_gate("multiclass", {"metric": "accuracy", "threshold": None}, metrics, 0.95, 0.5)
    message = gate_message(gate, "multiclass", metrics)
    assert message == ("QA accuracy 0.9000 is below the threshold 0.9500 "
                       "(higher is better; threshold from AccuracyThreshold)")


def test_regression_rows_without_a_number_fail_the_gate_even_when_the_metric_passes():
    metrics = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, None])
    gate = decide_gate("regression", {"metric": "r2", "threshold": 0.1}, metrics, 0.95, 0.5)
    assert gate["value"] == 1.0 and gate["passed"] is False
    assert "1 of 4 held-out rows got no numeric answer" in gate_message(gate, "regression", metrics)


@pytest.mark.parametrize("problem_type, metric", [("regression", "accuracy"), ("multiclass", "roc_auc"),
                                                   ("binary", "rmse"), ("multiclass", "bogus")])
def test_a_gate_metric_that_does_not_fit_the_problem_type_is_refused(problem_type, metric):
    with pytest.raises(GateInvalid, match=metric):
        decide_gate(problem_type, {"metric": metric, "threshold": 0.5}, {}, 0.95, 0.5)
