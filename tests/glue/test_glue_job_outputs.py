"""The job on the real car data: layout, row counts, CSV shapes, manifest, split."""
from __future__ import annotations

import collections
import json
import tarfile

import pandas as pd
import pytest
from pyspark.ml.functions import vector_to_array

from preprocessing.features import build_preprocess_model

pytestmark = pytest.mark.spark


def test_layout_has_every_documented_artifact_and_nothing_else(car_run):
    out = car_run.out
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    for split in ("train", "validation", "test"):
        assert any(f.startswith(f"data/{split}/part-") and f.endswith(".csv") for f in files), split
    for model in ("preprocess", "postprocess"):
        assert f"model/{model}/model.tar.gz" in files
        assert f"model/{model}/schema.json" in files
    assert "manifest.json" in files
    # No Spark success markers or checksum files: the manifest is the only success marker.
    assert not [f for f in files if f.endswith("_SUCCESS") or f.endswith(".crc")]
    assert not [f for f in files if not (f.startswith("data/") or f.startswith("model/") or f == "manifest.json")]
    # No leftover staging directories next to the run.
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_split_row_counts_add_up_to_the_whole_file(car_run, dataset_spec):
    rows = {split: len(car_run.csv_rows(split)) for split in ("train", "validation", "test")}
    assert sum(rows.values()) == dataset_spec["source"]["rows"] == 1728
    assert car_run.manifest["rows"] == {"total": 1728, **rows}
    # 70/15/15 of 1728
    assert rows["test"] == rows["validation"] == pytest.approx(0.15 * 1728, abs=4)


def features_of(spec: dict) -> list[dict]:
    return [c for c in spec["columns"] if c["name"] != spec["label"] and c["type"] != "ignore"]


def label_values(spec: dict) -> list[str]:
    return next(c["values"] for c in spec["columns"] if c["name"] == spec["label"])


def test_split_is_stratified_with_exact_counts_per_label(car_run, dataset_spec):
    labels = label_values(dataset_spec)
    by_label = car_run.manifest["rows_by_label"]
    for split in ("train", "validation"):
        counts = collections.Counter(labels[int(r[0])] for r in car_run.csv_rows(split))
        assert counts == {label: by_label[label][split] for label in labels}, split
    test_counts = collections.Counter(r[-1] for r in car_run.csv_rows("test"))
    assert test_counts == {label: by_label[label]["test"] for label in labels}
    # The rare classes get their share in every split (good: 69 rows, vgood: 65).
    assert by_label["good"] == {"total": 69, "test": 10, "validation": 10, "train": 49}
    assert by_label["vgood"] == {"total": 65, "test": 10, "validation": 10, "train": 45}


def test_training_csvs_are_label_first_with_the_manifest_width(car_run, dataset_spec):
    width = car_run.manifest["feature_width"]
    assert width == sum(len(f["values"]) for f in features_of(dataset_spec)) == 21
    for split in ("train", "validation"):
        for row in car_run.csv_rows(split):
            assert len(row) == 1 + width
            assert row[0] in {"0", "1", "2", "3"}
            assert set(row[1:]) <= {"0", "1"}
            vector = [float(x) for x in row[1:]]
            # One-hot: exactly one 1.0 per feature block.
            offset = 0
            for feature in features_of(dataset_spec):
                block = vector[offset:offset + len(feature["values"])]
                assert sorted(block) == [0.0] * (len(block) - 1) + [1.0]
                offset += len(block)


def test_test_split_holds_raw_rows_in_spec_order(car_run, dataset_spec):
    for row in car_run.csv_rows("test"):
        assert len(row) == len(features_of(dataset_spec)) + 1
        for value, feature in zip(row, features_of(dataset_spec)):
            assert value in feature["values"]
        assert row[-1] in label_values(dataset_spec)


def test_written_vectors_are_the_pipeline_transform_of_the_input_rows(car_run, car_data, spark, dataset_spec):
    """train + validation CSVs plus the encoded test split = every car row, encoded by the pipeline."""
    columns = [f["name"] for f in features_of(dataset_spec)] + [dataset_spec["label"]]
    labels = label_values(dataset_spec)
    raw = pd.read_csv(car_data, header=None, names=columns, dtype=str)
    frame = spark.createDataFrame(raw)
    model = build_preprocess_model(spark, dataset_spec, frame)
    encoded = model.transform(frame).select(dataset_spec["label"], vector_to_array("features").alias("v")).collect()
    expected = collections.Counter((labels.index(r[0]), tuple(r.v)) for r in encoded)

    written = collections.Counter()
    for split in ("train", "validation"):
        written.update((int(r[0]), tuple(float(x) for x in r[1:])) for r in car_run.csv_rows(split))
    test_frame = spark.createDataFrame(pd.DataFrame(car_run.csv_rows("test"), columns=columns))
    for r in model.transform(test_frame).select(dataset_spec["label"], vector_to_array("features").alias("v")).collect():
        written[(labels.index(r[0]), tuple(r.v))] += 1
    assert written == expected


def test_bundles_are_unzipped_json_mleap_bundles(car_run):
    for model in ("preprocess", "postprocess"):
        with tarfile.open(car_run.out / "model" / model / "model.tar.gz") as tar:
            names = tar.getnames()
            assert {n.split("/")[0] for n in names} == {"bundle.json", "root"}
            bundle = json.load(tar.extractfile("bundle.json"))
            assert bundle["format"] == "json"
            assert bundle["version"] == car_run.manifest["versions"]["mleap"]
            assert "root/model.json" in names


def test_schemas_match_the_serving_contract(car_run, dataset_spec):
    pre = json.loads((car_run.out / "model/preprocess/schema.json").read_text())
    post = json.loads((car_run.out / "model/postprocess/schema.json").read_text())
    assert pre == {
        "input": [{"name": f["name"], "type": "string"} for f in features_of(dataset_spec)],
        "output": {"name": "features", "type": "double", "struct": "vector"},
    }
    assert post["input"] == [{"name": "label", "type": "double"}]
    assert post["output"]["type"] == "string"
    assert car_run.manifest["schemas"] == {"preprocess": pre, "postprocess": post}


def test_manifest_fields(car_run, dataset_spec):
    m = car_run.manifest
    assert json.loads((car_run.out / "manifest.json").read_text()) == m
    assert m["run_id"] == "test-run"
    # The spec as used: the file's with every default written out.
    assert m["spec"] == {**dataset_spec, "missing_values": ["NA", "N/A", "null", "?"],
                         "columns": [{**c, "allow_missing": False} if c["name"] != "class" else c
                                     for c in dataset_spec["columns"]],
                         "quality_gate": {"metric": "accuracy", "threshold": None, "higher_is_better": True}}
    assert m["dataset"] == "car" and m["problem_type"] == "multiclass"
    assert m["label_name"] == "class"
    assert m["label_values"] == label_values(dataset_spec)
    assert m["num_class"] == 4 and m["binary_threshold"] is None
    assert m["feature_names"] == ["buying", "maint", "doors", "persons", "lug_boot", "safety"]
    assert m["feature_types"] == dict.fromkeys(m["feature_names"], "categorical")
    assert m["learned"] == {} and m["missing_cells"] == {}
    assert m["quality_gate"] == {"metric": "accuracy", "threshold": None, "higher_is_better": True}
    assert m["seed"] == 42
    assert m["split"] == {"train": 0.7, "validation": 0.15, "test": 0.15}
    assert m["feature_slots"][:4] == ["buying=vhigh", "buying=high", "buying=med", "buying=low"]
    assert len(m["feature_slots"]) == m["feature_width"]
    assert m["versions"]["spark"] == "3.5.6"  # what Glue 5.1 runs
    assert m["versions"]["mleap"] == "0.20.0"  # the bundle format the job writes
    assert m["versions"]["mleap_serving_runtime"] == "0.20.0"
    out = str(car_run.out)
    assert m["uris"] == {
        "train": f"{out}/data/train/",
        "validation": f"{out}/data/validation/",
        "test": f"{out}/data/test/",
        "preprocess_model": f"{out}/model/preprocess/model.tar.gz",
        "preprocess_schema": f"{out}/model/preprocess/schema.json",
        "postprocess_model": f"{out}/model/postprocess/model.tar.gz",
        "postprocess_schema": f"{out}/model/postprocess/schema.json",
        "training_output": f"{out}/training/",
        "manifest": f"{out}/manifest.json",
    }


def test_another_seed_gives_another_split_of_the_same_sizes(car_run, run_job, car_data, tmp_path):
    other = run_job(car_data, tmp_path / "run", seed=7)
    assert other.manifest["rows_by_label"] == car_run.manifest["rows_by_label"]
    assert sorted(map(tuple, other.csv_rows("test"))) != sorted(map(tuple, car_run.csv_rows("test")))
    # Still a partition of the data: nothing lost, nothing duplicated.
    assert sum(len(other.csv_rows(s)) for s in ("train", "validation", "test")) == 1728


def test_rerunning_into_the_same_directory_replaces_the_previous_run(run_job, car_data, tmp_path, car_run):
    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    (out / "data").mkdir()
    (out / "data" / "stale.csv").write_text("old")
    rerun = run_job(car_data, out)
    assert not (out / "data" / "stale.csv").exists()
    # Same seed, same data: the same split (determinism).
    for split in ("train", "validation", "test"):
        assert sorted(rerun.csv_rows(split)) == sorted(car_run.csv_rows(split)), split
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_refuses_to_write_over_a_directory_that_is_not_a_run(run_job, car_data, tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        run_job(car_data, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["home"]
