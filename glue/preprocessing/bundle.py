"""What the serving containers get: the fitted pipelines turned into bundle nodes (with the same
nodes' Spark expressions for the training CSVs) and the SAGEMAKER_SPARKML_SCHEMA documents."""
from __future__ import annotations

from dataclasses import dataclass, replace

from dataset_spec import Layout, as_layout
from dataset_spec.serving import FEATURES_COL, POSTPROCESS_INPUT, POSTPROCESS_OUTPUT, preprocess_schema, serving_inputs
from preprocessing.dates import WRITTEN_OPS, date_nodes, part_col
from preprocessing.errors import UnsupportedStage
from preprocessing.features import Learned, build_preprocess_model, feature_slots
from preprocessing.labels import build_label_indexer, build_postprocess_model
from preprocessing.mleap import SCALAR, BundleNode, ColumnShape
from preprocessing.ops import BUNDLE_OPS


def _flat_stages(model) -> list:
    stages = []
    for stage in model.stages:
        stages.extend(_flat_stages(stage) if type(stage).__name__ == "PipelineModel" else [stage])
    return stages


def bundle_nodes(model, inputs: list[str]) -> tuple[list[BundleNode], dict[str, ColumnShape]]:
    """The nodes of a fitted PipelineModel whose input columns are the scalars `inputs`, and every column's shape.

    Raises UnsupportedStage naming every stage the writer does not know, before looking at any of them.
    """
    stages = _flat_stages(model)
    unknown = sorted({type(s).__name__ for s in stages if type(s).__name__ not in BUNDLE_OPS})
    if unknown:
        raise UnsupportedStage(f"the MLeap bundle writer has no op for Spark stage(s) {', '.join(unknown)} "
                               f"(supported: {', '.join(sorted(BUNDLE_OPS))}); nothing was written")
    shapes = {name: SCALAR for name in inputs}
    nodes = []
    for stage in stages:
        node, added = BUNDLE_OPS[type(stage).__name__].node(stage, shapes)
        nodes.extend(node if isinstance(node, list) else [node])
        shapes.update(added)
    return nodes, shapes


def bundle_columns(nodes: list[BundleNode], inputs: list[str], output: str, indexed: dict | None = None,
                   sources: dict | None = None) -> list:
    """The slots of `output` as Spark column expressions over the input columns. `indexed`: input
    column -> (column of each value's position in `labels`, labels), when that is already known;
    `sources`: input column -> the expression to read it from (default: the column of that name)."""
    from pyspark.sql import functions as F

    twins = {**{op.name: op.columns for op in BUNDLE_OPS.values()}, **WRITTEN_OPS}
    columns = {name: [(sources or {}).get(name, F.col(name))] for name in inputs}
    for node in nodes:
        if twins[node.op] is None:
            raise UnsupportedStage(f"{node.op} {node.name} has no Spark expression")
        columns.update(twins[node.op](node, columns, indexed or {}))
    return columns[output]


@dataclass(frozen=True)
class BundlePlan:
    """The serving pipelines as bundle nodes, and the training columns computed from the same nodes."""

    preprocess: list[BundleNode]
    postprocess: list[BundleNode] | None  # None: regression (XGBoost's answer is the prediction)
    label_index: list[BundleNode] | None  # None: regression (the label is the number)
    width: int
    slots: list[str]
    inputs: tuple  # the preprocess bundle's input columns, one per feature in order (serving_inputs)


def serving_layout(layout: Layout, learned: Learned) -> tuple[Layout, Learned]:
    """The layout and what training taught, with each feature under its name inside the bundle
    (dataset_spec.serving.serving_inputs): the users' names, or c1..cN when those do not fit."""
    features = [c.name for c in layout.features]
    rename = dict(zip(features, serving_inputs(features).names))
    if all(old == new for old, new in rename.items()):
        return layout, learned
    columns = tuple(replace(c, name=rename[c.name]) if c is not layout.label and c.type != "ignore" else c
                    for c in layout.columns)

    def renamed(name: str) -> str:
        # A date's surrogates are its parts' (`<column>__<part>`); a spec's names never hold "__".
        column, _, part = name.partition("__")
        return part_col(rename[column], part) if part else rename[name]

    return (replace(layout, columns=columns),
            Learned({rename[n]: v for n, v in learned.categories.items()},
                    {renamed(n): v for n, v in learned.surrogates.items()}))


def plan_bundles(spark, spec, label_values: list[str] | None = None, learned: Learned | None = None) -> BundlePlan:
    """Builds the pipelines (from the spec and what training taught, no data pass) and turns them into
    bundle nodes. `label_values`: the classes in index order (default: the spec's listed values).

    Raises UnsupportedStage for a stage the writer does not know: run() calls this before it writes anything.
    """
    from pyspark.ml import PipelineModel

    layout = as_layout(spec)
    learned = learned or Learned()
    served, served_learned = serving_layout(layout, learned)
    inputs = tuple(c.name for c in served.features)
    preprocess = build_preprocess_model(spark, served, learned=served_learned)
    # A date's parts come first, from nodes the writer builds itself; the Spark pipeline reads the parts.
    date_parts = [n for c in served.features if c.type == "date" for n in date_nodes(c.name, c.date_format)]
    pre_nodes, pre_shapes = bundle_nodes(preprocess, list(inputs) + [n.outputs[0][1] for n in date_parts])
    pre_nodes = date_parts + pre_nodes
    post_nodes = label_nodes = None
    if layout.classification:
        labels = list(label_values if label_values is not None else layout.label.values)
        post_nodes, _ = bundle_nodes(build_postprocess_model(layout, labels), [POSTPROCESS_INPUT])
        label_nodes, _ = bundle_nodes(PipelineModel(stages=[build_label_indexer(layout, labels)]), [layout.label.name])
    width = pre_shapes[FEATURES_COL].size
    slots = feature_slots(layout, learned)
    # The manifest documents the vector slot by slot (feature_slots).
    if width != len(slots):
        raise RuntimeError(f"feature vector width {width} differs from the {len(slots)} slots the spec describes")
    return BundlePlan(pre_nodes, post_nodes, label_nodes, width, slots, inputs)


def sparkml_schemas(spec) -> dict[str, dict | None]:
    """The SAGEMAKER_SPARKML_SCHEMA documents of the serving containers (postprocess: None for regression).

    The preprocess schema names the bundle's inputs (serving_inputs). Every feature is a string
    field, numbers included: SparkML Serving parses a `double` field with
    `new Double(text)`, which refuses an empty field, while MLeap casts a string field to the
    Imputer's nullable double with "" and "null" as null (Casting.scala), which the Imputer fills in.
    """
    layout = as_layout(spec)
    schemas = {
        "preprocess": preprocess_schema(list(serving_inputs([c.name for c in layout.features]).names)),
        "postprocess": None,
    }
    if layout.classification:
        schemas["postprocess"] = {
            "input": [{"name": POSTPROCESS_INPUT, "type": "double"}],
            "output": {"name": POSTPROCESS_OUTPUT, "type": "string"},
        }
    return schemas
