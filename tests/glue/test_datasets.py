"""The project's three test datasets, one per label type (localmode/datasets.py, datasets/<name>.json),
through the job: every held-out row, and variants of them with missing numbers, rare and never-seen
categories, give the same vector in MLeap runtime 0.20.0 (the serving runtime), the local runtime
and Spark; the postprocess bundle answers like Spark; the written training rows are the pipeline
applied to the input rows; and what the pipeline learned comes from the training split only."""
from __future__ import annotations

import collections
import csv
import json
import math

import pytest
from bundle_parity import held_out_rows, postprocess_three_ways, preprocess_three_ways, spark_frame
from pyspark.ml.functions import vector_to_array

from localmode import datasets
from localmode.serving.jvm_runtime import MleapJvmRuntime
from preprocessing.features import build_preprocess_model

pytestmark = pytest.mark.spark

NAMES = ["penguins", "breast-cancer", "diabetes", "digits-wide", "weather"]
# Numeric fields a client may send: "" and "null" are missing (MLeap casts them to null), NaN is
# missing too (the Imputer fills NaN in); the rest are numbers in forms Java and Spark both read.
NUMERIC_VARIANTS = ["", "null", "NaN", " 12.5 ", "-0", "1e2", ".5", "+3", "0.000001"]
MISSING_NUMERIC = {"", "null", "NaN"}


@pytest.fixture(scope="module")
def jvm() -> MleapJvmRuntime:
    return MleapJvmRuntime()


def slot_index(manifest: dict) -> dict[str, int]:
    return {slot: i for i, slot in enumerate(manifest["feature_slots"])}


def variants(run, spec: dict, rows: list[dict]) -> list[tuple[dict, str, str]]:
    """Each held-out row once more with one feature (in turn) changed: a numeric one to one of
    NUMERIC_VARIANTS, a categorical one to a never-seen value, an empty cell, a missing-value marker,
    or a value training saw too rarely for a slot of its own. -> (row, feature, value)"""
    manifest = run.manifest
    features = manifest["feature_names"]
    learned = manifest["learned"]
    out = []
    for i, row in enumerate(rows):
        name = features[i % len(features)]
        if manifest["feature_types"][name] == "numeric":
            value = NUMERIC_VARIANTS[i % len(NUMERIC_VARIANTS)]
        else:
            choices = ["never-seen", "", "NA"] + list(learned.get(name, {}).get("other", []))[:2]
            value = choices[(i // len(features)) % len(choices)]
        out.append(({**row, name: value}, name, value))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_held_out_row_and_its_variants_agree_three_ways(name, dataset_run, jvm, spark, tmp_path):
    run, spec, _ = dataset_run(name)
    manifest = run.manifest
    rows = held_out_rows(run)
    assert len(rows) == manifest["rows"]["test"] > 40
    changed = variants(run, spec, rows)
    vectors = preprocess_three_ways(run, tmp_path, jvm, spark, spec, rows + [r for r, _, _ in changed])
    assert all(len(v) == manifest["feature_width"] for v in vectors)

    # What each variant means, slot by slot.
    slots = slot_index(manifest)
    learned = manifest["learned"]
    checked = collections.Counter()
    for (row, feature, value), vector in zip(changed, vectors[len(rows):]):
        if manifest["feature_types"][feature] == "numeric":
            got = vector[slots[feature]]
            if value in MISSING_NUMERIC:
                assert got == learned[feature]["surrogate"], (feature, value)
                checked["imputed"] += 1
            else:
                assert got == float(value.strip()), (feature, value)
            continue
        block = [i for slot, i in slots.items() if slot.startswith(f"{feature}=")]
        ones = [manifest["feature_slots"][i] for i in block if vector[i] == 1.0]
        if value in learned.get(feature, {}).get("other", []):
            assert ones == [f"{feature}=(other)"], (feature, value)
            checked["other"] += 1
        else:
            assert ones == [], (feature, value)  # never seen, empty or a marker: an all-zero block
            checked["all-zero"] += 1
    assert checked["imputed"] > 0
    if "categorical" in manifest["feature_types"].values():
        assert checked["all-zero"] > 0
    if name == "penguins":
        assert checked["other"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_postprocess_answers_the_label_like_spark(name, dataset_run, jvm, spark, tmp_path):
    run, spec, _ = dataset_run(name)
    manifest = run.manifest
    if manifest["problem_type"] == "regression":
        # Two containers: XGBoost's answer is the prediction.
        assert not (run.out / "model" / "postprocess").exists()
        assert manifest["schemas"]["postprocess"] is None
        assert manifest["uris"]["postprocess_model"] is None and manifest["uris"]["postprocess_schema"] is None
        return
    labels = manifest["label_values"]
    truth = [r[-1] for r in run.csv_rows("test")]
    if manifest["problem_type"] == "binary":
        threshold = manifest["binary_threshold"]
        probabilities = [0.0, 0.25, math.nextafter(threshold, -math.inf), threshold,
                         math.nextafter(threshold, math.inf), 0.75, 1.0]
        answers = postprocess_three_ways(run, tmp_path, jvm, spark, spec, probabilities)
        # The contract: probability >= threshold is label_values[1].
        assert answers == [labels[1] if p >= threshold else labels[0] for p in probabilities]
        assert answers == [labels[0]] * 3 + [labels[1]] * 4
        certain = [1.0 if t == labels[1] else 0.0 for t in truth]
        assert postprocess_three_ways(run, tmp_path, jvm, spark, spec, certain) == truth
    else:
        indices = [float(labels.index(t)) for t in truth] + [float(i) for i in range(len(labels))]
        assert postprocess_three_ways(run, tmp_path, jvm, spark, spec, indices) == truth + labels


def _input_rows(spec: dict, data) -> list[dict]:
    names = [c["name"] for c in spec["columns"]]
    with open(data, newline="", encoding="utf-8") as fh:
        lines = list(csv.reader(fh))
    if spec["header"] == "yes":
        assert [n.lower() for n in lines[0]] == [n.lower() for n in names]
        lines = lines[1:]
    return [dict(zip(names, line)) for line in lines]


@pytest.mark.parametrize("name", NAMES)
def test_written_training_rows_are_the_pipeline_applied_to_the_input_rows(name, dataset_run, spark):
    """train + validation CSVs plus the encoded test split = every input row, encoded by Spark's
    PipelineModel with what the run learned (markers in the file read as missing)."""
    run, spec, data = dataset_run(name)
    manifest = run.manifest
    label = manifest["label_name"]
    regression = manifest["problem_type"] == "regression"

    def key(raw_label: str) -> float:
        return float(raw_label) if regression else float(manifest["label_values"].index(raw_label))

    def encoded(rows: list[dict]) -> collections.Counter:
        frame = spark_frame(spark, spec, rows)
        model = build_preprocess_model(spark, spec, learned=manifest["learned"])
        out = model.transform(frame).select("row_id", vector_to_array("features").alias("v")).orderBy("row_id")
        return collections.Counter((key(r[label]), tuple(v.v)) for r, v in zip(rows, out.collect()))

    expected = encoded(_input_rows(spec, data))
    written = collections.Counter()
    for split in ("train", "validation"):
        written.update((float(r[0]), tuple(float(x) for x in r[1:])) for r in run.csv_rows(split))
    test_rows = [{**row, label: r[-1]} for row, r in zip(held_out_rows(run), run.csv_rows("test"))]
    written.update(encoded(test_rows))
    assert written == expected
    assert sum(expected.values()) == manifest["rows"]["total"]


def test_manifests_describe_each_label_type(dataset_run):
    penguins, breast, diabetes, wide, weather = (dataset_run(n)[0].manifest for n in NAMES)
    assert (penguins["problem_type"], penguins["label_values"], penguins["num_class"]) == (
        "multiclass", ["Adelie", "Chinstrap", "Gentoo"], 3)  # learned, in text order
    assert (breast["problem_type"], breast["label_values"], breast["num_class"], breast["binary_threshold"]) == (
        "binary", ["benign", "malignant"], 2, 0.5)
    assert (diabetes["problem_type"], diabetes["label_values"], diabetes["num_class"]) == ("regression", None, None)
    assert diabetes["rows_by_label"] is None and diabetes["binary_threshold"] is None
    # Label in the first column (penguins) and in the middle (diabetes): the features keep file order.
    assert penguins["feature_names"] == ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                         "body_mass_g", "sex", "year"]
    assert diabetes["feature_names"] == ["age", "age_group", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert diabetes["feature_types"]["age_group"] == "categorical" and diabetes["feature_types"]["bmi"] == "numeric"
    # A cap of 2 learned values: the third island shares the "other" slot.
    assert penguins["feature_slots"][:3] == ["island=Biscoe", "island=Dream", "island=(other)"]
    assert penguins["learned"]["island"] == {"values": ["Biscoe", "Dream"], "other": ["Torgersen"]}
    assert penguins["learned"]["body_mass_g"]["impute"] == "median"
    assert penguins["missing_cells"]["sex"] == 11 and penguins["missing_cells"]["bill_length_mm"] == 2
    assert breast["feature_width"] == 30 and sum(breast["missing_cells"].values()) > 50
    assert diabetes["schemas"]["preprocess"]["input"] == [{"name": n, "type": "string"} for n in diabetes["feature_names"]]
    for manifest, metric in ((penguins, "macro_f1"), (breast, "roc_auc"), (diabetes, "r2"), (wide, "accuracy")):
        assert manifest["quality_gate"]["metric"] == metric and manifest["quality_gate"]["higher_is_better"]
        assert manifest["dataset"] == manifest["spec"]["name"]
    # CreateModel takes the preprocess schema as one environment value, at most 1024 characters
    # (botocore's SageMaker model, EnvironmentValue). The users' names while they fit; 30 names that
    # do not become c1..c30, still a CSV schema; 100 features are c1..c100 and too long for any.
    def length(manifest):
        return len(json.dumps(manifest["schemas"]["preprocess"], separators=(",", ":")))

    assert [length(m) <= 1024 for m in (penguins, breast, diabetes, wide)] == [True, True, True, False]
    assert breast["schemas"]["preprocess"]["input"] == [{"name": f"c{i}", "type": "string"} for i in range(1, 31)]
    assert [f["name"] for f in wide["schemas"]["preprocess"]["input"]] == [f"c{i}" for i in range(1, 101)]
    assert wide["feature_names"][:2] == ["pixel_0_0", "pixel_0_1"] and wide["feature_width"] == 64 + 30 + 6 * 4
    # The manifest still speaks the users' names: slots and learned values.
    assert breast["feature_slots"][0] == "mean_radius" and "mean_radius" in breast["learned"]


LEARNED_SPEC = {
    "name": "learned-only-from-train",
    "header": "no",
    "columns": [
        {"name": "code", "type": "categorical", "max_categories": 5},
        {"name": "x", "type": "numeric"},
        {"name": "y", "type": "categorical", "values": ["a", "b"]},
    ],
    "label": "y",
}


def test_categories_and_imputed_values_are_learned_from_the_training_split_only(run_job, tmp_path):
    """Every row has its own code: the learned codes must be exactly the training rows' codes, and the
    imputed value the mean of the training rows' x."""
    lines = [f"c{i:03d},{(i * 37) % 101},{'ab'[i % 2]}" for i in range(200)] + ["c999,,a"]
    source = tmp_path / "codes.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = run_job(source, tmp_path / "run", spec=LEARNED_SPEC)
    learned = run.manifest["learned"]
    codes = learned["code"]["values"] + learned["code"]["other"]
    assert learned["code"]["values"] == sorted(codes)[:5]  # all seen once: ties go by text
    held_out = {r[0] for r in run.csv_rows("test")}
    assert len(codes) == run.manifest["rows"]["train"] and not held_out & set(codes)
    # The training rows' x values are the vector's last slot (c999 has none: if it is a training row, it holds
    # the surrogate itself, which leaves the mean unchanged).
    train_x = [float(r[-1]) for r in run.csv_rows("train")]
    assert learned["x"]["surrogate"] == pytest.approx(sum(train_x) / len(train_x), rel=1e-12)
    everything = [float(line.split(",")[1]) for line in lines if line.split(",")[1]]
    assert learned["x"]["surrogate"] != pytest.approx(sum(everything) / len(everything), rel=1e-9)


def test_dataset_builders_are_deterministic_and_match_their_specs(tmp_path):
    for name in NAMES:
        first, spec_path = datasets.build(name, tmp_path / "a")
        again, _ = datasets.build(name, tmp_path / "b")
        assert first.read_bytes() == again.read_bytes()
        spec = json.loads(spec_path.read_text())
        assert spec["name"] == name == spec_path.stem
        with open(first, newline="", encoding="utf-8") as fh:
            widths = {len(line) for line in csv.reader(fh)}
        assert widths == {len(spec["columns"])}
