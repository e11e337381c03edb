"""The quality gate `spec draft` proposes: from evidence on the file itself, not the stack's 0.95.

A quick model (XGBoost with the pipeline's own depth and learning rate) is cross-validated on the
file's rows (5 seeded folds, stratified by class), scored with the gate's metric. The threshold is
that score less a margin for what a different held-out split can cost: twice the folds' spread,
twice the sampling error of a metric measured on the pipeline's test split (15% of the rows), and at
least 0.02. So a learnable table passes its first run, and the champion comparison holds later runs
to production.

A table with no signal must still fail: when the proposal does not clear the baseline (the
majority class's share for accuracy, 0 for R-squared: predicting the mean) by 0.02, the gate is set
0.05 above the baseline instead, and the note says so.
"""
from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass

FOLDS = 5
SEED = 20261207
# The pipeline's held-out test share (glue/preprocessing/split.py SPLIT_FRACTIONS) and its model's settings
# (functions/prepare_training: max_depth 4, eta 0.2).
TEST_SHARE = 0.15
PARAMS = {"max_depth": 4, "eta": 0.2, "nthread": 2, "verbosity": 0}
ROUNDS = 100
MAX_ROWS = 50_000  # a uniform sample beyond this: the estimate needs no more, and the draft stays quick
MIN_MARGIN = 0.02
NO_SIGNAL_LIFT = 0.02
ABOVE_BASELINE = 0.05


@dataclass
class GateEvidence:
    metric: str
    threshold: float
    score: float
    spread: float
    baseline: float
    rows: int
    signal: bool

    def note(self) -> str:
        where = (f"5-fold cross-validated quick model on {self.rows} rows: {self.metric} {self.score:.3f} "
                 f"(folds' spread {self.spread:.3f}; baseline {self.baseline:.3f})")
        if self.signal:
            return (f"quality_gate.threshold {self.threshold:.2f} from a {where}, less a margin for another held-out "
                    "split; raise it once you know what the model must reach")
        return (f"quality_gate.threshold {self.threshold:.2f}: the {where} is no better than the baseline, so the gate "
                "sits above it and the run will fail until the data carries signal")


def _rows(path, spec: dict) -> list[list[str]]:
    from localmode.precheck import open_text

    with open_text(path) as handle:
        rows = [r for r in csv.reader(handle) if r and "".join(r).strip()]
    return rows[1:] if spec.get("header") == "yes" else rows


def _design(rows: list[list[str]], spec: dict):
    """(features matrix with NaN for missing, label vector, classes or None) from the drafted spec's columns."""
    import numpy as np

    from dataset_spec.dates import python_parts

    markers = set(spec.get("missing_values") or ["NA", "N/A", "null", "?"]) | {""}
    columns = spec["columns"]
    label_index = next(i for i, c in enumerate(columns) if c["name"] == spec["label"])
    blocks = []
    for index, column in enumerate(columns):
        if index == label_index or column["type"] == "ignore":
            continue
        cells = [row[index].strip() for row in rows]
        if column["type"] == "numeric":
            blocks.append(np.array([[float(v)] if v not in markers else [math.nan] for v in cells], dtype=float))
            continue
        if column["type"] == "date":
            parts = [python_parts(v, column.get("format", "iso")) if v not in markers else None for v in cells]
            blocks.append(np.array([p if p is not None else [math.nan] * 4 for p in parts], dtype=float))
            continue
        values = column.get("values")
        if values is None:  # learned: the most frequent, as the job learns them from its training split
            counts: dict[str, int] = {}
            for v in cells:
                if v not in markers:
                    counts[v] = counts.get(v, 0) + 1
            values = sorted(counts, key=lambda v: (-counts[v], v))[:column.get("max_categories", 20)]
        slot = {v: i for i, v in enumerate(values)}
        block = np.zeros((len(cells), len(values)))
        for r, v in enumerate(cells):
            if v in slot:
                block[r, slot[v]] = 1.0
        blocks.append(block)
    features = np.hstack(blocks) if blocks else np.zeros((len(rows), 1))
    label_cells = [row[label_index].strip() for row in rows]
    label = columns[label_index]
    if label["type"] == "numeric":
        return features, np.array([float(v) for v in label_cells]), None
    classes = label["values"]
    code = {v: i for i, v in enumerate(classes)}
    return features, np.array([code[v] for v in label_cells]), classes


def _folds(labels, classes, rng: random.Random) -> list[int]:
    """Each row's fold: per class (or over all rows, for regression) a seeded shuffle dealt round-robin."""
    groups: dict = {}
    for index, value in enumerate(labels):
        groups.setdefault(int(value) if classes is not None else 0, []).append(index)
    fold = [0] * len(labels)
    for members in groups.values():
        rng.shuffle(members)
        for position, index in enumerate(members):
            fold[index] = position % FOLDS
    return fold


def _score(metric: str, truth, predicted) -> float:
    import numpy as np

    if metric == "accuracy":
        return float(np.mean(truth == predicted))
    total = float(np.sum((truth - truth.mean()) ** 2))
    return 1.0 - float(np.sum((truth - predicted) ** 2)) / total if total else 0.0


def propose_gate(path, spec: dict) -> GateEvidence | None:
    """The evidence-based gate for a drafted spec, or None for a metric it does not propose (only the drafts'
    own accuracy and r2)."""
    import numpy as np
    import xgboost as xgb

    metric = spec["quality_gate"]["metric"]
    if metric not in ("accuracy", "r2"):
        return None
    rng = random.Random(SEED)
    rows = _rows(path, spec)
    if len(rows) > MAX_ROWS:
        rows = rng.sample(rows, MAX_ROWS)
    features, labels, classes = _design(rows, spec)
    fold = np.array(_folds(labels, classes, rng))
    if classes is None:
        params = {**PARAMS, "objective": "reg:squarederror"}
    elif len(classes) == 2:
        params = {**PARAMS, "objective": "binary:logistic"}
    else:
        params = {**PARAMS, "objective": "multi:softmax", "num_class": len(classes)}
    scores = []
    for k in range(FOLDS):
        train, held = fold != k, fold == k
        if not held.any() or not train.any():
            continue
        booster = xgb.train(params, xgb.DMatrix(features[train], label=labels[train]), ROUNDS)
        predicted = booster.predict(xgb.DMatrix(features[held]))
        if classes is not None and len(classes) == 2:
            predicted = (predicted >= spec.get("binary_threshold", 0.5)).astype(int)
        scores.append(_score(metric, labels[held], predicted))
    score, spread = float(np.mean(scores)), float(np.std(scores))
    if metric == "accuracy":
        baseline = float(np.max(np.bincount(labels.astype(int)))) / len(labels)
        sampling = math.sqrt(max(score * (1 - score), 1e-9) / max(1.0, TEST_SHARE * len(labels)))
    else:
        baseline, sampling = 0.0, 0.0
    margin = max(2 * spread, 2 * sampling, MIN_MARGIN)
    # Two decimals, rounded away from the score; round(..., 9) first so 0.55 does not become 0.56.
    threshold = math.floor(round((score - margin) * 100, 9)) / 100
    signal = threshold >= baseline + NO_SIGNAL_LIFT
    if not signal:
        threshold = min(1.0, math.ceil(round((baseline + ABOVE_BASELINE) * 100, 9)) / 100)
    return GateEvidence(metric, threshold, score, spread, baseline, len(rows), signal)
