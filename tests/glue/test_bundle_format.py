"""The job's own MLeap bundle writer, judged by MLeap runtime 0.20.0 (the tests/jvm CLI, what
SparkML Serving 3.3 runs), Spark's own transform and the local Python runtime, field for field;
and against the bundles the previous writer (mleap-spark 0.16.0) wrote, kept as a fixture."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from bundle_parity import held_out_rows, local_outputs, preprocess_three_ways, spark_features, spark_postprocess, unpack

from dataset_spec import parse_spec
from localmode import REPO_ROOT
from localmode.serving.jvm_runtime import MleapJvmRuntime
from preprocessing.bundle import bundle_columns, bundle_nodes, plan_bundles
from preprocessing.errors import UnsupportedStage
from preprocessing.features import build_preprocess_model
from preprocessing.job import run
from preprocessing.lines import index_name, value_index
from preprocessing.options import JobOptions

pytestmark = pytest.mark.spark

PREVIOUS = REPO_ROOT / "tests" / "fixtures" / "bundles" / "mleap-spark-0.16.0"
PARTS = ("preprocess", "postprocess")


@pytest.fixture(scope="module")
def jvm() -> MleapJvmRuntime:
    return MleapJvmRuntime()


def three_way(run_dir: Path, tmp_path: Path, jvm, spark, spec, rows: list[dict]) -> list[list[float]]:
    return preprocess_three_ways(SimpleNamespace(out=run_dir, manifest={}), tmp_path, jvm, spark, spec, rows)


def unseen_variants(spec: dict, rows: list[dict]) -> list[dict]:
    """Each row once more with one feature (in turn) set to a value training never saw: new words,
    empty, letter case, spaces, a number, non-ASCII, the word null."""
    odd = [lambda v: "never-seen", lambda v: "", str.upper, lambda v: f" {v}", lambda v: f"{v} ", lambda v: "42",
           lambda v: f"ü{v}", lambda v: "null", lambda v: f"{v}x"]
    features = [c for c in spec["columns"] if c["name"] != spec["label"]]
    variants = []
    for i, row in enumerate(rows):
        feature = features[i % len(features)]
        value = odd[i % len(odd)](row[feature["name"]])
        if value in feature["values"]:
            value = f"{value}?"  # an upper-cased value that happens to be known stays unseen
        variants.append({**row, feature["name"]: value})
    return variants


# --- the job's bundles, three ways --------------------------------------------------------------

def test_car_data_every_held_out_row_and_its_unseen_variant_agree_three_ways(
        car_run, jvm, spark, dataset_spec, tmp_path):
    rows = held_out_rows(car_run)
    assert len(rows) == car_run.manifest["rows"]["test"] == 260
    variants = unseen_variants(dataset_spec, rows)
    vectors = three_way(car_run.out, tmp_path, jvm, spark, dataset_spec, rows + variants)
    width = car_run.manifest["feature_width"]
    features = len(car_run.manifest["feature_names"])
    assert all(len(v) == width for v in vectors)
    # Known rows: one 1.0 per feature; a row with one unseen value: that feature's block is all zeros.
    assert [sum(v) for v in vectors] == [features] * len(rows) + [features - 1] * len(variants)


def test_synthetic_file_every_held_out_row_and_its_unseen_variant_agree_three_ways(
        run_job, jvm, spark, dataset_spec, tmp_path):
    from bench.synthetic import write_synthetic_csv

    data = write_synthetic_csv(dataset_spec, 3000, tmp_path / "synthetic.csv", seed=11)
    run = run_job(data, tmp_path / "run", seed=5)
    rows = held_out_rows(run)
    assert len(rows) == run.manifest["rows"]["test"] > 400
    variants = unseen_variants(dataset_spec, rows)
    vectors = three_way(run.out, tmp_path, jvm, spark, dataset_spec, rows + variants)
    assert [sum(v) for v in vectors[len(rows):]] == [len(run.manifest["feature_names"]) - 1] * len(variants)

    # The postprocess bundle: every label index, and the held-out rows' true labels, three ways.
    labels = run.manifest["label_values"]
    indices = [float(labels.index(r[-1])) for r in run.csv_rows("test")] + [float(i) for i in range(len(labels))]
    model = run.out / "model" / "postprocess"
    bundle = unpack(model / "model.tar.gz", tmp_path / "postprocess")
    schema = json.loads((model / "schema.json").read_text())
    expected = [r[-1] for r in run.csv_rows("test")] + labels
    assert [a.get("output") for a in jvm.transform(bundle, model / "schema.json", [{"label": i} for i in indices])] == expected
    assert local_outputs(bundle, schema, [{"label": i} for i in indices]) == expected
    assert spark_postprocess(spark, dataset_spec, labels, indices) == expected


# --- against the previous writer -------------------------------------------------------------------

@pytest.mark.parametrize("part", PARTS)
def test_previous_writers_bundle_still_loads_and_gives_its_saved_outputs(part, jvm):
    """A known-good bundle (mleap-spark 0.16.0, from PySpark 3.3.4) in MLeap runtime 0.20.0 and in
    the local runtime: the saved Spark outputs, including rows with unseen values."""
    bundle, schema_path = PREVIOUS / part / "bundle", PREVIOUS / part / "schema.json"
    expected = json.loads((PREVIOUS / part / "expected.json").read_text())
    rows = [case["input"] for case in expected]
    want = [case["features" if part == "preprocess" else "predicted_label"] for case in expected]
    assert [a.get("output") for a in jvm.transform(bundle, schema_path, rows)] == want
    assert local_outputs(bundle, json.loads(schema_path.read_text()), rows) == want


def test_previous_writers_saved_rows_give_the_same_vectors_from_the_new_bundle(car_run, jvm, spark, dataset_spec,
                                                                               tmp_path):
    expected = json.loads((PREVIOUS / "preprocess" / "expected.json").read_text())
    rows = [case["input"] for case in expected]
    assert three_way(car_run.out, tmp_path, jvm, spark, dataset_spec, rows) == [c["features"] for c in expected]


def _normalized(bundle_dir: Path) -> list[tuple]:
    """A bundle as (op, input sockets, output sockets, attributes) in pipeline order, node names left out.
    StringIndexer labels are compared by value: 0.16.0 wrote them as `labels` (the Spark 2 form),
    a Spark 3 writer as `labels_length` + `labels_array_0`; runtime 0.20.0 reads both."""
    root = json.loads((bundle_dir / "root" / "model.json").read_text())
    nodes = []
    for name in root["attributes"]["nodes"]["string"]:
        model = json.loads((bundle_dir / "root" / f"{name}.node" / "model.json").read_text())
        shape = json.loads((bundle_dir / "root" / f"{name}.node" / "node.json").read_text())["shape"]
        attributes = dict(model["attributes"])
        if model["op"] == "string_indexer" and "labels_length" in attributes:
            assert attributes.pop("labels_length") == {"int": 1}
            attributes["labels"] = attributes.pop("labels_array_0")
        nodes.append((model["op"], shape["inputs"], shape["outputs"], attributes))
    return nodes


@pytest.mark.parametrize("part", PARTS)
def test_new_bundle_says_what_the_previous_writer_said(part, car_run, tmp_path):
    new = unpack(car_run.out / "model" / part / "model.tar.gz", tmp_path / part)
    old = PREVIOUS / part / "bundle"
    assert _normalized(new) == _normalized(old)
    info = json.loads((new / "bundle.json").read_text())
    assert set(info) == set(json.loads((old / "bundle.json").read_text()))
    assert info["format"] == "json" and info["version"] == "0.20.0"
    uuid.UUID(info["uid"])
    # Every node of the pipeline, and nothing else, is under root/.
    listed = json.loads((new / "root" / "model.json").read_text())["attributes"]["nodes"]["string"]
    assert sorted(p.name for p in (new / "root").iterdir() if p.is_dir()) == sorted(f"{n}.node" for n in listed)


# --- stages the writer does not know ---------------------------------------------------------------

def test_an_unknown_stage_fails_the_job_by_name_before_anything_is_written(spark, dataset_spec, car_data, tmp_path,
                                                                           monkeypatch):
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    real = build_preprocess_model

    def with_extra_stage(spark, spec, sample=None, learned=None):
        fitted = real(spark, spec, sample, learned)
        return PipelineModel(stages=[*fitted.stages, SQLTransformer(statement="SELECT * FROM __THIS__")])

    # plan_bundles (preprocessing.bundle) builds the pipeline.
    monkeypatch.setattr("preprocessing.bundle.build_preprocess_model", with_extra_stage)
    out = tmp_path / "run"
    options = JobOptions(input=str(car_data), output=str(out), run_id="r", spec=dataset_spec)
    with pytest.raises(UnsupportedStage, match="SQLTransformer"):
        run(spark, options)
    assert list(tmp_path.iterdir()) == []


def test_stages_runtime_0_20_would_serve_differently_are_refused(spark, dataset_spec):
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    features = parse_spec(dataset_spec).features
    names = [f.name for f in features]
    frame = spark.createDataFrame(pd.DataFrame([[f.values[0] for f in features]], columns=names))
    multi = StringIndexer(inputCols=names[:2], outputCols=["a", "b"]).fit(frame)
    with pytest.raises(UnsupportedStage, match="several input columns"):
        bundle_nodes(PipelineModel(stages=[multi]), names)
    lenient = VectorAssembler(inputCols=names[:1], outputCol="v", handleInvalid="skip")
    with pytest.raises(UnsupportedStage, match="handleInvalid='skip'"):
        bundle_nodes(PipelineModel(stages=[lenient]), names)
    with pytest.raises(UnsupportedStage, match="'nope'"):
        bundle_nodes(PipelineModel(stages=[VectorAssembler(inputCols=["nope"], outputCol="v")]), names)


# --- the training CSV columns, computed from the same nodes --------------------------------------

def test_training_columns_from_the_bundle_nodes_are_sparks_transform(car_run, spark, dataset_spec):
    """What the job writes for training is the preprocess bundle applied in Spark SQL: both ways the
    job can compute it (from the strings, or from the value positions validation found) give
    Spark's own PipelineModel output, for known and unseen values alike."""
    from pyspark.sql import functions as F

    spec = dataset_spec
    features = parse_spec(spec).features
    names = [f.name for f in features]
    rows = held_out_rows(car_run)
    rows = rows + unseen_variants(spec, rows)
    frame = spark.createDataFrame(pd.DataFrame([[r[n] for n in names] + [i] for i, r in enumerate(rows)],
                                               columns=names + ["row_id"]))
    frame = frame.select("*", *[value_index(F.col(f.name), list(f.values)).alias(index_name(f.name))
                                for f in features])
    plan = plan_bundles(spark, spec)
    from_strings = bundle_columns(plan.preprocess, names, "features")
    indexed = {f.name: (F.col(index_name(f.name)), list(f.values)) for f in features}
    from_indices = bundle_columns(plan.preprocess, names, "features", indexed)
    got = frame.orderBy("row_id").select(F.array(*from_strings).alias("a"), F.array(*from_indices).alias("b")).collect()
    expected = spark_features(spark, spec, rows)
    assert [[float(x) for x in r.a] for r in got] == expected
    assert [[float(x) for x in r.b] for r in got] == expected
