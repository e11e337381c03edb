"""Refusals that come with typed columns: each names the column and the first offending lines,
happens before anything is fitted, and leaves nothing behind (the input untouched)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from preprocessing.errors import InvalidInputData

pytestmark = pytest.mark.spark

SPEC = {
    "name": "typed",
    "header": "yes",
    "columns": [
        {"name": "id", "type": "ignore"},
        {"name": "colour", "type": "categorical", "values": ["red", "blue"]},
        {"name": "size", "type": "categorical", "allow_missing": True},
        {"name": "weight", "type": "numeric"},
        {"name": "price", "type": "numeric"},
    ],
    "label": "price",
}
HEADER = "id,colour,size,weight,price"


def good_lines(n: int = 30) -> list[str]:
    return [f"r{i},{'red' if i % 2 else 'blue'},{'sml'[i % 3]},{i * 1.5},{i * 2}" for i in range(n)]


def refuse(run_job, tmp_path: Path, lines: list[str], spec: dict = SPEC) -> str:
    source = tmp_path / "input.csv"
    content = ("\n".join(lines) + "\n").encode("utf-8")
    source.write_bytes(content)
    with pytest.raises(InvalidInputData) as caught:
        run_job(source, tmp_path / "out", spec=spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.csv"]
    assert source.read_bytes() == content
    return str(caught.value)


def with_changes(**changes) -> dict:
    spec = copy.deepcopy(SPEC)
    for name, change in changes.items():
        if name in ("label", "header", "quality_gate", "binary_threshold"):
            spec[name] = change
        else:
            column = next(c for c in spec["columns"] if c["name"] == name)
            column.clear()
            column.update({"name": name, **change})
    return spec


def test_a_value_that_is_not_a_number_in_a_numeric_column(run_job, tmp_path):
    lines = [HEADER] + good_lines()
    lines[4] = "r3,red,s,heavy,6"
    lines[9] = "r8,blue,m,1.2.3,16"
    message = refuse(run_job, tmp_path, lines)
    assert "2 line(s) have a value that is not a number in a numeric column" in message
    assert "line 5 (weight='heavy'), line 10 (weight='1.2.3')" in message


@pytest.mark.parametrize("text", ["inf", "-Infinity", "1e999", "0x10", "1d", "1_000", "NaN"])
def test_numbers_java_and_spark_would_read_differently_are_refused(run_job, tmp_path, text):
    """Spark reads "inf" and "1e999" as infinity, Java reads "1d" and hex; XGBoost takes no infinity; a
    NaN in a file is not a missing-value marker unless the spec says so."""
    lines = [HEADER] + good_lines()
    lines[7] = f"r6,blue,s,{text},12"
    message = refuse(run_job, tmp_path, lines)
    assert f"line 8 (weight='{text}')" in message


def test_a_regression_label_that_is_not_a_number(run_job, tmp_path):
    lines = [HEADER] + good_lines()
    lines[2] = "r1,red,m,1.5,cheap"
    message = refuse(run_job, tmp_path, lines)
    assert "1 line(s) have a 'price' label that is not a number: line 3 ('cheap')" in message


def test_a_missing_label_is_refused_even_where_features_may_be_missing(run_job, tmp_path):
    lines = [HEADER] + good_lines()
    lines[2] = "r1,red,,,"
    lines[6] = "r5,red,m,2,NA"
    message = refuse(run_job, tmp_path, lines)
    assert "2 line(s) have an empty cell or a missing-value marker in a column that allows none" in message
    assert "line 3 (price=''), line 7 (price='NA')" in message


def test_a_label_outside_the_listed_classes(run_job, tmp_path):
    spec = with_changes(label="colour", price={"type": "numeric"})
    lines = [HEADER] + good_lines()
    lines[5] = "r4,green,s,3,8"
    message = refuse(run_job, tmp_path, lines, spec)
    assert "1 line(s) have a 'colour' label outside the spec's values (red, blue): line 6 ('green')" in message


def test_a_categorical_feature_without_allow_missing_refuses_empty_cells(run_job, tmp_path):
    spec = with_changes(size={"type": "categorical"})
    lines = [HEADER] + good_lines()
    lines[3] = "r2,red,,3,4"
    lines[4] = "r3,red,?,3,4"
    message = refuse(run_job, tmp_path, lines, spec)
    assert "line 4 (size=''), line 5 (size='?')" in message


def test_header_yes_and_a_header_without_the_label_column(run_job, tmp_path):
    lines = ["id,colour,size,weight,cost"] + good_lines()
    message = refuse(run_job, tmp_path, lines)
    assert ("line 1 must be the header row but does not match the spec: it has no 'price' column (the label); "
            "the spec's columns, in order: id, colour, size, weight, price") in message


def test_header_yes_and_no_header_line(run_job, tmp_path):
    message = refuse(run_job, tmp_path, good_lines())
    assert "line 1 must be the header row but does not match the spec" in message


def test_header_yes_and_a_header_naming_other_columns(run_job, tmp_path):
    lines = ["id,color,size,weight,price"] + good_lines()
    message = refuse(run_job, tmp_path, lines)
    assert "it has 'color' where the spec has 'colour'" in message


def test_header_no_reads_line_1_as_data(run_job, tmp_path):
    message = refuse(run_job, tmp_path, [HEADER] + good_lines(), with_changes(header="no"))
    assert "1 line(s) have a 'price' label that is not a number: line 1 ('price')" in message


def test_header_auto_and_a_first_line_that_looks_like_a_header_but_lacks_the_label(
        run_job, tmp_path, car_data, dataset_spec):
    lines = ["buying,maint,doors,persons,lug_boot,safety,klass"] + Path(car_data).read_text().splitlines()[:20]
    message = refuse(run_job, tmp_path, lines, dataset_spec)
    assert "line 1 looks like the header row but does not match the spec: it has no 'class' column (the label)" in message


def test_a_file_with_the_wrong_number_of_columns(run_job, tmp_path):
    lines = [HEADER] + [line.rsplit(",", 1)[0] for line in good_lines()]
    message = refuse(run_job, tmp_path, lines)
    assert "it names" not in message  # the header itself is right
    assert "30 line(s) do not have 5 comma-separated fields (id, colour, size, weight, price): line 2 (4 fields)" in message


def test_a_numeric_column_without_any_number(run_job, tmp_path):
    lines = [HEADER] + [",".join(line.split(",")[:3] + ["NA", line.split(",")[4]]) for line in good_lines()]
    message = refuse(run_job, tmp_path, lines)
    assert "column(s) 'weight' have no value in any row" in message


def test_a_learned_label_with_a_single_class(run_job, tmp_path):
    spec = with_changes(label="size", size={"type": "categorical"})
    lines = [HEADER] + [line.replace(",s,", ",m,").replace(",l,", ",m,") for line in good_lines()]
    message = refuse(run_job, tmp_path, lines, spec)
    assert "the 'size' label has a single value (m): a classifier needs two or more" in message


def test_roc_auc_with_a_learned_label_of_three_classes(run_job, tmp_path):
    spec = with_changes(label="size", size={"type": "categorical"}, quality_gate={"metric": "roc_auc"})
    message = refuse(run_job, tmp_path, [HEADER] + good_lines(), spec)
    assert "roc_auc needs two classes, but the 'size' label has 3 (l, m, s)" in message


def test_a_learned_column_with_too_many_values(run_job, tmp_path, monkeypatch):
    monkeypatch.setattr("preprocessing.features.MAX_LEARNED_VALUES", 5)
    lines = [HEADER] + [f"r{i},red,size{i},{i},{i}" for i in range(40)]
    message = refuse(run_job, tmp_path, lines)
    assert "column 'size' has" in message and "more than the 5 a learned categorical column may have" in message
