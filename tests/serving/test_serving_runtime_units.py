"""The MLeap runtime's reading of bundle attributes and Java's number formatting,
on small hand-written bundles (no Spark): the cases real bundles rarely show."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from localmode.serving.javacompat import JavaNumberFormatException, java_double_str, parse_java_double
from localmode.serving.mleap import BundleError, MleapBundle, MleapError, RowSkipped, dense_values


def write_bundle(root: Path, nodes: list[tuple[str, dict, dict]]) -> Path:
    """A JSON bundle whose root is a pipeline of (name, model.json attributes+op, node.json shape)."""
    (root / "root").mkdir(parents=True)
    (root / "bundle.json").write_text(json.dumps({"format": "json", "name": "p", "version": "0.16.0", "uid": "u"}))
    (root / "root" / "model.json").write_text(json.dumps(
        {"op": "pipeline", "attributes": {"nodes": {"string": [n for n, _, _ in nodes], "type": "list"}}}))
    (root / "root" / "node.json").write_text(json.dumps({"name": "p", "shape": {"inputs": [], "outputs": []}}))
    for name, model, shape in nodes:
        node = root / "root" / f"{name}.node"
        node.mkdir()
        (node / "model.json").write_text(json.dumps(model))
        (node / "node.json").write_text(json.dumps({"name": name, "shape": shape}))
    return root


def indexer(name: str, labels: list[str], **attributes) -> tuple[str, dict, dict]:
    attrs = {"labels": {"string": labels, "type": "list"}, **attributes}
    return (f"si_{name}", {"op": "string_indexer", "attributes": attrs},
            {"inputs": [{"port": "input", "name": name}], "outputs": [{"port": "output", "name": f"{name}_i"}]})


def encoder(names: list[str], sizes: list[int], drop_last: dict, handle_invalid: str) -> tuple[str, dict, dict]:
    return ("ohe", {"op": "one_hot_encoder", "attributes": {
        "category_sizes": {"int": sizes, "type": "list"}, "drop_last": drop_last,
        "handle_invalid": {"string": handle_invalid}}},
        {"inputs": [{"port": f"input{i}", "name": f"{n}_i"} for i, n in enumerate(names)],
         "outputs": [{"port": f"output{i}", "name": f"{n}_v"} for i, n in enumerate(names)]})


def assembler(names: list[str]) -> tuple[str, dict, dict]:
    return ("va", {"op": "vector_assembler", "attributes": {"input_shapes": {"data_shape": [
        {"base": "tensor", "isNullable": True, "tensorShape": {"dimensions": [{"size": 1, "name": ""}]}} for _ in names],
        "type": "list"}}},
        {"inputs": [{"port": f"input{i}", "name": f"{n}_v"} for i, n in enumerate(names)],
         "outputs": [{"port": "output", "name": "features"}]})


def test_an_empty_drop_last_is_false_and_keep_adds_a_slot_for_invalid_values(tmp_path):
    # bundle-ml's JSON omits protobuf defaults: "drop_last": {} means false.
    bundle = MleapBundle(write_bundle(tmp_path, [
        indexer("a", ["x", "y"], handle_invalid={"string": "keep"}),
        encoder(["a"], [3], {}, "keep"), assembler(["a"])]))
    program = bundle.program((("a", "string"),), "features")
    assert dense_values(program.run(["y"])) == [0.0, 1.0, 0.0, 0.0]
    assert dense_values(program.run(["zzz"])) == [0.0, 0.0, 1.0, 0.0]


def test_a_missing_handle_invalid_means_error_with_mleaps_message(tmp_path):
    bundle = MleapBundle(write_bundle(tmp_path, [
        indexer("a", ["x", "y"]), encoder(["a"], [2], {"boolean": True}, "error"), assembler(["a"])]))
    program = bundle.program((("a", "string"),), "features")
    assert dense_values(program.run(["x"])) == [1.0]
    with pytest.raises(MleapError, match=r"^Unseen label: q\. To handle unseen labels, set handleInvalid to keep$"):
        program.run(["q"])


def test_skip_drops_the_row(tmp_path):
    bundle = MleapBundle(write_bundle(tmp_path, [indexer("a", ["x"], handle_invalid={"string": "skip"})]))
    program = bundle.program((("a", "string"),), "a_i")
    assert program.run(["x"]) == 0.0
    with pytest.raises(RowSkipped):
        program.run(["y"])


def test_a_multi_column_indexer_is_refused_like_mleap_0_20(tmp_path):
    with pytest.raises(BundleError, match="Multi-input StringIndexer not supported yet"):
        MleapBundle(write_bundle(tmp_path, [("si", {"op": "string_indexer", "attributes": {
            "labels_length": {"int": 2}, "labels_array_0": {"string": ["x"], "type": "list"}}},
            {"inputs": [{"port": "input", "name": "a"}], "outputs": [{"port": "output", "name": "a_i"}]})]))


def test_an_encoder_with_skip_is_refused_at_load(tmp_path):
    with pytest.raises(BundleError, match="Invalid handler: skip"):
        MleapBundle(write_bundle(tmp_path, [indexer("a", ["x"]), encoder(["a"], [1], {}, "skip")]))


def test_numeric_input_columns_are_cast_like_mleap(tmp_path):
    # A double column read by a StringIndexer is cast with Double.toString: 1 -> "1.0".
    bundle = MleapBundle(write_bundle(tmp_path, [indexer("a", ["1.0", "2.5"], handle_invalid={"string": "keep"})]))
    program = bundle.program((("a", "double"),), "a_i")
    assert [program.run([1.0]), program.run([2.5]), program.run([3.0])] == [0.0, 1.0, 2.0]


def test_an_output_field_that_does_not_exist_is_named(tmp_path):
    bundle = MleapBundle(write_bundle(tmp_path, [indexer("a", ["x"])]))
    with pytest.raises(MleapError, match="invalid fields: nope"):
        bundle.program((("a", "string"),), "nope")
    with pytest.raises(MleapError, match="invalid field: a"):
        bundle.program((("b", "string"),), "a_i")


def test_protobuf_bundles_are_refused_clearly(tmp_path):
    root = write_bundle(tmp_path, [indexer("a", ["x"])])
    (root / "bundle.json").write_text(json.dumps({"format": "protobuf"}))
    with pytest.raises(BundleError, match="only JSON bundles"):
        MleapBundle(root)


@pytest.mark.parametrize("value, text", [
    (0.0, "0.0"), (-0.0, "-0.0"), (1.0, "1.0"), (0.001, "0.001"), (0.0001, "1.0E-4"), (1e7, "1.0E7"),
    (9999999.0, "9999999.0"), (123456.789, "123456.789"), (-2.5e-10, "-2.5E-10"), (math.nan, "NaN"),
    (math.inf, "Infinity"), (1e21, "1.0E21"), (0.1, "0.1")])
def test_doubles_print_as_java_prints_them(value, text):
    assert java_double_str(value) == text


@pytest.mark.parametrize("text, value", [("1", 1.0), (" 2.5 ", 2.5), ("1e3", 1000.0), ("1.5d", 1.5), ("-Infinity", -math.inf),
                                         ("0x1p3", 8.0)])
def test_doubles_parse_as_java_parses_them(text, value):
    assert parse_java_double(text) == value


@pytest.mark.parametrize("text, message", [("abc", 'For input string: "abc"'), ("", "empty String"),
                                           ("inf", 'For input string: "inf"'), ("1_0", 'For input string: "1_0"')])
def test_java_number_errors(text, message):
    with pytest.raises(JavaNumberFormatException, match=f"^{message}$"):
        parse_java_double(text)
