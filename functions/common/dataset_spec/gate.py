"""The quality gate's metrics: which problem types each measures and which way is better.

The spec's `quality_gate` names one (dataset_spec.spec checks that it fits the label), the Glue job
writes it to the manifest, and the QA step measures and compares it (pipeline_common.metrics).
"""
from __future__ import annotations

PROBLEM_TYPES = ("binary", "multiclass", "regression")
# metric -> (problem types it measures, higher is better)
GATE_METRICS = {
    "accuracy": (("binary", "multiclass"), True),
    "macro_f1": (("binary", "multiclass"), True),
    "roc_auc": (("binary",), True),
    "rmse": (("regression",), False),
    "mae": (("regression",), False),
    "r2": (("regression",), True),
}
# A spec without quality_gate.metric is judged by these. A learned label's class count is known only
# from the data, after the spec is checked: binary and multiclass must share their default.
DEFAULT_GATE_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2"}


def spec_default_metric(numeric_label: bool) -> str:
    """The metric the spec check writes into a gate that names none: regression for a numeric label,
    else the one every classification shares."""
    return DEFAULT_GATE_METRIC["regression" if numeric_label else "multiclass"]
