"""pipeline_common.metrics at its edges: what the QA report says and what the
gate decides when a value sits exactly on the line, a class is missing, an
answer is not a label, or a number cannot be computed. test_fn_metrics.py
checks the arithmetic against scikit-learn and numpy on random answers; these
pin the cases random answers rarely hit, each with the value a person would
compute by hand."""
from __future__ import annotations

import math

import pytest

from pipeline_common.metrics import (
    binary_metrics,
    binary_roc_auc,
    classification_metrics,
    decide_gate,
    gate_message,
    gate_threshold,
    metric_fits,
    quantile,
    regression_metrics,
)


# ---------------------------------------------------------------- classification

def test_ratios_are_rounded_to_six_digits():
    got = classification_metrics(["a", "b"], ["a", "a", "a", "b"], ["a", "a", "b", "b"])
    assert got["accuracy"] == 0.75 and got["correct"] == 3 and got["rows"] == 4
    got = classification_metrics(["a", "b"], ["a", "a", "b"], ["a", "b", "b"])
    assert got["accuracy"] == 0.666667
    assert got["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 0.666667, "support": 2}
    assert got["per_class"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": 0.666667, "support": 1}
    assert got["macro_f1"] == 0.666667


def test_a_class_never_predicted_has_no_precision_and_f1_zero():
    got = classification_metrics(["a", "b", "c"], ["a", "b", "b"], ["a", "a", "a"])
    assert got["per_class"]["b"] == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 2}
    # c is neither true nor answered: not scored, so macro F1 averages a and b only.
    assert got["per_class"]["c"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert got["per_class"]["a"]["f1"] == 0.5  # precision 1/3, recall 1
    assert got["macro_f1"] == 0.25
    assert got["confusion_matrix"] == [[1, 0, 0], [2, 0, 0], [0, 0, 0]]


def test_a_class_answered_but_never_true_is_scored_with_f1_zero():
    got = classification_metrics(["a", "b", "c"], ["a", "a"], ["a", "c"])
    assert got["per_class"]["c"] == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0}
    assert got["macro_f1"] == round((2 * 1 * 0.5 / 1.5 + 0.0) / 2, 6)


def test_refused_and_foreign_answers_are_wrong_invalid_and_in_no_column():
    got = classification_metrics(["a", "b"], ["a", "b", "b", "a"], ["a", None, "B", "b"])
    assert got["correct"] == 1 and got["invalid_predictions"] == 2
    assert got["confusion_matrix"] == [[1, 1], [0, 0]]
    assert got["per_class"]["b"]["support"] == 2 and got["per_class"]["b"]["recall"] == 0.0


def test_no_rows_is_zero_accuracy_and_no_macro_f1():
    got = classification_metrics(["a", "b"], [], [])
    assert got["accuracy"] == 0.0 and got["rows"] == 0 and got["macro_f1"] is None
    assert got["labels"] == ["a", "b"] and got["confusion_matrix"] == [[0, 0], [0, 0]]


def test_answers_and_truths_must_pair_up():
    with pytest.raises(ValueError):
        classification_metrics(["a", "b"], ["a", "b"], ["a"])


def test_unknown_true_labels_are_all_named_sorted():
    with pytest.raises(ValueError, match=r"true labels \['x', 'y'\] are not among the manifest's labels \['a', 'b'\]"):
        classification_metrics(["a", "b"], ["y", "a", "x", "y"], ["a"] * 4)


def test_the_labels_list_is_a_copy():
    labels = ["a", "b"]
    got = classification_metrics(labels, ["a"], ["a"])
    got["labels"].append("c")
    assert labels == ["a", "b"]


# ---------------------------------------------------------------- ROC AUC

def test_roc_auc_is_one_plus_tpr_minus_fpr_over_two():
    # negatives n: 4 (one answered p), positives p: 2 (one answered p): (1 + 0.5 - 0.25) / 2.
    truths = ["n", "n", "n", "n", "p", "p"]
    answers = ["n", "n", "n", "p", "p", "n"]
    assert binary_roc_auc(["n", "p"], truths, answers) == 0.625
    # labels[1] is the positive class: swapping the labels swaps TPR and TNR.
    assert binary_roc_auc(["p", "n"], truths, answers) == (1 + 3 / 4 - 1 / 2) / 2


def test_an_invalid_answer_counts_as_the_wrong_class_on_both_sides():
    truths = ["n", "n", "p", "p"]
    assert binary_roc_auc(["n", "p"], truths, [None, "n", None, "p"]) == (1 + 1 / 2 - 1 / 2) / 2
    assert binary_roc_auc(["n", "p"], truths, ["n", "n", "p", "p"]) == 1.0


def test_roc_auc_needs_both_classes_in_the_truth():
    assert binary_roc_auc(["n", "p"], ["p", "p"], ["p", "n"]) is None
    assert binary_roc_auc(["n", "p"], ["n", "n"], ["p", "n"]) is None


@pytest.mark.parametrize("labels", [["a"], ["a", "b", "c"]])
def test_roc_auc_needs_two_labels(labels):
    with pytest.raises(ValueError, match=f"ROC AUC needs two classes, the manifest lists {len(labels)}"):
        binary_roc_auc(labels, ["a"], ["a"])


def test_binary_metrics_name_the_positive_label_and_round_the_auc():
    got = binary_metrics(["n", "p"], ["n", "n", "n", "p", "p", "p"], ["n", "n", "p", "p", "p", "n"])
    assert got["positive_label"] == "p"
    assert got["roc_auc"] == round((1 + 2 / 3 - 1 / 3) / 2, 6) == 0.666667
    assert "balanced accuracy" in got["roc_auc_basis"] and got["accuracy"] == 0.666667


# ---------------------------------------------------------------- regression

def test_quantile_edges():
    assert quantile([3.0], 0.5) == 3.0 and quantile([3.0], 1.0) == 3.0
    assert quantile([1.0, 2.0, 4.0], 0.0) == 1.0 and quantile([1.0, 2.0, 4.0], 1.0) == 4.0
    assert quantile([1.0, 2.0, 4.0], 0.75) == 3.0 and quantile([1.0, 3.0], 0.25) == 1.5
    with pytest.raises(ValueError, match="^no values$"):
        quantile([], 0.5)


def test_regression_summary_by_hand():
    truths = [10.0, 20.0, 30.0, 40.0]
    predictions = [12.0, 20.0, 27.0, 40.0]  # residuals -2, 0, 3, 0 (sorted: -2, 0, 0, 3)
    got = regression_metrics(truths, predictions, [["a"], ["b"], ["c"], ["d"]])
    assert got["rows"] == got["scored_rows"] == 4 and got["invalid_predictions"] == 0
    assert got["rmse"] == round(math.sqrt(13 / 4), 6) and got["mae"] == 1.25
    assert got["label_mean"] == 25.0 and got["label_std"] == round(math.sqrt(125.0), 6)
    assert got["r2"] == round(1 - (13 / 4) / 125.0, 6)
    assert got["baseline_mae"] == 10.0  # median 25: |15|, |5|, |5|, |15|
    assert got["residuals"] == {"mean": 0.25, "quantiles": {"p00": -2.0, "p05": -1.7, "p25": -0.5, "p50": 0.0,
                                                            "p75": 0.75, "p95": 2.55, "p100": 3.0}}
    assert got["largest_errors"][:2] == [
        {"row": 3, "features": ["c"], "truth": 30.0, "predicted": 27.0, "residual": 3.0},
        {"row": 1, "features": ["a"], "truth": 10.0, "predicted": 12.0, "residual": -2.0},
    ]


def test_unanswered_rows_are_counted_and_skipped_keeping_their_row_numbers():
    got = regression_metrics([1.0, 2.0, 5.0], [None, 2.0, 1.0])
    assert got["rows"] == 3 and got["scored_rows"] == 2 and got["invalid_predictions"] == 1
    assert got["largest_errors"][0] == {"row": 3, "features": [], "truth": 5.0, "predicted": 1.0, "residual": 4.0}
    assert got["mae"] == 2.0


def test_only_the_five_largest_errors_are_kept():
    truths = [float(i) for i in range(8)]
    got = regression_metrics(truths, [t + (i if i % 2 else -i) for i, t in enumerate(truths)])
    assert [e["row"] for e in got["largest_errors"]] == [8, 7, 6, 5, 4]


def test_nothing_answered_leaves_every_metric_empty():
    got = regression_metrics([1.0, 2.0], [None, None])
    assert got == {"rows": 2, "scored_rows": 0, "invalid_predictions": 2, "rmse": None, "mae": None, "r2": None,
                   "residuals": None, "largest_errors": [], "label_mean": None, "label_std": None,
                   "baseline_mae": None}


def test_regression_rows_must_pair_up():
    with pytest.raises(ValueError):
        regression_metrics([1.0, 2.0], [1.0])


# ---------------------------------------------------------------- the gate

def test_which_metrics_fit_which_problem():
    assert metric_fits("roc_auc", "binary") and not metric_fits("roc_auc", "multiclass")
    assert metric_fits("accuracy", "multiclass") and metric_fits("mae", "regression")
    assert not metric_fits("r2", "binary") and not metric_fits("f1", "binary")


@pytest.mark.parametrize("kind, metric", [("binary", "accuracy"), ("binary", "roc_auc"), ("multiclass", "macro_f1")])
def test_every_classification_metric_defaults_to_accuracy_threshold(kind, metric):
    assert gate_threshold(kind, metric, None, 0.93, 0.4, {}) == (0.93, "AccuracyThreshold")


def test_a_spec_threshold_is_a_float_from_the_spec():
    threshold, source = gate_threshold("regression", "rmse", 3, 0.93, 0.4, {"label_std": 10.0})
    assert threshold == 3.0 and isinstance(threshold, float) and source == "spec"


def test_regression_defaults_and_their_sources():
    metrics = {"label_std": 2.0, "baseline_mae": 10.0}
    assert gate_threshold("regression", "r2", None, 0.93, 0.75, metrics) == (0.75, "R2Threshold")
    assert gate_threshold("regression", "rmse", None, 0.93, 0.75, metrics) == (
        1.0, "R2Threshold, as RMSE: label std x sqrt(1 - R2Threshold)")
    assert gate_threshold("regression", "mae", None, 0.93, 0.75, metrics) == (
        2.5, "R2Threshold, as MAE: (1 - R2Threshold) x median-answer MAE")
    assert gate_threshold("regression", "rmse", None, 0.93, 0.75, {})[0] is None
    assert gate_threshold("regression", "mae", None, 0.93, 0.75, {})[0] is None


def test_exactly_at_the_threshold_passes_either_way():
    # The gate is "at least" / "at most": a model exactly on the line passes.
    assert decide_gate("multiclass", {"metric": "accuracy", "threshold": 0.75}, {"accuracy": 0.75}, 0.9, 0.5)["passed"]
    assert decide_gate("binary", {"metric": "roc_auc"}, {"roc_auc": 0.9}, 0.9, 0.5)["passed"]
    assert decide_gate("regression", {"metric": "rmse", "threshold": 2.5}, {"rmse": 2.5}, 0.9, 0.5)["passed"]
    assert decide_gate("regression", {"metric": "mae", "threshold": 2.5}, {"mae": 2.5000001}, 0.9, 0.5)["passed"] is False
    assert decide_gate("regression", {"metric": "r2", "threshold": 0.5}, {"r2": 0.4999999}, 0.9, 0.5)["passed"] is False


@pytest.mark.parametrize("quality_gate", [None, "accuracy", [], {}, {"metric": ""}, {"metric": None}])
def test_a_missing_gate_or_metric_judges_by_the_default(quality_gate):
    gate = decide_gate("binary", quality_gate, {"accuracy": 0.8, "roc_auc": 0.99}, 0.9, 0.5)
    assert gate == {"metric": "accuracy", "threshold": 0.9, "threshold_source": "AccuracyThreshold",
                    "higher_is_better": True, "value": 0.8, "passed": False}


def test_the_exact_value_decides_and_the_metric_is_the_fallback():
    gate = decide_gate("multiclass", None, {"accuracy": 0.9, "correct": 9}, 0.9, 0.5, exact={"macro_f1": 0.1})
    assert gate["value"] == 0.9 and gate["passed"] is True
    gate = decide_gate("multiclass", None, {"accuracy": 0.9}, 0.9, 0.5, exact={"accuracy": 0.91234567})
    assert gate["value"] == 0.912346 and gate["passed"] is True


def test_no_value_or_no_threshold_fails():
    assert decide_gate("binary", {"metric": "roc_auc", "threshold": 0.1}, {"roc_auc": None}, 0.9, 0.5)["passed"] is False
    gate = decide_gate("regression", {"metric": "rmse"}, {"rmse": 0.0, "label_std": None}, 0.9, 0.5)
    assert gate["threshold"] is None and gate["passed"] is False


def test_invalid_answers_do_not_fail_a_classification_gate_by_themselves():
    # For classification they already count as wrong answers in the metric.
    gate = decide_gate("multiclass", None, {"accuracy": 0.95, "invalid_predictions": 1}, 0.9, 0.5)
    assert gate["passed"] is True


def test_the_threshold_is_reported_rounded():
    gate = decide_gate("regression", {"metric": "rmse"}, {"rmse": 1.0, "label_std": 2.0}, 0.9, 1 / 3)
    assert gate["threshold"] == round(2.0 * math.sqrt(2 / 3), 6) and gate["passed"] is True


def test_a_misfit_metric_names_the_fitting_ones():
    with pytest.raises(ValueError, match=r"^quality_gate.metric 'r2' does not measure a binary model "
                                         r"\(fitting: accuracy, macro_f1, roc_auc\)$"):
        decide_gate("binary", {"metric": "r2"}, {}, 0.9, 0.5)
    with pytest.raises(ValueError, match=r"\(fitting: rmse, mae, r2\)$"):
        decide_gate("regression", {"metric": "accuracy"}, {}, 0.9, 0.5)


# ---------------------------------------------------------------- what the failure says

def gate(**fields) -> dict:
    return {"metric": "accuracy", "value": 0.5, "threshold": 0.9, "threshold_source": "spec",
            "higher_is_better": True, "passed": False, **fields}


def test_undefined_metrics_say_why_and_what_was_needed():
    assert gate_message(gate(metric="r2", value=None, threshold=0.5, threshold_source="R2Threshold"), "regression", {}) == (
        "QA R-squared is undefined (every held-out label is the same); the gate needs r2 >= 0.5000 "
        "(threshold from R2Threshold)")
    assert gate_message(gate(metric="roc_auc", value=None), "binary", {}) == (
        "QA ROC AUC is undefined (the held-out rows hold one class only); the gate needs roc_auc >= 0.9000 "
        "(threshold from spec)")
    assert gate_message(gate(metric="mae", value=None, higher_is_better=False, threshold=None), "regression", {}) == (
        "QA mae could not be computed; the gate needs mae <= n/a (threshold from spec)")


def test_no_threshold_says_so():
    assert gate_message(gate(metric="rmse", value=3.0, threshold=None, higher_is_better=False,
                             threshold_source="R2Threshold, as RMSE: label std x sqrt(1 - R2Threshold)"),
                        "regression", {}) == (
        "QA rmse is 3.0000 but no threshold could be derived "
        "(threshold from R2Threshold, as RMSE: label std x sqrt(1 - R2Threshold))")


def test_a_regression_metric_that_passes_with_unanswered_rows_names_them():
    metrics = {"invalid_predictions": 2, "rows": 9}
    assert gate_message(gate(metric="mae", value=2.0, threshold=2.0, higher_is_better=False), "regression", metrics) == (
        "QA mae 2.0000 meets the threshold 2.0000 (lower is better, threshold from spec), but "
        "2 of 9 held-out rows got no numeric answer")
    assert gate_message(gate(metric="r2", value=0.5, threshold=0.5), "regression", metrics).startswith(
        "QA r2 0.5000 meets the threshold 0.5000 (higher is better")
    # A metric that misses the line is reported as missing it, unanswered rows or not.
    assert gate_message(gate(metric="r2", value=0.4, threshold=0.5), "regression", metrics) == (
        "QA r2 0.4000 is below the threshold 0.5000 (higher is better; threshold from spec)")
    assert gate_message(gate(metric="mae", value=2.5, threshold=2.0, higher_is_better=False), "regression", metrics) == (
        "QA mae 2.5000 is above the threshold 2.0000 (lower is better; threshold from spec)")


def test_classification_invalid_answers_do_not_change_the_sentence():
    assert gate_message(gate(value=0.9, threshold=0.9), "multiclass", {"invalid_predictions": 3, "rows": 10}) == (
        "QA accuracy 0.9000 is below the threshold 0.9000 (higher is better; threshold from spec)")


def test_large_values_are_shown_in_six_significant_digits():
    message = gate_message(gate(metric="rmse", value=123456.789, threshold=1000.0, higher_is_better=False),
                           "regression", {})
    assert message == "QA rmse 123457 is above the threshold 1000 (lower is better; threshold from spec)"
    message = gate_message(gate(metric="rmse", value=-999.5, threshold=999.99994, higher_is_better=False),
                           "regression", {})
    assert message.startswith("QA rmse -999.5000 is above the threshold 999.9999 ")
