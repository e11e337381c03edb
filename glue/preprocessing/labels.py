"""The label. Classification indexes the classes in the spec's order, or for learned
classes in text order (numeric order when every class is a number); the
postprocess bundle maps XGBoost's answer (multi:softmax: the class index;
binary:logistic: the probability of the second class, cut at the spec's
binary_threshold by a Binarizer) back to the class with IndexToString, input
`label` (double) -> output `predicted_label` (string). Regression trains on the
number and has no postprocess bundle: XGBoost's answer is the prediction.
"""
from __future__ import annotations

import math
import re

from dataset_spec import NUMBER_PATTERN, Layout, as_layout
from dataset_spec.serving import LABEL_INDEX_COL, POSTPROCESS_INPUT, POSTPROCESS_OUTPUT
from dataset_spec.spec import MAX_LEARNED_CLASSES
from preprocessing.errors import InvalidInputData

# Binary postprocess: the Binarizer's 0/1 between the probability and the label string.
POSTPROCESS_CLASS = "class__index"


def build_label_indexer(spec, label_values: list[str] | None = None):
    from pyspark.ml.feature import StringIndexerModel

    layout = as_layout(spec)
    labels = list(label_values if label_values is not None else layout.label.values)
    return StringIndexerModel.from_labels(labels, inputCol=layout.label.name, outputCol=LABEL_INDEX_COL,
                                          handleInvalid="error")


def probability_cut(threshold: float) -> float:
    """The Binarizer threshold for "probability >= threshold is the second class": Spark's and
    MLeap's Binarizer test `value > threshold`, and for doubles `p > nextafter(t, -inf)` is `p >= t`."""
    return math.nextafter(threshold, -math.inf)


def build_postprocess_model(spec, label_values: list[str] | None = None):
    """XGBoost's answer -> the label string; None for regression (the answer is the number).

    multiclass: IndexToString of the class index (multi:softmax). binary: Binarizer at the spec's
    threshold (binary:logistic answers the probability of label_values[1]), then IndexToString."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import Binarizer, IndexToString

    layout = as_layout(spec)
    if not layout.classification:
        return None
    labels = list(label_values if label_values is not None else layout.label.values)
    if len(labels) == 2:
        return PipelineModel(stages=[
            Binarizer(threshold=probability_cut(layout.binary_threshold), inputCol=POSTPROCESS_INPUT,
                      outputCol=POSTPROCESS_CLASS),
            IndexToString(inputCol=POSTPROCESS_CLASS, outputCol=POSTPROCESS_OUTPUT, labels=labels)])
    return PipelineModel(stages=[IndexToString(inputCol=POSTPROCESS_INPUT, outputCol=POSTPROCESS_OUTPUT, labels=labels)])


def natural_order(values) -> list[str]:
    """Learned classes in index order: by value when every class is a number, else by text."""
    values = list(values)
    if all(re.fullmatch(NUMBER_PATTERN, v) for v in values):
        return sorted(values, key=lambda v: (float(v), v))
    return sorted(values)


def resolve_labels(layout: Layout, label_counts: dict[str, int], input_uri: str) -> list[str] | None:
    """The classes in index order (None for regression); refuses data that contradicts the spec."""
    label = layout.label
    if not layout.classification:
        return None
    if label.values is not None:
        return list(label.values)
    values = natural_order(label_counts)

    def refuse(text: str):
        raise InvalidInputData(f"Input data rejected, nothing was trained ({input_uri}): {text}.",
                               [{"kind": "label_classes", "count": len(values), "lines": [], "message": text}])

    if len(values) < 2:
        refuse(f"the {label.name!r} label has a single value ({', '.join(values)}): a classifier needs two or more")
    if len(values) > MAX_LEARNED_CLASSES:
        refuse(f"the {label.name!r} label has {len(values)} distinct values, more than {MAX_LEARNED_CLASSES} "
               "classes: list them in the spec if that many classes are meant, or make the label numeric "
               "(regression)")
    if len(values) != 2 and layout.quality_gate["metric"] == "roc_auc":
        refuse(f"the quality gate's metric roc_auc needs two classes, but the {label.name!r} label has "
               f"{len(values)} ({', '.join(values[:10])}{', ...' if len(values) > 10 else ''})")
    if len(values) != 2 and layout.binary_threshold_given:
        refuse(f"binary_threshold applies to two classes, but the {label.name!r} label has {len(values)}")
    return values
