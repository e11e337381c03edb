"""The bundle ops: for each Spark stage the writer knows, its MLeap node (the JSON MLeap runtime
0.20.0 loads) and, next to it, the same node as Spark SQL column expressions.

The node: a function of the fitted stage and the shapes of the columns seen so far, returning the
node (op name, attributes, sockets) and the shapes of the columns it adds. The Spark twin: the
training CSVs are the preprocess bundle applied to the training rows. Computing them from the
bundle's own nodes keeps training and serving the same by construction, and plain column
expressions are what Spark optimizes best: a PipelineModel.transform re-runs per write (Spark treats
StringIndexerModel's UDF as non-deterministic, so nothing is pushed through it), costs a Python
round trip per stage, and builds a vector per row only to take it apart again. Each column is a
list of "slots" (a scalar has one, a vector one per element). Ops that serve only (postprocess)
have no twin.

To support another Spark stage, write its two functions here and add it to BUNDLE_OPS. A stage
without an entry fails the job by its class name before anything is written (bundle_nodes is called
before the first write).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from preprocessing.errors import UnsupportedStage
from preprocessing.mleap import (MLEAP_SERVING_RUNTIME, SCALAR, BundleNode, ColumnShape, value_boolean, value_double,
                                 value_int, value_list, value_string)


def _input_shape(shapes: dict, stage, column: str) -> ColumnShape:
    if column not in shapes:
        raise UnsupportedStage(f"{type(stage).__name__} {stage.uid} reads column {column!r}, which is neither a "
                               "pipeline input nor written by an earlier stage")
    return shapes[column]


def _invalid(node: BundleNode, what):
    from pyspark.sql import functions as F

    return F.raise_error(F.concat(F.lit(f"{node.op} {node.name}: "), what))


def _string_indexer_node(stage, shapes: dict):
    if stage.isSet(stage.inputCols) or len(stage.labelsArray) != 1:
        # StringIndexerOp 0.20.0 reads labels_length == 1 only: one indexer per column.
        raise UnsupportedStage(f"StringIndexerModel {stage.uid} has several input columns; MLeap runtime "
                               f"{MLEAP_SERVING_RUNTIME} loads single-column StringIndexers only")
    source, target = stage.getInputCol(), stage.getOutputCol()
    _input_shape(shapes, stage, source)
    attributes = {
        "labels_length": value_int(1),
        "labels_array_0": value_list("string", stage.labelsArray[0]),
        "handle_invalid": value_string(stage.getHandleInvalid()),
    }
    return (BundleNode(stage.uid, "string_indexer", attributes, [("input", source)], [("output", target)]),
            {target: SCALAR})


def _string_indexer_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    from pyspark.sql import functions as F

    [source] = columns[node.inputs[0][1]]
    labels = node.attributes["labels_array_0"]["string"]
    handle_invalid = node.attributes["handle_invalid"]["string"]
    if handle_invalid == "skip":
        raise UnsupportedStage(f"StringIndexer {node.name} skips rows: training rows would differ from the input rows")
    known = indexed.get(node.inputs[0][1])
    if known is not None and list(known[1]) == list(labels):
        # Validation already found each value's position in this very list (null: not in it).
        index = known[0].cast("int")
        fallback = F.lit(len(labels)) if handle_invalid == "keep" else _invalid(node, F.lit("Unseen label"))
        return {node.outputs[0][1]: [F.coalesce(index, fallback)]}
    source = source.cast("string")
    index = F.when(source == labels[0], F.lit(0))
    for i, label in enumerate(labels[1:], start=1):
        index = index.when(source == label, F.lit(i))
    fallback = F.lit(len(labels)) if handle_invalid == "keep" else _invalid(
        node, F.concat(F.lit("Unseen label: "), F.coalesce(source, F.lit("null"))))
    return {node.outputs[0][1]: [index.otherwise(fallback)]}


def _one_hot_encoder_node(stage, shapes: dict):
    sources = stage.getInputCols() if stage.isSet(stage.inputCols) else [stage.getInputCol()]
    targets = stage.getOutputCols() if stage.isSet(stage.outputCols) else [stage.getOutputCol()]
    for source in sources:
        _input_shape(shapes, stage, source)
    sizes = [int(n) for n in stage.categorySizes]
    handle_invalid = stage.getHandleInvalid()
    drop_last = stage.getDropLast()
    # Spark's and MLeap's OneHotEncoderModel alike: "keep" adds a slot for invalid values, dropLast removes one.
    widths = [n + (handle_invalid == "keep") - drop_last for n in sizes]
    attributes = {
        "category_sizes": value_list("int", sizes),
        "drop_last": value_boolean(drop_last),
        "handle_invalid": value_string(handle_invalid),
    }
    node = BundleNode(stage.uid, "one_hot_encoder", attributes,
                      [(f"input{i}", c) for i, c in enumerate(sources)], [(f"output{i}", c) for i, c in enumerate(targets)])
    return node, {target: ColumnShape(size=width) for target, width in zip(targets, widths)}


def _one_hot_encoder_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    from pyspark.sql import functions as F

    sizes = node.attributes["category_sizes"]["int"]
    keep = node.attributes["handle_invalid"]["string"] == "keep"
    drop_last = node.attributes["drop_last"]["boolean"]
    added = {}
    for (_, source), (_, target), size in zip(node.inputs, node.outputs, sizes):
        [index] = columns[source]
        width = size + keep - drop_last
        if keep:
            index = F.when((index >= 0) & (index < size), index).otherwise(F.lit(size))
        else:
            index = F.when((index >= 0) & (index < size), index).otherwise(
                _invalid(node, F.concat(F.lit("invalid index "), index.cast("string"))))
        added[target] = [(index == j).cast("int") for j in range(width)]
    return added


def _vector_assembler_node(stage, shapes: dict):
    if stage.getHandleInvalid() != "error":
        # MLeap's VectorAssembler has no handleInvalid: "skip"/"keep" would serve differently than Spark trains.
        raise UnsupportedStage(f"VectorAssembler {stage.uid} has handleInvalid={stage.getHandleInvalid()!r}; "
                               f"MLeap runtime {MLEAP_SERVING_RUNTIME} only assembles like 'error'")
    sources = stage.getInputCols()
    input_shapes = [_input_shape(shapes, stage, c) for c in sources]
    attributes = {"input_shapes": value_list("data_shape", [s.to_json() for s in input_shapes])}
    width = sum(1 if s.size is None else s.size for s in input_shapes)
    node = BundleNode(stage.uid, "vector_assembler", attributes,
                      [(f"input{i}", c) for i, c in enumerate(sources)], [("output", stage.getOutputCol())])
    return node, {stage.getOutputCol(): ColumnShape(size=width)}


def _vector_assembler_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    return {node.outputs[0][1]: [slot for _, source in node.inputs for slot in columns[source]]}


def _index_to_string_node(stage, shapes: dict):
    source, target = stage.getInputCol(), stage.getOutputCol()
    _input_shape(shapes, stage, source)
    if not stage.isSet(stage.labels) or not stage.getLabels():
        # Spark would read the labels from the input column's metadata, which a serving request has none of.
        raise UnsupportedStage(f"IndexToString {stage.uid} has no explicit labels")
    attributes = {
        "labels": value_list("string", stage.getLabels()),
        # What mleap-spark wrote for this stage (the 0.16.0 fixture); the serving input is one double per row.
        "input_shape": {"data_shape": ColumnShape(nullable=False).to_json()},
    }
    return (BundleNode(stage.uid, "reverse_string_indexer", attributes, [("input", source)], [("output", target)]),
            {target: SCALAR})


def _imputer_node(stage, shapes: dict):
    """One `imputer` node per column: MLeap 0.20.0's ImputerOp is single-column (input -> output)."""
    sources = stage.getInputCols() if stage.isSet(stage.inputCols) else [stage.getInputCol()]
    targets = stage.getOutputCols() if stage.isSet(stage.outputCols) else [stage.getOutputCol()]
    for source in sources:
        _input_shape(shapes, stage, source)
    missing = stage.getMissingValue()
    if not math.isnan(missing):
        # Spark then passes NaN through as a value, MLeap's ImputerModel always fills NaN in: they would differ.
        raise UnsupportedStage(f"ImputerModel {stage.uid} has missingValue={missing}; only NaN (the default) "
                               f"serves the same in MLeap runtime {MLEAP_SERVING_RUNTIME}")
    [row] = stage.surrogateDF.collect()
    nodes = []
    for i, (source, target) in enumerate(zip(sources, targets)):
        surrogate = float(row[source])
        if not math.isfinite(surrogate):
            raise UnsupportedStage(f"ImputerModel {stage.uid}: the surrogate of {source!r} is {surrogate}")
        attributes = {
            "surrogate_value": value_double(surrogate),
            "strategy": value_string(stage.getStrategy()),
            # The serving field is a nullable string: "" arrives as null, which a nullable input fills in.
            "nullable_input": value_boolean(True),
        }
        nodes.append(BundleNode(f"{stage.uid}_{i}", "imputer", attributes, [("input", source)], [("output", target)]))
    return nodes, {target: SCALAR for target in targets}


def _imputer_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    from pyspark.sql import functions as F

    [source] = columns[node.inputs[0][1]]
    surrogate = node.attributes["surrogate_value"]["double"]
    value = source.cast("double")
    # ImputerModel (Spark and MLeap alike): null and NaN are missing.
    return {node.outputs[0][1]: [F.when(value.isNull() | F.isnan(value), F.lit(surrogate)).otherwise(value)]}


def _bucketizer_node(stage, shapes: dict):
    if stage.isSet(stage.splitsArray) or stage.isSet(stage.inputCols):
        raise UnsupportedStage(f"Bucketizer {stage.uid} has several input columns; MLeap runtime "
                               f"{MLEAP_SERVING_RUNTIME} loads single-column Bucketizers only")
    if stage.getHandleInvalid() == "skip":
        raise UnsupportedStage(f"Bucketizer {stage.uid} skips rows: training rows would differ from the input rows")
    splits = [float(s) for s in stage.getSplits()]
    if not all(math.isfinite(s) for s in splits):
        # A JSON bundle cannot hold infinity (BucketizerOp restores NaN ends, which JSON cannot hold either).
        raise UnsupportedStage(f"Bucketizer {stage.uid} has infinite splits, which a JSON bundle cannot hold")
    source, target = stage.getInputCol(), stage.getOutputCol()
    _input_shape(shapes, stage, source)
    attributes = {"splits": value_list("double", splits), "handle_invalid": value_string(stage.getHandleInvalid())}
    return (BundleNode(stage.uid, "bucketizer", attributes, [("input", source)], [("output", target)]),
            {target: SCALAR})


def _bucketizer_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    from pyspark.sql import functions as F

    [source] = columns[node.inputs[0][1]]
    splits = node.attributes["splits"]["double"]
    keep = node.attributes["handle_invalid"]["string"] == "keep"
    value = source.cast("double")
    # Bucketizer.binarySearchForBuckets: [s_i, s_i+1) is bucket i, the last split belongs to the last bucket.
    bucket = F.when(value == splits[-1], F.lit(float(len(splits) - 2)))
    for i in range(len(splits) - 1):
        bucket = bucket.when((value >= splits[i]) & (value < splits[i + 1]), F.lit(float(i)))
    nan = F.lit(float(len(splits) - 1)) if keep else _invalid(node, F.lit("Bucketizer encountered NaN value"))
    bucket = bucket.when(F.isnan(value), nan).otherwise(
        _invalid(node, F.concat(F.lit("Feature value "), value.cast("string"), F.lit(" out of Bucketizer bounds"))))
    return {node.outputs[0][1]: [bucket]}


def _binarizer_node(stage, shapes: dict):
    if stage.isSet(stage.inputCols):
        # BinarizerOp 0.20.0: "Multi-column Binarizer not supported yet".
        raise UnsupportedStage(f"Binarizer {stage.uid} has several input columns; MLeap runtime "
                               f"{MLEAP_SERVING_RUNTIME} loads single-column Binarizers only")
    source, target = stage.getInputCol(), stage.getOutputCol()
    shape = _input_shape(shapes, stage, source)
    if shape.size is not None:
        raise UnsupportedStage(f"Binarizer {stage.uid} reads a vector; the bundle writer handles scalars only")
    attributes = {
        "threshold": value_double(stage.getThreshold()),
        # BinarizerOp reads a single data shape under this (plural) name.
        "input_shapes": {"data_shape": ColumnShape(nullable=False).to_json()},
    }
    return (BundleNode(stage.uid, "binarizer", attributes, [("input", source)], [("output", target)]),
            {target: SCALAR})


@dataclass(frozen=True)
class BundleOp:
    name: str  # the MLeap op name its nodes carry
    # (fitted stage, shapes so far) -> (BundleNode or a list of them, shapes of the columns it adds)
    node: object
    # (BundleNode, slots so far, indexed) -> slots of the columns it adds; None: serving only
    columns: object = None


# Spark stage class name -> its op.
BUNDLE_OPS = {
    "StringIndexerModel": BundleOp("string_indexer", _string_indexer_node, _string_indexer_columns),
    "OneHotEncoderModel": BundleOp("one_hot_encoder", _one_hot_encoder_node, _one_hot_encoder_columns),
    "VectorAssembler": BundleOp("vector_assembler", _vector_assembler_node, _vector_assembler_columns),
    "IndexToString": BundleOp("reverse_string_indexer", _index_to_string_node),
    "ImputerModel": BundleOp("imputer", _imputer_node, _imputer_columns),
    "Bucketizer": BundleOp("bucketizer", _bucketizer_node, _bucketizer_columns),
    "Binarizer": BundleOp("binarizer", _binarizer_node),
}
