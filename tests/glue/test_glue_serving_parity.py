"""The bundles the job wrote, loaded by MLeap runtime 0.20.0 (the SparkML Serving 3.3
runtime) through its Java API, must give what Spark itself computes. (Every held-out row,
three ways with the local runtime too: test_bundle_format.py.)"""
from __future__ import annotations

import pandas as pd
import pytest
from pyspark.ml.functions import vector_to_array

from dataset_spec import parse_spec
from preprocessing.features import build_preprocess_model
from preprocessing.labels import build_postprocess_model

pytestmark = pytest.mark.spark


def spark_features(spark, spec, rows: list[dict]) -> list[list[float]]:
    names = [f.name for f in parse_spec(spec).features]
    frame = spark.createDataFrame(pd.DataFrame([{**r, "row_id": i} for i, r in enumerate(rows)], columns=names + ["row_id"]))
    model = build_preprocess_model(spark, spec, frame)
    out = model.transform(frame).select("row_id", vector_to_array("features").alias("v")).orderBy("row_id").collect()
    return [list(r.v) for r in out]


def spark_decoded(spark, spec, indices: list[float]) -> list[str]:
    frame = spark.createDataFrame(pd.DataFrame({"label": indices, "row_id": range(len(indices))}))
    out = build_postprocess_model(spec).transform(frame).orderBy("row_id").collect()
    return [r.predicted_label for r in out]


def test_postprocess_bundle_decodes_every_test_label_like_spark(car_run, spark, dataset_spec, mleap_runtime):
    labels = car_run.manifest["label_values"]
    true_labels = [r[-1] for r in car_run.csv_rows("test")]
    indices = [float(labels.index(label)) for label in true_labels]
    answers = mleap_runtime.transform(car_run.out / "model" / "postprocess", [{"label": i} for i in indices])
    assert [a.get("output") for a in answers] == true_labels
    assert spark_decoded(spark, dataset_spec, indices) == true_labels
    # Every class, including ones the test split might lack.
    assert [a["output"] for a in mleap_runtime.transform(car_run.out / "model" / "postprocess",
                                                         [{"label": float(i)} for i in range(len(labels))])] == labels


def test_unseen_category_values_give_a_valid_vector_in_spark_and_in_mleap(car_run, spark, dataset_spec, mleap_runtime):
    features = [{"name": f.name, "values": list(f.values)} for f in parse_spec(dataset_spec).features]
    names = [f["name"] for f in features]
    known = {f["name"]: f["values"][0] for f in features}
    rows = [{**known, name: "never-seen"} for name in names] + [{name: "" for name in names}, {**known}]
    answers = mleap_runtime.transform(car_run.out / "model" / "preprocess", rows)
    expected = spark_features(spark, dataset_spec, rows)
    width = car_run.manifest["feature_width"]
    assert [a.get("output") for a in answers] == expected
    offsets = [sum(len(f["values"]) for f in features[:i]) for i in range(len(features))]
    for i, (name, vector) in enumerate(zip(names, expected[:len(names)])):
        assert len(vector) == width
        block = vector[offsets[i]:offsets[i] + len(features[i]["values"])]
        # The unseen value's block is all zeros; every other feature still one-hot.
        assert block == [0.0] * len(block), name
        assert sum(vector) == len(features) - 1
    assert expected[len(names)] == [0.0] * width  # every value unseen
    assert sum(expected[-1]) == len(features)  # the known row, for contrast


def test_runtime_cli_answers_row_errors_in_place_and_benchmarks(car_run, mleap_runtime):
    """The CLI's protocol as the serving tests and benchmarks rely on it."""
    model = car_run.out / "model" / "preprocess"
    good = dict(zip(car_run.manifest["feature_names"], car_run.csv_rows("test")[0][:-1]))
    partial = {k: v for k, v in good.items() if k != "doors"}
    answers = mleap_runtime.transform(model, [good, partial, good])
    assert answers[0] == answers[2] and len(answers[0]["output"]) == car_run.manifest["feature_width"]
    assert answers[1] == {"error": "IllegalArgumentException: missing input field doors"}

    stats = mleap_runtime.bench(model, good, iterations=50)
    assert stats["calls"] == 50 and 0 < stats["p50_us"] <= stats["p99_us"]
