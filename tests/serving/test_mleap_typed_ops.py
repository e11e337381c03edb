"""The ops the typed columns added (imputer, bucketizer, binarizer), in bundles written by the Glue
job's own writer, on edge inputs: the local runtime answers what MLeap runtime 0.20.0 on the JVM
answers, errors included. No Spark: the nodes are written directly."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from localmode.serving.jvm_runtime import MleapJvmRuntime
from localmode.serving.mleap import BundleError, MleapBundle, MleapError
from preprocessing.features import other_splits
from preprocessing.labels import probability_cut
from preprocessing.mleap import BundleNode, write_bundle


@pytest.fixture(scope="module")
def jvm() -> MleapJvmRuntime:
    return MleapJvmRuntime()


def bundle(tmp_path: Path, name: str, nodes: list, inputs: list[tuple[str, str]], output: str) -> tuple[Path, Path]:
    directory = tmp_path / name
    write_bundle(name, nodes, directory)
    schema = {"input": [{"name": n, "type": t} for n, t in inputs], "output": {"name": output, "type": "double"}}
    schema_path = tmp_path / f"{name}-schema.json"
    schema_path.write_text(json.dumps(schema))
    return directory, schema_path


def local(directory: Path, schema_path: Path, rows: list[dict]) -> list[dict]:
    schema = json.loads(schema_path.read_text())
    fields = tuple((f["name"], f["type"]) for f in schema["input"])
    program = MleapBundle(directory).program(fields, schema["output"]["name"])
    answers = []
    for row in rows:
        values = []
        for name, kind in fields:
            # What the CLI (and SparkML Serving) does with each field: its text, parsed by type.
            values.append(row[name] if kind == "string" else float(row[name]))
        try:
            answers.append({"output": program.run(values)})
        except MleapError as exc:
            answers.append({"error": str(exc)})
    return answers


def same_answers(jvm_answers: list[dict], local_answers: list[dict]) -> None:
    for theirs, ours in zip(jvm_answers, local_answers, strict=True):
        if "error" in theirs:
            # The CLI prefixes the root exception's class name.
            assert theirs["error"].split(": ", 1)[1] == ours.get("error"), (theirs, ours)
        else:
            assert theirs == ours


def node(name: str, op: str, attributes: dict, source: str, target: str):
    return BundleNode(name, op, attributes, [("input", source)], [("output", target)])


def test_imputer_on_a_string_field_reads_empty_and_null_as_missing(jvm, tmp_path):
    imputer = node("imp", "imputer", {"surrogate_value": {"double": 2.5}, "strategy": {"string": "mean"},
                                      "nullable_input": {"boolean": True}}, "x", "y")
    directory, schema = bundle(tmp_path, "imputer", [imputer], [("x", "string")], "y")
    rows = [{"x": v} for v in ["", "null", "NaN", "3", " 4 ", "-0", "1e2", "abc", "NA", "1,5"]]
    theirs = jvm.transform(directory, schema, rows)
    same_answers(theirs, local(directory, schema, rows))
    assert [a.get("output") for a in theirs[:7]] == [2.5, 2.5, 2.5, 3.0, 4.0, -0.0, 100.0]
    # What a client must not send for a missing number: the file's markers are not read at serving time.
    assert all("error" in a for a in theirs[7:])


def test_imputer_on_a_double_field_fills_nan(jvm, tmp_path):
    imputer = node("imp", "imputer", {"surrogate_value": {"double": 0.0}, "strategy": {"string": "median"},
                                      "nullable_input": {"boolean": True}}, "x", "y")
    directory, schema = bundle(tmp_path, "imputer-double", [imputer], [("x", "double")], "y")
    rows = [{"x": "NaN"}, {"x": "7.25"}]
    theirs = jvm.transform(directory, schema, rows)
    same_answers(theirs, local(directory, schema, rows))
    assert theirs == [{"output": 0.0}, {"output": 7.25}]


@pytest.mark.parametrize("handle_invalid", ["error", "keep"])
def test_bucketizer_buckets_bounds_and_nan(jvm, tmp_path, handle_invalid):
    splits = other_splits(2, 5)  # positions 0, 1 own buckets; 2..4 "other"; 5 (never seen) the last
    assert splits == [-0.5, 0.5, 1.5, 4.5, 5.5]
    bucketizer = node("b", "bucketizer", {"splits": {"double": splits, "type": "list"},
                                          "handle_invalid": {"string": handle_invalid}}, "i", "bucket")
    directory, schema = bundle(tmp_path, f"bucketizer-{handle_invalid}", [bucketizer], [("i", "double")], "bucket")
    values = ["0", "1", "2", "3", "4", "5", "5.5", "-0.5", "-1", "6", "NaN"]
    theirs = jvm.transform(directory, schema, [{"i": v} for v in values])
    same_answers(theirs, local(directory, schema, [{"i": v} for v in values]))
    assert [a.get("output") for a in theirs[:8]] == [0.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 0.0]
    assert "error" in theirs[8] and "error" in theirs[9]
    if handle_invalid == "keep":
        assert theirs[10] == {"output": 4.0}  # NaN: the extra bucket after the splits' last
    else:
        assert "error" in theirs[10]


def test_binarizer_at_the_threshold_cut(jvm, tmp_path):
    cut = probability_cut(0.5)
    assert cut < 0.5 and math.nextafter(cut, 1.0) == 0.5
    binarizer = node("bin", "binarizer", {"threshold": {"double": cut},
                                          "input_shapes": {"data_shape": {"base": "scalar", "isNullable": False}}},
                     "p", "c")
    directory, schema = bundle(tmp_path, "binarizer", [binarizer], [("p", "double")], "c")
    values = [0.0, cut, 0.5, math.nextafter(0.5, 1.0), 1.0]
    rows = [{"p": repr(v)} for v in values]
    theirs = jvm.transform(directory, schema, rows)
    same_answers(theirs, local(directory, schema, rows))
    assert [a["output"] for a in theirs] == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_the_loaders_refusals(tmp_path):
    cases = {
        "binarizer": ({"thresholds": {"double": [0.5], "type": "list"},
                       "input_shapes": {"data_shape": {"base": "scalar", "isNullable": False}}},
                      "Multi-column Binarizer not supported yet"),
        "imputer": ({"strategy": {"string": "mean"}}, "key not found: surrogate_value"),
        "bucketizer": ({"splits": {"double": [0.0, 1.0], "type": "list"}, "handle_invalid": {"string": "drop"}},
                       "Invalid handler: drop"),
    }
    for op, (attributes, message) in cases.items():
        directory, _ = bundle(tmp_path, f"bad-{op}", [node("n", op, attributes, "x", "y")], [("x", "double")], "y")
        with pytest.raises(BundleError, match=message):
            MleapBundle(directory)
