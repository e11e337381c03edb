"""`make local` refuses what a data file's first bytes already show, before Spark starts, naming the
user's own file (issue 23: an empty file waited 18-20 s for Spark, then named a scratch copy, and
a gzip file was "60 line(s) are not valid UTF-8 text"). What passes here the Glue job checks again
line by line."""
from __future__ import annotations

import gzip
import json
import time
import zipfile

import pytest

from dataset_spec import parse_spec
from localmode import REPO_ROOT, runner
from localmode.precheck import DataRefused, check_data_file


@pytest.fixture(scope="module")
def car():
    return parse_spec(json.loads((REPO_ROOT / "datasets" / "car.json").read_text()))


@pytest.fixture(scope="module")
def penguins():
    return parse_spec(json.loads((REPO_ROOT / "datasets" / "penguins.json").read_text()))


def refusal(path, layout) -> str:
    with pytest.raises(DataRefused) as raised:
        check_data_file(path, layout)
    return str(raised.value)


def test_a_readable_file_passes_and_a_gzip_one_is_read_through_gzip(car_data, car, tmp_path):
    assert check_data_file(car_data, car) is False
    packed = tmp_path / "car.csv"  # gzip content under a .csv name
    packed.write_bytes(gzip.compress(car_data.read_bytes()))
    assert check_data_file(packed, car) is True
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('vhigh,"vhigh",2,2, "small",low,unacc\r\n')
    assert check_data_file(quoted, car) is False


def test_an_empty_file_or_blank_lines_are_refused(car, tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    assert refusal(tmp_path / "empty.csv", car) == f"{tmp_path / 'empty.csv'} is empty: there are no rows to train on"
    (tmp_path / "blank.csv").write_text("\n  \n\n")
    assert "holds only blank lines" in refusal(tmp_path / "blank.csv", car)


def test_a_header_row_alone_is_refused(penguins, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(",".join(c.name for c in penguins.columns) + "\n")
    assert refusal(path, penguins) == f"{path} holds only its header row (line 1): there are no rows to train on"


@pytest.mark.parametrize("content, kind", [
    (b"%PDF-1.7\n...", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n....", "a PNG image"),
    (b"PAR1\x15\x04", "a Parquet file"),
    ("a,b\n".encode("utf-16"), "NUL bytes"),
])
def test_a_file_that_is_not_text_is_named_by_what_it_looks_like(car, tmp_path, content, kind):
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    message = refusal(path, car)
    assert message.startswith(f"{path} is not a text file") and kind in message


def test_a_workbook_is_told_to_be_saved_as_csv(car, tmp_path):
    path = tmp_path / "cars.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    assert "a ZIP archive (an .xlsx workbook is one: save the sheet as CSV)" in refusal(path, car)


def test_text_that_is_not_utf8_names_its_line(car, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"vhigh,vhigh,2,2,small,low,unacc\nvhigh,vhigh,2,2,small,low,unacc\nh\xe9,vhigh,2,2,small,low,unacc\n")
    assert refusal(path, car) == f"{path}: line 3 is not valid UTF-8 text (save the file as UTF-8)"


def test_first_lines_with_the_wrong_field_count_are_named_with_the_specs_columns(car, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("".join(f"{i},{i + 1},{i + 2}\n" for i in range(30)))
    assert refusal(path, car) == (
        f"{path}: 20 of its first 20 line(s) do not have 7 comma-separated fields (buying, maint, doors, persons, "
        "lug_boot, safety, class): line 1 (3 fields), line 2 (3 fields), line 3 (3 fields), line 4 (3 fields), "
        "line 5 (3 fields). Is this the file for the spec 'car'?")


def test_make_local_refuses_an_empty_file_at_once_in_the_users_path(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    started = time.monotonic()
    assert runner.main(["--data", str(path), "--out", str(tmp_path / "out")]) == 2
    # No Spark, no local account: the refusal is all that happens.
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert err.strip() == f"error: {path} is empty: there are no rows to train on"
    assert "scratch" not in err and not (tmp_path / "out").exists()


def test_spec_draft_reads_gzip_under_any_name_and_names_what_it_cannot_read(tmp_path):
    from localmode import datasets
    from localmode.spec_draft import DraftRefused, draft_spec

    plain, _ = datasets.build("penguins", tmp_path)
    rows = plain.read_bytes()
    packed = tmp_path / "birds.csv"  # gzip content under a .csv name, as issue 23 found it
    packed.write_bytes(gzip.compress(rows))
    spec, _ = draft_spec(packed, "species")
    assert spec["name"] == "birds" and spec["columns"] == draft_spec(plain, "species")[0]["columns"]
    (tmp_path / "birds.csv.gz").write_bytes(gzip.compress(rows))
    assert draft_spec(tmp_path / "birds.csv.gz", "species")[0]["columns"] == spec["columns"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(rows[:rows.index(b"\n", 5000) + 1] + "Adelie,Dre\xe9m,1,1,1,1,male,2007\n".encode("latin-1"))
    line = rows[:rows.index(b"\n", 5000) + 1].count(b"\n") + 1
    with pytest.raises(DraftRefused, match=rf"latin\.csv: line {line} is not valid UTF-8 text"):
        draft_spec(latin, "species")
    pdf = tmp_path / "report.csv"
    pdf.write_bytes(b"%PDF-1.4\n")
    with pytest.raises(DraftRefused, match="is not a text file: it looks like a PDF document"):
        draft_spec(pdf, "species")
