"""Date columns through the job: each form's dates become year, month, day of the week and day of
the year inside the bundle (regex_indexer and math_binary nodes), and MLeap runtime 0.20.0 on the
JVM, the local runtime and Spark's own calendar functions agree on every row, across leap days,
century years, times after the date and dates the training file never had; Python's datetime
gives the same parts. A missing or unreadable date is imputed like a missing number; a training
file with a cell that is not a date fails, naming the line."""
from __future__ import annotations

import datetime
import json
import random

import pytest
from bundle_parity import held_out_rows, preprocess_three_ways

from dataset_spec.dates import draft_format, is_ambiguous_date, python_parts
from localmode.spec_draft import draft_spec
from localmode.serving.jvm_runtime import MleapJvmRuntime
from preprocessing.errors import InvalidInputData

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def jvm() -> MleapJvmRuntime:
    return MleapJvmRuntime()

FORMATS = {
    "iso": lambda d: d.strftime("%Y-%m-%d"),
    "us": lambda d: f"{d.month}/{d.day}/{d.year:04d}",
    "eu": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year:04d}",
}
# Dates the training file never holds, in each form: leap days, century years (1900 and 2100 have no
# 29 February, 2000 has), the ends of the year, and far years.
EDGES = [datetime.date(*d) for d in ((2000, 2, 29), (2000, 3, 1), (1900, 3, 1), (2100, 12, 31), (2024, 2, 29),
                                     (2023, 12, 31), (1601, 1, 1), (2399, 12, 31), (2012, 1, 1))]


def spec(date_format: str) -> dict:
    return {"name": f"dates-{date_format}", "header": "yes", "label": "season",
            "columns": [{"name": "when", "type": "date", "format": date_format},
                        {"name": "amount", "type": "numeric"},
                        {"name": "season", "type": "categorical", "values": ["cold", "warm"]}]}


@pytest.fixture(scope="module")
def date_runs(run_job, tmp_path_factory):
    runs = {}

    def get(date_format: str):
        if date_format not in runs:
            root = tmp_path_factory.mktemp(f"dates-{date_format}")
            rng = random.Random(7)
            lines = ["when,amount,season"]
            for i in range(400):
                day = datetime.date(1990, 1, 1) + datetime.timedelta(days=rng.randrange(0, 365 * 30))
                text = "" if i % 40 == 0 else FORMATS[date_format](day)
                lines.append(f"{text},{rng.randrange(100)},{'warm' if 4 <= day.month <= 9 else 'cold'}")
            (root / "data.csv").write_text("\n".join(lines) + "\n")
            runs[date_format] = (run_job(root / "data.csv", root / "run", spec=spec(date_format),
                                         run_id=f"dates-{date_format}"), spec(date_format))
        return runs[date_format]

    return get


@pytest.mark.parametrize("date_format", list(FORMATS))
def test_a_dates_parts_agree_three_ways_and_with_pythons_calendar(date_format, date_runs, jvm, spark, tmp_path):
    run, column_spec = date_runs(date_format)
    manifest = run.manifest
    assert manifest["feature_slots"][:4] == ["when.year", "when.month", "when.day_of_week", "when.day_of_year"]
    surrogates = manifest["learned"]["when"]["surrogates"]
    assert set(surrogates) == {"year", "month", "day_of_week", "day_of_year"}
    texts = [FORMATS[date_format](d) for d in EDGES]
    if date_format == "iso":
        texts += ["2012-01-31T08:30:00", "2012-01-31 08:30", "2012/02/29"]
    unreadable = ["", "NA", "not a date", "2012-13-01" if date_format == "iso" else "13/13/2012", "31/31/2012"]
    rows = held_out_rows(run) + [{"when": t, "amount": "5"} for t in texts + unreadable]
    vectors = preprocess_three_ways(run, tmp_path, jvm, spark, column_spec, rows)
    for text, vector in zip(texts, vectors[len(rows) - len(texts) - len(unreadable):]):
        assert tuple(vector[:4]) == python_parts(text, date_format), text
    for text, vector in zip(unreadable, vectors[-len(unreadable):]):
        assert vector[:4] == [surrogates[p] for p in ("year", "month", "day_of_week", "day_of_year")], text
    assert manifest["missing_cells"]["when"] == 10


def test_a_cell_that_is_not_a_day_of_the_calendar_fails_the_run_naming_its_line(run_job, tmp_path):
    lines = ["when,amount,season"] + [f"2012-0{1 + i % 9}-1{i % 10},{i},{'warm' if i % 2 else 'cold'}" for i in range(60)]
    lines[7] = "2013-02-30,1,cold"
    lines[9] = "yesterday,1,warm"
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputData) as raised:
        run_job(tmp_path / "data.csv", tmp_path / "run", spec=spec("iso"))
    message = str(raised.value)
    assert "2 line(s) have a value that is not a date" in message
    assert "line 8 (when='2013-02-30')" in message and "line 10 (when='yesterday')" in message


def test_the_draft_tells_the_form_and_says_when_it_cannot(tmp_path):
    assert draft_format(["2012-01-31", "2012-02-01T10:00:00"]) == "iso"
    assert draft_format(["1/31/2012", "2/1/2012"]) == "us"
    assert draft_format(["31.01.2012", "01.02.2012"]) == "eu"
    assert draft_format(["01/02/2012", "03/04/2012"]) is None and is_ambiguous_date(["01/02/2012", "03/04/2012"])
    assert draft_format(["2012-01-31", "tomorrow"]) is None
    rng = random.Random(3)
    days = [datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randrange(5000)) for _ in range(200)]
    path = tmp_path / "data.csv"
    path.write_text("day,eu_day,y\n" + "".join(f"{d.isoformat()},{d.day}/{d.month}/{d.year},{d.month % 2}\n" for d in days))
    drafted, notes = draft_spec(path, "y")
    kept = ("name", "type", "format", "impute")
    assert {k: drafted["columns"][0][k] for k in kept} == {"name": "day", "type": "date", "format": "iso", "impute": "median"}
    assert {k: drafted["columns"][1][k] for k in kept} == {"name": "eu_day", "type": "date", "format": "eu", "impute": "median"}
    assert any("'day' holds dates (iso" in n for n in notes)
    json.dumps(drafted)
