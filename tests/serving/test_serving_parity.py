"""Parity: the Python MLeap runtime against MLeap runtime 0.20.0 on the JVM (what
SparkML Serving 3.3 runs) and against Spark, on every held-out test row of the
real Glue job's bundles; and the fast tree evaluator against xgboost itself."""
from __future__ import annotations

import warnings

import pandas as pd
import pytest
import xgboost
from pyspark.ml.functions import vector_to_array

from dataset_spec import parse_spec
from dataset_spec.spec import spec_columns
from localmode.serving.mleap import MleapBundle, RowSkipped, dense_values
from preprocessing.bundle import bundle_nodes
from preprocessing.features import build_preprocess_model
from preprocessing.labels import build_postprocess_model
from preprocessing.mleap import write_bundle

pytestmark = pytest.mark.spark


def python_features(artifacts, rows: list[list[str]]) -> list[list[float]]:
    bundle = MleapBundle(artifacts.preprocess_dir)
    program = bundle.program(tuple((name, "string") for name in artifacts.feature_names), "features")
    return [dense_values(program.run(list(row))) for row in rows]


def spark_features(spark, spec, rows: list[list[str]]) -> list[list[float]]:
    names = [f.name for f in parse_spec(spec).features]
    frame = spark.createDataFrame(pd.DataFrame([[*row, i] for i, row in enumerate(rows)], columns=names + ["row_id"]))
    model = build_preprocess_model(spark, spec, frame)
    result = model.transform(frame).select("row_id", vector_to_array("features").alias("v")).orderBy("row_id")
    return [list(r.v) for r in result.collect()]


def unseen_rows(spec) -> list[list[str]]:
    """Every feature in turn replaced by a value training never saw, plus an all-empty row."""
    known = [c["values"][0] for c in spec["columns"] if c["name"] != spec["label"]]
    rows = [known[:i] + ["never-seen"] + known[i + 1:] for i in range(len(known))]
    return rows + [[""] * len(known), ["VHIGH"] + known[1:]]


def test_preprocess_matches_the_jvm_runtime_and_spark_on_every_test_row(
        serving_artifacts, jvm_runtime, schema_files, spark, dataset_spec):
    rows = [row[:-1] for row in serving_artifacts.test_rows] + unseen_rows(dataset_spec)
    assert len(serving_artifacts.test_rows) == serving_artifacts.manifest["rows"]["test"] > 100
    names = serving_artifacts.feature_names

    ours = python_features(serving_artifacts, rows)
    jvm = jvm_runtime.transform(serving_artifacts.preprocess_dir, schema_files["preprocess"],
                                [dict(zip(names, row)) for row in rows])
    spark_rows = spark_features(spark, dataset_spec, rows)

    assert [{"output": v} for v in ours] == jvm
    assert ours == spark_rows
    assert all(len(v) == serving_artifacts.manifest["feature_width"] for v in ours)
    # An unseen value leaves its feature's one-hot block empty (StringIndexer keep, encoder dropLast).
    assert sum(ours[len(serving_artifacts.test_rows)]) == len(names) - 1


def test_postprocess_matches_the_jvm_runtime_and_spark(serving_artifacts, jvm_runtime, schema_files, spark,
                                                       dataset_spec):
    labels = serving_artifacts.manifest["label_values"]
    indices = [float(labels.index(row[-1])) for row in serving_artifacts.test_rows] + [float(i) for i in range(len(labels))]
    program = MleapBundle(serving_artifacts.postprocess_dir).program((("label", "double"),), "predicted_label")
    ours = [program.run([index]) for index in indices]

    jvm = jvm_runtime.transform(serving_artifacts.postprocess_dir, schema_files["postprocess"],
                                [{"label": index} for index in indices])
    frame = spark.createDataFrame(pd.DataFrame({"label": indices, "row_id": range(len(indices))}))
    spark_labels = [r.predicted_label for r in
                    build_postprocess_model(dataset_spec).transform(frame).orderBy("row_id").collect()]

    assert [{"output": label} for label in ours] == jvm
    assert ours == spark_labels == [row[-1] for row in serving_artifacts.test_rows] + labels


def test_whole_pipeline_matches_a_pipeline_of_the_reference_engines_on_every_test_row(
        serving_artifacts, pipeline, jvm_runtime, schema_files):
    """Python containers end to end == JVM MLeap preprocess -> xgboost.predict -> JVM MLeap postprocess."""
    names = serving_artifacts.feature_names
    rows = [row[:-1] for row in serving_artifacts.test_rows]
    jvm_features = jvm_runtime.transform(serving_artifacts.preprocess_dir, schema_files["preprocess"],
                                         [dict(zip(names, row)) for row in rows])
    booster = xgboost.Booster()
    booster.load_model(str(serving_artifacts.xgboost_dir / "xgboost-model"))
    predicted = booster.predict(xgboost.DMatrix([answer["output"] for answer in jvm_features]),
                                iteration_range=(0, booster.best_iteration + 1))
    jvm_labels = jvm_runtime.transform(serving_artifacts.postprocess_dir, schema_files["postprocess"],
                                       [{"label": float(p)} for p in predicted])

    ours = [pipeline.predict_csv_line(",".join(row)) for row in rows]
    assert ours == [answer["output"] for answer in jvm_labels]
    accuracy = sum(p == row[-1] for p, row in zip(ours, serving_artifacts.test_rows)) / len(rows)
    assert accuracy >= 0.95


def test_compiled_trees_give_xgboosts_prediction_on_every_test_row(serving_artifacts, containers):
    _, xgboost_container, _ = containers
    assert xgboost_container.engine == "compiled"
    features = python_features(serving_artifacts, [row[:-1] for row in serving_artifacts.test_rows])
    booster = xgboost_container.booster
    expected = booster.predict(xgboost.DMatrix(features), iteration_range=(0, booster.best_iteration + 1)).tolist()
    assert [xgboost_container.forest.predict_row(f) for f in features] == expected
    # What the real container calls: Booster.predict(ntree_limit=best_ntree_limit).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        legacy = booster.predict(xgboost.DMatrix(features), ntree_limit=booster.best_ntree_limit).tolist()
    assert legacy == expected
    # The same through the container's CSV path, fast and slow (xgboost) engines alike.
    slow = type(xgboost_container)(serving_artifacts.xgboost_dir, {}, engine="xgboost")
    for vector, want in zip(features, expected):
        body = ",".join(repr(v) for v in vector).encode()
        assert xgboost_container.invoke(body, "text/csv", None).body == slow.invoke(body, "text/csv", None).body \
            == f"{want}\n".encode()


# --- other handleInvalid / dropLast settings than the Glue job's -----------------------------

VARIANTS = {
    "indexer keep, encoder keep, keep last": ("keep", "keep", False),
    "indexer keep, encoder keep, drop last": ("keep", "keep", True),
    "indexer error, encoder error, drop last": ("error", "error", True),
    "indexer skip, encoder error, drop last": ("skip", "error", True),
}


@pytest.fixture(scope="module")
def variant_bundles(spark, car_data, dataset_spec, tmp_path_factory):
    """Feature pipelines fitted by Spark (frequency-ordered labels) and written by the Glue job's
    own bundle writer, one per setting."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
    from pyspark.sql.types import StringType, StructField, StructType

    names = [f.name for f in parse_spec(dataset_spec).features]
    columns = spec_columns(dataset_spec)
    frame = spark.read.csv(str(car_data), schema=StructType([StructField(c, StringType()) for c in columns]))
    root = tmp_path_factory.mktemp("variants")
    bundles = {}
    for number, (title, (indexer, encoder, drop_last)) in enumerate(VARIANTS.items()):
        stages = [StringIndexer(inputCol=n, outputCol=f"{n}_i", handleInvalid=indexer) for n in names]
        stages.append(OneHotEncoder(inputCols=[f"{n}_i" for n in names], outputCols=[f"{n}_v" for n in names],
                                    handleInvalid=encoder, dropLast=drop_last))
        stages.append(VectorAssembler(inputCols=[f"{n}_v" for n in names], outputCol="features"))
        model = Pipeline(stages=stages).fit(frame)
        nodes, _ = bundle_nodes(model, names)
        write_bundle(f"v{number}", nodes, root / f"v{number}")
        bundles[title] = (root / f"v{number}", model)
    return bundles


@pytest.mark.parametrize("title", list(VARIANTS))
def test_handle_invalid_variants_match_the_jvm_runtime_including_errors(
        title, variant_bundles, serving_artifacts, schema_files, jvm_runtime, dataset_spec, car_data):
    bundle_dir, _ = variant_bundles[title]
    names = serving_artifacts.feature_names
    rows = [line.strip().split(",")[:-1] for line in open(car_data, encoding="utf-8") if line.strip()]
    rows += unseen_rows(dataset_spec)
    program = MleapBundle(bundle_dir).program(tuple((n, "string") for n in names), "features")
    ours = []
    for row in rows:
        try:
            ours.append({"output": dense_values(program.run(list(row)))})
        except RowSkipped:
            ours.append({"error": "IndexOutOfBoundsException: 0"})  # what collecting the empty frame raises
        except Exception as exc:  # noqa: BLE001 - the message is what is compared
            ours.append({"error": str(exc)})
    jvm = jvm_runtime.transform(bundle_dir, schema_files["preprocess"], [dict(zip(names, row)) for row in rows])
    # The CLI prefixes the exception class; the message itself must be MLeap's.
    jvm = [a if "output" in a or a["error"].startswith("IndexOutOfBounds") else {"error": a["error"].split(": ", 1)[1]}
           for a in jvm]
    assert ours == jvm
    errors = sum("error" in a for a in ours)
    assert errors == (0 if VARIANTS[title][0] == "keep" else len(unseen_rows(dataset_spec)))


@pytest.mark.parametrize("title", [t for t, v in VARIANTS.items() if v[0] == "keep"])
def test_handle_invalid_keep_variants_match_spark(title, variant_bundles, serving_artifacts, spark, dataset_spec):
    bundle_dir, model = variant_bundles[title]
    names = serving_artifacts.feature_names
    rows = [row[:-1] for row in serving_artifacts.test_rows] + unseen_rows(dataset_spec)
    frame = spark.createDataFrame(pd.DataFrame([[*r, i] for i, r in enumerate(rows)], columns=names + ["row_id"]))
    expected = [list(r.v) for r in model.transform(frame).select("row_id", vector_to_array("features").alias("v"))
                .orderBy("row_id").collect()]
    program = MleapBundle(bundle_dir).program(tuple((n, "string") for n in names), "features")
    assert [dense_values(program.run(list(r))) for r in rows] == expected
