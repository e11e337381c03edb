"""The split: exact stratified sizes, a partition of the input, and correct even
when split buckets hold many rows (so the boundary ranking really runs)."""
from __future__ import annotations

import collections
from pathlib import Path

import pytest

from dataset_spec import parse_spec
from dataset_spec.spec import spec_columns
from preprocessing.split import assign_split, boundary_buckets, split_counts
from preprocessing.validate import validate


def test_boundary_buckets_find_the_buckets_where_each_cut_falls():
    # Label "a": 10 rows in buckets 0..3 holding 4, 0 (absent), 3, 3 rows; test ends at rank 2, validation at 5.
    sizes = {"a": {"test": 2, "validation": 3, "train": 5}, "b": {"test": 0, "validation": 0, "train": 1}}
    counts = {("a", 0): 4, ("a", 2): 3, ("a", 3): 3, ("b", 7): 1}
    plan = boundary_buckets(sizes, counts)
    assert plan["a"] == {"test_bucket": 0, "validation_bucket": 2, "test_end": 2, "validation_end": 5,
                         "starts": {0: 0, 2: 4}}
    # No test or validation rows: no boundary, everything is train.
    assert plan["b"]["starts"] == {} and plan["b"]["test_bucket"] == plan["b"]["validation_bucket"] == -1


def test_split_counts_round_each_label_and_give_train_the_rest():
    assert split_counts({"good": 69, "vgood": 65, "one": 1, "none": 0}) == {
        "good": {"test": 10, "validation": 10, "train": 49},
        "vgood": {"test": 10, "validation": 10, "train": 45},
        "one": {"test": 0, "validation": 0, "train": 1},
        "none": {"test": 0, "validation": 0, "train": 0},
    }


@pytest.mark.spark
def test_split_is_exact_and_a_partition_with_crowded_buckets(spark, dataset_spec, car_data, tmp_path, monkeypatch):
    lines = Path(car_data).read_text().splitlines()
    source = tmp_path / "tripled.csv"
    source.write_text("".join(line + "\n" for line in lines * 3))
    monkeypatch.setattr("preprocessing.validate.SPLIT_BUCKETS", 3)  # about 600 rows per bucket for "unacc"
    layout = parse_spec(dataset_spec)
    valid = validate(spark, layout, str(source), 42)
    try:
        sizes = split_counts(valid.label_counts)
        assert max(valid.bucket_counts.values()) > 500
        rows = assign_split(valid, layout, sizes).collect()
    finally:
        valid.release()
    label = dataset_spec["label"]
    got = collections.Counter((r[label], r.split) for r in rows)
    assert got == {(lab, split): n for lab, s in sizes.items() for split, n in s.items() if n}
    # A partition of the input: every line exactly as often as it was given.
    columns = spec_columns(dataset_spec)
    assert collections.Counter(",".join(r[c] for c in columns) for r in rows) == collections.Counter(lines * 3)


@pytest.mark.spark
def test_rows_that_repeat_a_feature_pattern_split_like_the_whole_whatever_their_label(run_job, tmp_path):
    """Issue 22: the split hashed the whole row, so identical rows went to one split as a block, and rows with the
    same features but different labels went to different splits by label (a passenger table's survivors of one
    pattern all went to test, its deaths were that pattern's only training rows). Now each row is drawn by its
    position: 300 'yes' and 300 'no' rows of one pattern each put about 15% in test. The bounds are about 3.2
    standard deviations of that draw (sd = sqrt(300 * 0.15 * 0.85) = 6.2) for a fixed seed: deterministic."""
    import random

    rng = random.Random(5)
    rows = [("red", "s", "yes")] * 300 + [("red", "s", "no")] * 300
    rows += [(rng.choice(["blue", "green"]), rng.choice(["s", "m", "l"]), rng.choice(["yes", "no"])) for _ in range(1200)]
    rng.shuffle(rows)
    path = tmp_path / "patterns.csv"
    path.write_text("color,size,answer\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    spec = {"name": "patterns", "header": "auto", "label": "answer",
            "columns": [{"name": "color", "type": "categorical", "values": ["red", "blue", "green"]},
                        {"name": "size", "type": "categorical", "values": ["s", "m", "l"]},
                        {"name": "answer", "type": "categorical", "values": ["yes", "no"]}]}
    run = run_job(path, tmp_path / "run", spec=spec)
    test = [tuple(r) for r in run.csv_rows("test")]
    for label in ("yes", "no"):
        assert 25 <= test.count(("red", "s", label)) <= 65, (label, test.count(("red", "s", label)))
