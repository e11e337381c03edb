"""The three judges of a bundle the job wrote: MLeap runtime 0.20.0 on the JVM (what SparkML Serving
3.3 runs), the local Python runtime, and Spark's own PipelineModel built from the same spec and
what the run learned (manifest `learned`). Rows are what a client sends: one string per field."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pandas as pd
from pyspark.ml.functions import vector_to_array

from dataset_spec import parse_spec
from localmode.serving.mleap import MleapBundle, dense_values
from preprocessing.dates import part_cols, spark_parts
from preprocessing.features import build_preprocess_model
from preprocessing.labels import build_postprocess_model


def unpack(tarball: Path, target: Path) -> Path:
    with tarfile.open(tarball) as tar:
        tar.extractall(target)
    return target


def local_outputs(bundle_dir: Path, schema: dict, rows: list[dict]) -> list:
    """The local runtime's answer per row: the output value, or {"error": message}."""
    from localmode.serving.mleap import MleapError

    fields = tuple((f["name"], f["type"]) for f in schema["input"])
    program = MleapBundle(bundle_dir).program(fields, schema["output"]["name"])
    answers = []
    for row in rows:
        try:
            value = program.run([row[name] for name, _ in fields])
        except MleapError as exc:
            answers.append({"error": str(exc)})
            continue
        answers.append(dense_values(value) if schema["output"].get("struct") == "vector" else value)
    return answers


def spark_frame(spark, spec: dict, rows: list[dict]):
    """The rows as Spark sees a client's strings: numeric fields cast to double by Spark ("" and
    "null" are null, as MLeap's String -> Double cast makes them), a date's parts by Spark's date
    functions (null when not a date), categorical fields as given."""
    from pyspark.sql import functions as F

    layout = parse_spec(spec)
    names = [c.name for c in layout.features]
    frame = spark.createDataFrame(pd.DataFrame([[r[n] for n in names] + [i] for i, r in enumerate(rows)],
                                               columns=names + ["row_id"], dtype=object))
    # A date's parts by Spark's own calendar functions, not the bundle's arithmetic.
    columns = []
    for c in layout.features:
        if c.type == "numeric":
            columns.append(F.col(c.name).cast("double").alias(c.name))
        elif c.type == "date":
            columns += [part.alias(name) for part, name in zip(spark_parts(F.col(c.name), c.date_format), part_cols(c.name))]
        else:
            columns.append(F.col(c.name))
    return frame.select(*columns, "row_id")


def spark_features(spark, spec: dict, rows: list[dict], learned: dict | None = None) -> list[list[float]]:
    frame = spark_frame(spark, spec, rows)
    model = build_preprocess_model(spark, spec, learned=learned)
    out = model.transform(frame).select("row_id", vector_to_array("features").alias("v")).orderBy("row_id").collect()
    return [list(r.v) for r in out]


def spark_postprocess(spark, spec: dict, label_values: list[str], inputs: list[float]) -> list[str]:
    frame = spark.createDataFrame(pd.DataFrame({"label": inputs, "row_id": range(len(inputs))}))
    model = build_postprocess_model(spec, label_values)
    return [r.predicted_label for r in model.transform(frame).orderBy("row_id").collect()]


def preprocess_three_ways(run, tmp_path: Path, jvm, spark, spec: dict, rows: list[dict]) -> list[list[float]]:
    """The preprocess bundle on `rows` in the JVM runtime and the local runtime, and Spark's transform:
    asserts all three agree field for field and returns the vectors."""
    model = run.out / "model" / "preprocess"
    schema = json.loads((model / "schema.json").read_text())
    bundle = unpack(model / "model.tar.gz", tmp_path / f"preprocess-{len(list(tmp_path.iterdir()))}")
    # The bundle's inputs are positional: the users' names, or c1..cN for a wide table (dataset_spec.serving).
    names = [c.name for c in parse_spec(spec).features]
    served = [dict(zip([f["name"] for f in schema["input"]], [r[n] for n in names])) for r in rows]
    from_jvm = jvm.transform(bundle, model / "schema.json", served)
    from_local = local_outputs(bundle, schema, served)
    from_spark = spark_features(spark, spec, rows, run.manifest.get("learned"))
    mismatches = [(r, a, b, c) for r, a, b, c in zip(rows, from_jvm, from_local, from_spark)
                  if not (a == {"output": b} and b == c)]
    assert not mismatches, mismatches[:3]
    return from_spark


def postprocess_three_ways(run, tmp_path: Path, jvm, spark, spec: dict, inputs: list[float]) -> list[str]:
    model = run.out / "model" / "postprocess"
    schema = json.loads((model / "schema.json").read_text())
    bundle = unpack(model / "model.tar.gz", tmp_path / f"postprocess-{len(list(tmp_path.iterdir()))}")
    rows = [{"label": value} for value in inputs]
    from_jvm = [a.get("output", a) for a in jvm.transform(bundle, model / "schema.json", rows)]
    from_local = local_outputs(bundle, schema, rows)
    from_spark = spark_postprocess(spark, spec, run.manifest["label_values"], inputs)
    assert from_jvm == from_local == from_spark
    return from_spark


def held_out_rows(run) -> list[dict]:
    """The test split's rows as a client sends them: the feature fields by name."""
    names = run.manifest["feature_names"]
    return [dict(zip(names, r[:-1])) for r in run.csv_rows("test")]
