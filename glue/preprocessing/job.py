"""The run: validate, split, fit, write (the layout of a run's outputs: docs/architecture.md, "One
run's artifacts"). glue/preprocess.py, the Glue entry script, calls main(); local mode calls run()
in-process with its own SparkSession."""
from __future__ import annotations

import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

from dataset_spec import Layout, parse_spec
from dataset_spec.serving import FEATURES_COL, LABEL_INDEX_COL
from preprocessing.bundle import bundle_columns, plan_bundles, sparkml_schemas
from preprocessing.features import JOIN_ABOVE_VALUES, Learned, fit_learned, indexer_labels, learned_positions
from preprocessing.labels import resolve_labels
from preprocessing.lines import index_name, value_index
from preprocessing.mleap import BUNDLE_FORMAT_VERSION, MLEAP_SERVING_RUNTIME, bundle_tarball
from preprocessing.options import JobOptions, parse_options
from preprocessing.split import SPLIT_FRACTIONS, assign_split, split_counts
from preprocessing.store import make_store
from preprocessing.validate import validate

LOG = logging.getLogger("preprocess")


def run(spark, options: JobOptions) -> dict:
    """Validate, split, fit, write. Returns the manifest (already written last under the run prefix).

    Spark runs jobs submitted from several threads at once. Building the pipelines (Python and
    py4j calls, no Spark job) overlaps the validation pass when the spec alone defines them, and the
    three split writes run together: on small inputs most of a Spark job's time is the driver
    planning it, which then overlaps another job's tasks. Nothing is written before both the
    validation and the bundle plan succeeded, and a failure waits for every write to stop before the
    run's files are removed.
    """
    started = time.monotonic()
    layout = parse_spec(options.spec)
    store = make_store(options.output)
    # HotSpot does not compile a method over 8000 bytes of bytecode (DontCompileHugeMethods), and the
    # whole-stage code parsing a wide file (many columns) grows past that and then runs interpreted.
    # At this limit Spark compiles such a stage per expression instead, in smaller methods, as its
    # docs suggest for HotSpot (spark.sql.codegen.hugeMethodLimit). Measured: validating 1M rows of
    # 13 columns (datasets/diabetes.json) took 66 s interpreted and 41-47 s this way; car's stage
    # (7,786 bytes) is below the limit and unaffected.
    previous_limit = spark.conf.get(HUGE_METHOD_LIMIT, None) if spark is not None else None
    if spark is not None:
        spark.conf.set(HUGE_METHOD_LIMIT, "8000")
    try:
        return _run(spark, options, layout, store, started)
    finally:
        if spark is not None:
            if previous_limit is None:
                spark.conf.unset(HUGE_METHOD_LIMIT)
            else:
                spark.conf.set(HUGE_METHOD_LIMIT, previous_limit)


HUGE_METHOD_LIMIT = "spark.sql.codegen.hugeMethodLimit"


def _run(spark, options: JobOptions, layout: Layout, store, started: float) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="preprocess") as pool:
        early = None
        if not layout.data_dependent and (layout.label.values is not None or not layout.classification):
            early = pool.submit(plan_bundles, spark, layout)
        store.begin()
        try:
            manifest = _build(spark, options, layout, store, early, pool, started)
            store.commit(manifest)
        except BaseException:
            store.abort()
            raise
    LOG.info("run %s: wrote %s", options.run_id, store.uri("manifest.json"))
    return manifest


def _build(spark, options: JobOptions, layout: Layout, store, early, pool, started: float) -> dict:
    """`early`: the future of plan_bundles when the spec alone defines the pipelines, else None;
    `pool`: where the statistics and the split writes run."""
    from concurrent.futures import wait
    from pyspark.sql import functions as F

    label = layout.label
    features = layout.features
    feature_names = [c.name for c in features]
    # The manifest is the only success marker: no _SUCCESS files next to the data.
    spark.conf.set("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")

    try:
        valid = validate(spark, layout, options.input, options.seed)
    finally:
        if early is not None:
            wait([early])  # no Spark call of this run may outlive it
    try:
        label_counts = valid.label_counts
        label_values = resolve_labels(layout, label_counts, options.input)
        problem_type = layout.problem_type(label_values)
        LOG.info("validated %d rows in %.1fs: %s", sum(label_counts.values()), time.monotonic() - started,
                 label_counts if layout.classification else "regression")
        sizes = split_counts(label_counts)
        # Cheap to recompute for each use: it reads the cached lines and ranks only boundary buckets.
        split_rows = assign_split(valid, layout, sizes)
        learned = Learned()
        if early is not None:
            plan = early.result()  # UnsupportedStage surfaces here, before anything is written
        else:
            if layout.data_dependent:
                learned = fit_learned(spark, layout, split_rows.filter(F.col("split") == "train"), pool, options.input)
            plan = plan_bundles(spark, layout, label_values, learned)
        LOG.info("pipelines planned in %.1fs", time.monotonic() - started)

        rows = learned_positions(spark, split_rows, layout, learned)
        # Keyed by the bundle's input names (plan.inputs), which may differ from the users'.
        bundle_name = dict(zip(feature_names, plan.inputs))
        indexed = {}
        sources = {}
        for c in features:
            if c.type in ("numeric", "date"):
                # A number, or a date's text (null when missing or not a date), which the bundle's nodes read.
                sources[bundle_name[c.name]] = F.col(index_name(c.name))
            elif c.values is not None:
                indexed[bundle_name[c.name]] = (F.col(index_name(c.name)), list(c.values))
            else:
                labels = indexer_labels(c, learned)[0]
                position = (value_index(F.col(index_name(c.name)), labels) if len(labels) <= JOIN_ABOVE_VALUES
                            else F.col(f"{c.name}__position"))
                indexed[bundle_name[c.name]] = (position, labels)
        if layout.classification:
            label_indexed = ((F.col(index_name(label.name)), list(label.values)) if label.values is not None
                             else (value_index(F.col(index_name(label.name)), label_values), label_values))
            [label_column] = bundle_columns(plan.label_index, [label.name], LABEL_INDEX_COL,
                                            {label.name: label_indexed})
        else:
            label_column = F.col(index_name(label.name))
        slots = bundle_columns(plan.preprocess, list(plan.inputs), FEATURES_COL, indexed, sources)
        # One-hot values are exactly 0 or 1: written as integers, which XGBoost reads as the same
        # floats the SparkML container sends ("1.0"), in half the bytes and a quarter less time.
        training_columns = [label_column, *slots]
        outputs = {"train": training_columns, "validation": training_columns,
                   "test": [F.col(n) for n in feature_names] + [F.col(label.name)]}
        writes = [pool.submit(rows.filter(F.col("split") == name).select(*selected).write.mode("overwrite").csv,
                              store.spark_uri(f"data/{name}/")) for name, selected in outputs.items()]
        wait(writes)
        for write in writes:
            write.result()
        LOG.info("wrote splits in %.1fs", time.monotonic() - started)

        schemas = sparkml_schemas(layout)
        with tempfile.TemporaryDirectory(prefix="mleap-bundles-") as tmp:
            workdir = Path(tmp)
            store.put_file("model/preprocess/model.tar.gz", str(bundle_tarball("preprocess", plan.preprocess, workdir)))
            if plan.postprocess is not None:
                store.put_file("model/postprocess/model.tar.gz",
                               str(bundle_tarball("postprocess", plan.postprocess, workdir)))
        store.put_json("model/preprocess/schema.json", schemas["preprocess"])
        if schemas["postprocess"] is not None:
            store.put_json("model/postprocess/schema.json", schemas["postprocess"])
    finally:
        valid.release()

    split_sizes = {name: sum(s[name] for s in sizes.values()) for name in SPLIT_FRACTIONS}
    classification = layout.classification
    return {
        "run_id": options.run_id,
        "dataset": layout.name,
        "input_uri": options.input,
        "spec_uri": options.spec_source or None,
        "spec": layout.spec,
        "problem_type": problem_type,
        "label_name": label.name,
        "label_values": label_values,
        "num_class": len(label_values) if classification else None,
        "binary_threshold": layout.binary_threshold if problem_type == "binary" else None,
        "feature_names": feature_names,
        "feature_types": {c.name: c.type for c in features},
        "feature_width": plan.width,
        "feature_slots": plan.slots,
        "learned": learned.to_json(layout),
        "missing_cells": valid.missing_cells,
        "quality_gate": dict(layout.quality_gate),
        "rows": {"total": sum(label_counts.values()), **split_sizes},
        "rows_by_label": ({value: {"total": label_counts[value], **sizes[value]} for value in label_values}
                          if classification else None),
        "uris": {
            "train": store.uri("data/train/"),
            "validation": store.uri("data/validation/"),
            "test": store.uri("data/test/"),
            "preprocess_model": store.uri("model/preprocess/model.tar.gz"),
            "preprocess_schema": store.uri("model/preprocess/schema.json"),
            "postprocess_model": store.uri("model/postprocess/model.tar.gz") if classification else None,
            "postprocess_schema": store.uri("model/postprocess/schema.json") if classification else None,
            "training_output": store.uri("training/"),
            "manifest": store.uri("manifest.json"),
        },
        "schemas": schemas,
        "versions": {
            "spark": spark.version,
            # The bundle format written (what MLeap runtime 0.20.0 reads), by the job's own writer (preprocessing.mleap).
            "mleap": BUNDLE_FORMAT_VERSION,
            "mleap_serving_runtime": MLEAP_SERVING_RUNTIME,
            "python": platform.python_version(),
        },
        "seed": options.seed,
        "split": dict(SPLIT_FRACTIONS),
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_options(list(sys.argv[1:] if argv is None else argv))
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(f"preprocess-{options.run_id}").getOrCreate()
    manifest = run(spark, options)
    print(json.dumps({"manifest": manifest["uris"]["manifest"], "rows": manifest["rows"]}))
    return 0
