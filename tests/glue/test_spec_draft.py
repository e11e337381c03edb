"""`python -m localmode spec draft`: a spec drafted from a CSV with a header row, which the job
then accepts; and refusals that name the column and why, writing nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataset_spec import parse_spec
from localmode import datasets
from localmode.__main__ import main as localmode_main
from localmode.spec_draft import DraftRefused, draft_spec


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("draft-data")
    for name in ("penguins", "diabetes", "breast-cancer"):
        datasets.build(name, root)
    return root


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


def column(spec: dict, name: str) -> dict:
    return next(c for c in spec["columns"] if c["name"] == name)


def test_penguins_draft_types_listed_values_and_missing_cells(built):
    spec, notes = draft_spec(built / "penguins.csv", "species")
    assert spec["name"] == "penguins" and spec["header"] == "yes" and spec["label"] == "species"
    assert column(spec, "species") == {"name": "species", "type": "categorical",
                                       "values": ["Adelie", "Chinstrap", "Gentoo"]}
    assert column(spec, "island")["values"] == ["Biscoe", "Dream", "Torgersen"]
    assert column(spec, "island")["allow_missing"] is False
    assert column(spec, "sex")["allow_missing"] is True and "11 of 344 cells missing" in column(spec, "sex")["description"]
    assert column(spec, "bill_length_mm")["type"] == "numeric"
    assert "2 of 344 cells missing" in column(spec, "bill_length_mm")["description"]
    assert spec["quality_gate"]["metric"] == "accuracy" and "binary_threshold" not in spec
    parse_spec(spec)


def test_diabetes_draft_finds_regression_and_an_identifier(built):
    spec, notes = draft_spec(built / "diabetes.csv", "progression")
    assert column(spec, "progression") == {"name": "progression", "type": "numeric"}
    assert column(spec, "patient_id")["type"] == "ignore" and any("patient_id" in n for n in notes)
    assert column(spec, "age_group")["values"] == ["10s", "20s", "30s", "40s", "50s", "60s", "70s"]
    # The file's own marker is N/A, one of the defaults: those cells count as missing, not as text.
    assert column(spec, "bmi")["type"] == "numeric" and "13 of 442 cells missing" in column(spec, "bmi")["description"]
    assert spec["quality_gate"]["metric"] == "r2"


def test_few_whole_numbers_as_label_are_classes_unless_told_otherwise(tmp_path):
    path = write(tmp_path, "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    spec, notes = draft_spec(path, "y")
    assert column(spec, "y") == {"name": "y", "type": "categorical", "values": ["0", "1"]}
    assert spec["binary_threshold"] == 0.5 and any("--label-type numeric" in n for n in notes)
    spec, _ = draft_spec(path, "y", label_type="numeric")
    assert column(spec, "y")["type"] == "numeric" and spec["quality_gate"]["metric"] == "r2"


def test_many_text_values_are_learned_with_a_cap(tmp_path):
    path = write(tmp_path, "city,y\n" + "".join(f"c{i % 30},{'ab'[i % 2]}\n" for i in range(90)))
    spec, _ = draft_spec(path, "y")
    assert column(spec, "city")["max_categories"] == 20 and "values" not in column(spec, "city")
    spec, _ = draft_spec(path, "y", max_listed=30)
    assert len(column(spec, "city")["values"]) == 30


@pytest.mark.parametrize("text, label, expected", [
    ("a,b,y\n1,,x\n2,,z\n", "y", "column 'b' has no value in any of the 2 rows"),
    ("a,y\n1,x\n2,x\n3,x\n", "y", "label column 'y' has a single value ('x') in all 3 rows: nothing to predict"),
    ("a,y\n1,x\n2,\n3,z\n", "y", "label column 'y' is missing on 1 row(s) (e.g. line(s) 3): every row needs a label"),
    ("a,y\n1,x\n2.5,z\nabc,x\n", "y", "column 'a' mixes numbers (2 cells, e.g. '1' on line 2, '2.5' on line 3) and "
                                      "text (1 cells, e.g. 'abc' on line 4)"),
    ("a,y\n1,x\n2,z,9\n", "y", "rows of another length than the 2 column names of line 1, e.g. on line(s) 3"),
    ("a,y\n1,x\n", "z", "--label 'z' is not a column (line 1 names: a, y)"),
    ("a.b,y\n1,x\n2,z\n", "y", "column name(s) ['a.b'] on line 1 cannot be spec names"),
    ("a,A,y\n1,2,x\n2,3,z\n", "y", "column name(s) ['A', 'a'] appear more than once"),
    ("1.5,2,x\n1,2,y\n", "x", "line 1 holds numbers (1.5, 2, x), not column names"),
    ("", "y", "line 1 should hold the column names, and the file is empty"),
], ids=["all-empty", "one-class", "label-missing", "mixed", "ragged", "no-label", "bad-name", "duplicate",
        "no-header", "empty"])
def test_refusals_name_the_column_and_why(tmp_path, text, label, expected):
    with pytest.raises(DraftRefused) as caught:
        draft_spec(write(tmp_path, text), label)
    assert expected in str(caught.value)


def test_the_command_writes_nothing_when_it_refuses_and_a_valid_spec_otherwise(tmp_path, built, capsys):
    out = tmp_path / "out" / "spec.json"
    bad = write(tmp_path, "a,y\n1,x\n2,x\n")
    assert localmode_main(["spec", "draft", str(bad), "--label", "y", "--out", str(out)]) == 2
    assert "error: no spec drafted: label column 'y' has a single value" in capsys.readouterr().err
    assert not out.exists()
    assert localmode_main(["spec", "draft", str(built / "penguins.csv"), "--label", "species", "--out", str(out),
                           "--name", "birds", "--missing-values", "NA,-"]) == 0
    spec = json.loads(out.read_text())
    assert spec["name"] == "birds" and spec["missing_values"] == ["NA", "-"]


@pytest.mark.spark
def test_the_job_accepts_a_drafted_spec_unchanged(built, run_job, tmp_path):
    spec, _ = draft_spec(built / "penguins.csv", "species")
    run = run_job(built / "penguins.csv", tmp_path / "run", spec=spec)
    assert run.manifest["problem_type"] == "multiclass" and run.manifest["rows"]["total"] == 344
    assert run.manifest["missing_cells"]["sex"] == 11


def test_a_column_that_numbers_the_rows_is_drafted_as_ignore_and_a_measurement_is_not(tmp_path):
    # A real table's row number (1..4454, one per row) had been drafted as a numeric feature (issue 22).
    rows = "".join(f"{i + 1},{(i * 37) % 1009},{i % 7},{'ab'[i % 2]}\n" for i in range(60))
    spec, notes = draft_spec(write(tmp_path, "row,distinct_measure,small,y\n" + rows), "y")
    assert column(spec, "row")["type"] == "ignore"
    assert any("'row' numbers the rows (1 to 60, one per row, no gap)" in n for n in notes)
    # Distinct whole numbers with gaps are a measurement; repeated ones too.
    assert column(spec, "distinct_measure")["type"] == "numeric" and column(spec, "small")["type"] == "numeric"


def test_near_unique_text_is_drafted_as_ignore_and_many_categories_are_not(tmp_path):
    # A passenger table's names: 1,310 distinct in 1,313 rows had become a 20-slot categorical (issue 22).
    names = [f"Passenger {i}" for i in range(58)] + ["Passenger 1", "Passenger 2"]
    rows = "".join(f"{name},c{i % 25},{'ab'[i % 2]}\n" for i, name in enumerate(names))
    spec, notes = draft_spec(write(tmp_path, "name,cabin_deck,y\n" + rows), "y")
    assert column(spec, "name")["type"] == "ignore"
    assert any("'name' has 58 distinct values in 60 cells" in n for n in notes)
    assert column(spec, "cabin_deck")["type"] == "categorical"



def test_the_drafted_gate_comes_from_a_quick_model_on_the_file(built):
    # The stack's 0.95 failed every real classification table's first run (issue 22): the draft proposes one.
    spec, notes = draft_spec(built / "penguins.csv", "species")
    [note] = [n for n in notes if n.startswith("quality_gate.threshold")]
    threshold = spec["quality_gate"]["threshold"]
    score = float(note.split("accuracy ")[1].split(" ")[0])
    # Below what the cross-validated model reaches, far above the majority class (152 of 344 Adelie).
    assert 152 / 344 + 0.2 < threshold < score and "5-fold cross-validated" in note
    regression, notes = draft_spec(built / "diabetes.csv", "progression")
    assert 0 < regression["quality_gate"]["threshold"] < 0.5 and any(n.startswith("quality_gate.threshold") for n in notes)


def test_a_table_without_signal_gets_a_gate_above_its_baseline_so_it_fails(tmp_path):
    import random

    rng = random.Random(7)
    rows = "".join(f"{rng.random():.4f},{rng.choice('xyz')},{'ab'[i % 2]}\n" for i in range(200))
    spec, notes = draft_spec(write(tmp_path, "noise,letter,y\n" + rows), "y")
    assert spec["quality_gate"]["threshold"] == 0.55  # the majority share 0.5, plus 0.05
    assert any("no better than the baseline" in n and "the run will fail" in n for n in notes)


@pytest.mark.slow
@pytest.mark.spark
def test_a_drafted_spec_deploys_on_its_first_run_and_one_without_signal_fails(built, tmp_path):
    import random

    from localmode.session import LocalPipeline
    from localmode.spec_draft import render

    penguins, _ = draft_spec(built / "penguins.csv", "species", name="drafted-penguins")
    rng = random.Random(11)
    noise_data = write(tmp_path, "noise,letter,y\n" + "".join(
        f"{rng.random():.4f},{rng.choice('xyz')},{'ab'[rng.random() < 0.5]}\n" for _ in range(300)))
    noise, _ = draft_spec(noise_data, "y", name="noise")
    paths = []
    for spec in (penguins, noise):
        paths.append(tmp_path / f"{spec['name']}.json")
        paths[-1].write_text(render(spec), encoding="utf-8")
    with LocalPipeline(tmp_path / "account", say=lambda line: None, extra_specs=paths) as pipeline:
        deployed = pipeline.run(built / "penguins.csv", decision="approve", dataset="drafted-penguins")
        refused = pipeline.run(noise_data, decision="approve", dataset="noise")
    assert deployed.report["outcome"] == "deployed", json.dumps(deployed.report["failure"])
    assert deployed.report["qa"]["accuracy"] >= penguins["quality_gate"]["threshold"]
    assert (refused.report["failure"]["state"], refused.report["failure"]["error"]) == ("RunQATests", "QualityBelowThreshold")


@pytest.mark.spark
def test_r_write_csv_row_names_are_drafted_as_ignore_and_the_job_reads_the_file(built, run_job, tmp_path):
    # R's write.csv: an empty first header cell over quoted row numbers, every field quoted (issue 22).
    import csv as csv_module

    with open(built / "penguins.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv_module.reader(handle))
    r_file = tmp_path / "penguins-r.csv"
    with open(r_file, "w", newline="", encoding="utf-8") as handle:
        writer = csv_module.writer(handle, quoting=csv_module.QUOTE_NONNUMERIC, lineterminator="\n")
        writer.writerow(["", *rows[0]])
        for number, row in enumerate(rows[1:], start=1):
            writer.writerow([str(number), *row])
    spec, notes = draft_spec(r_file, "species", name="penguins-r")
    assert spec["columns"][0] == {"name": "row_name", "type": "ignore", "description": "344 distinct values; no name on line 1"}
    assert any("no name on line 1" in n for n in notes)
    job = run_job(r_file, tmp_path / "run", spec=spec, run_id="r-write-csv")
    assert job.manifest["rows"]["total"] == 344


@pytest.mark.slow
@pytest.mark.spark
def test_the_readmes_custom_data_example_runs_as_written(tmp_path, monkeypatch, capsys):
    # README's step 1 and 3, verbatim: the draft must name the dataset after --out, or make local refuses it.
    import re

    from localmode import runner

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    draft_command = re.search(r"`\.venv/bin/python -m localmode (spec draft [^`]+)`", readme).group(1).split()
    run_command = re.search(r"`make local (DATA=[^`]+)`", readme).group(1).split()
    monkeypatch.chdir(tmp_path)
    rows = "".join(f"{i % 5 + 1},{['north', 'south', 'west'][i % 3]},{100 + 7 * (i % 5) + (i % 3)}\n" for i in range(400))
    Path("data.csv").write_text("rooms,area,price\n" + rows, encoding="utf-8")
    assert localmode_main(draft_command) == 0
    variables = dict(item.split("=", 1) for item in run_command)
    printed = capsys.readouterr().err
    assert f"make local DATA={variables['DATA']} SPEC={variables['SPEC']}" in printed
    spec_path, dataset = runner.dataset_of(variables["SPEC"])
    assert dataset == "houses" and json.loads(spec_path.read_text(encoding="utf-8"))["name"] == "houses"
    # make local's variables as the runner's options (what `make local` runs), the output kept in tmp_path.
    monkeypatch.setenv("AUTO_APPROVE", variables.get("AUTO_APPROVE", ""))
    code = runner.main(["--data", variables["DATA"], "--spec", variables["SPEC"], "--out", str(tmp_path / "run")])
    report = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    assert code == 0 and report["outcome"] == "deployed", json.dumps(report["failure"])


def test_a_100_column_table_is_drafted_whole_and_told_its_requests_are_json(tmp_path):
    """The draft once wrote nothing for a wide table ("schema would be 1337 characters"); now every
    feature is kept, and the notes say how the endpoint takes requests (dataset_spec.serving)."""
    data, _ = datasets.build("digits-wide", tmp_path)
    spec, notes = draft_spec(data, "digit")
    assert len([c for c in spec["columns"] if c["type"] != "ignore"]) == 101
    assert any("100 feature columns are too many" in n and "JSON" in n for n in notes)
    parse_spec(spec)


def test_thirty_long_names_are_drafted_and_served_by_csv_under_short_names(tmp_path):
    names = [f"measurement_of_the_sample_{i:02d}" for i in range(30)]
    path = write(tmp_path, ",".join(names + ["y"]) + "\n"
                 + "".join(",".join([str((i * 7 + j) % 13) for j in range(30)] + ["ab"[i % 2]]) + "\n"
                           for i in range(60)))
    spec, notes = draft_spec(path, "y")
    assert any("c1..c30" in n and "requests stay CSV" in n for n in notes)
