"""`make real-tables`: tables the project did not design, each drafted with only `--label` and
run once as `make local AUTO_APPROVE=1` runs it, against a scikit-learn HistGradientBoosting
baseline trained and scored on the same split. Writes docs/real-tables.md.

Every table comes from a file a PyPI wheel ships (scikit-learn, palmerpenguins, vega_datasets:
nothing is downloaded), written with the quirk it stands for (R's write.csv, rows sorted by the
label, quoted text, no final newline). The run is the command's own (runner.execute on one local
account, under the template's IAM); the baseline reads the run's test split from the local S3 and
trains on every other input row (train + validation: the model's training rows plus its
early-stopping rows), scoring the gate's metric on the whole test split.
"""
from __future__ import annotations

import argparse
import collections
import csv
import io
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "functions" / "common")]

SEED = 20261208
# How far QA may be from the baseline on the same split: a test split of 50 to 300 rows moves a
# score by a few hundredths.
MARGIN = 0.05


def _number(value) -> str:
    value = float(value)
    return "" if value != value else str(int(value)) if value.is_integer() else repr(round(value, 6))


def _write(path: Path, header: list[str] | None, rows: list[list[str]], final_newline: bool = True,
           quoting: int = csv.QUOTE_MINIMAL) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n", quoting=quoting)
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    path.write_text(text if final_newline else text.rstrip("\n"), encoding="utf-8", newline="")


def weather(path: Path) -> None:
    """vega_datasets' seattle-weather.csv as shipped: a date, four numbers, five unequal classes."""
    import importlib.resources

    source = importlib.resources.files("vega_datasets") / "_data" / "seattle-weather.csv"
    path.write_bytes(source.read_bytes())


def cars(path: Path) -> None:
    """vega_datasets' cars: every text field quoted, empty cells for the missing numbers, the model
    year as a date, no final newline; label Origin (USA, Europe, Japan)."""
    from vega_datasets import data

    frame = data.cars()
    header = list(frame.columns)
    rows = [[str(v) if isinstance(v, str) else (str(v.date()) if hasattr(v, "date") else _number(v))
             for v in record] for record in frame.itertuples(index=False)]
    _write(path, header, rows, final_newline=False, quoting=csv.QUOTE_NONNUMERIC)


def penguins_r(path: Path) -> None:
    """palmerpenguins as R's write.csv writes it: row names under an empty first header cell, every
    text quoted, NA for missing; rows in the package's order (by species)."""
    import importlib.util

    package = importlib.util.find_spec("palmerpenguins")
    with open(Path(package.submodule_search_locations[0]) / "data" / "penguins.csv", newline="") as handle:
        lines = list(csv.reader(handle))
    header, rows = lines[0], lines[1:]
    buffer = io.StringIO(newline="")
    buffer.write(",".join(['""'] + [f'"{h}"' for h in header]) + "\n")
    for number, row in enumerate(rows, start=1):
        cells = [f'"{number}"'] + [v if v == "NA" or v.replace(".", "", 1).isdigit() else f'"{v}"' for v in row]
        buffer.write(",".join(cells) + "\n")
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def diabetes_sorted(path: Path) -> None:
    """scikit-learn's diabetes in raw units, rows sorted by the label (regression in runs of it)."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    names = [str(n) for n in data.feature_names]
    rows = sorted(([_number(v) for v in features] + [_number(target)] for features, target in zip(data.data, data.target)),
                  key=lambda row: float(row[-1]))
    _write(path, names + ["progression"], rows)


def breast_cancer(path: Path) -> None:
    """scikit-learn's breast cancer: 30 measurements with long names, header row, label last."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    labels = [str(n) for n in data.target_names]
    _write(path, names + ["diagnosis"],
           [[_number(v) for v in features] + [labels[int(t)]] for features, t in zip(data.data, data.target)])


def digits_wide(path: Path) -> None:
    from localmode.datasets import build_digits_wide

    build_digits_wide(path)


def no_signal(path: Path) -> None:
    """digits-wide's 36 noise columns with a label drawn at random: nothing to learn, must not deploy."""
    import numpy as np

    from localmode.datasets import build_digits_wide

    build_digits_wide(path)
    with open(path, newline="") as handle:
        lines = list(csv.reader(handle))
    rng = np.random.default_rng(SEED)
    header = lines[0][64:100] + ["outcome"]
    rows = [row[64:100] + [str(rng.choice(["yes", "no"]))] for row in lines[1:]]
    _write(path, header, rows)


@dataclass(frozen=True)
class Table:
    name: str
    label: str
    build: Callable[[Path], None]
    shape: str
    expect: str = "deployed"


TABLES = [
    Table("weather", "weather", weather, "1,461 rows, a date, 4 numbers, 5 classes from 714 to 23 rows"),
    Table("cars", "Origin", cars, "406 rows, quoted names, empty numbers, a date, no final newline"),
    Table("penguins-r", "species", penguins_r, "344 rows as R's write.csv: row names, quotes, NA; sorted by label"),
    Table("diabetes-sorted", "progression", diabetes_sorted, "442 rows of regression sorted by the label"),
    Table("breast-cancer-30", "diagnosis", breast_cancer, "569 rows, 30 features with long names"),
    Table("digits-wide", "digit", digits_wide, "1,797 rows, 100 features (64 pixels, 36 noise), 10 classes"),
    Table("no-signal", "outcome", no_signal, "1,797 rows, 36 noise features, a random two-class label", "failed"),
]


def read_rows(path: Path, spec: dict) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if row]
    return rows[1:] if spec["header"] == "yes" else rows


def baseline(spec: dict, input_rows: list[list[str]], test_rows: list[list[str]], gate: dict,
             label_values: list[str] | None) -> float:
    """HistGradientBoosting on every input row that is not in the test split, scored on the test split."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

    from dataset_spec import parse_spec
    from dataset_spec.dates import python_parts

    layout = parse_spec(spec)
    features = layout.features
    markers = {c.name: set(c.missing_values) | {""} for c in layout.columns}

    def key(fields: list[str]) -> tuple:
        # Spark writes a number as it reads it back ("1e2" -> "100.0"): compared as numbers.
        return tuple("" if v in markers[c.name] else float(v) if c.type == "numeric" else v
                     for c, v in zip(features + [layout.label], fields))

    picked = [[row[c.position] for c in features] + [row[layout.label.position]] for row in input_rows]
    held = collections.Counter(key(r) for r in test_rows)
    train = []
    for row in picked:
        k = key(row)
        if held[k] > 0:
            held[k] -= 1
        else:
            train.append(row)
    missing = [k for k, n in held.items() if n > 0]
    assert not missing, f"{len(missing)} test rows are not in the input file, e.g. {missing[:2]}"
    codes = {c.name: {} for c in features if c.type == "categorical"}

    # A date is its four parts (Python's calendar), as the pipeline's model sees it.
    width = {c.name: 4 if c.type == "date" else 1 for c in features}

    def matrix(rows):
        out = np.full((len(rows), sum(width.values())), np.nan)
        for i, row in enumerate(rows):
            j = 0
            for c, v in zip(features, row):
                if v not in markers[c.name]:
                    if c.type == "date":
                        out[i, j:j + 4] = python_parts(v, c.date_format) or [np.nan] * 4
                    else:
                        out[i, j] = float(v) if c.type == "numeric" else codes[c.name].setdefault(v, len(codes[c.name]))
                j += width[c.name]
        return out

    x_train, x_test = matrix(train), matrix(test_rows)
    # HistGradientBoosting takes at most 255 categories a column; past that the codes are numbers.
    categorical = [flag for c in features
                   for flag in [c.type == "categorical" and len(codes[c.name]) <= 255] * width[c.name]]
    metric = gate["metric"]
    if layout.classification:
        model = HistGradientBoostingClassifier(categorical_features=categorical, random_state=0)
        model.fit(x_train, [r[-1] for r in train])
        truth = [r[-1] for r in test_rows]
        predicted = model.predict(x_test)
        if metric == "accuracy":
            return float(accuracy_score(truth, predicted))
        if metric == "macro_f1":
            return float(f1_score(truth, predicted, average="macro"))
        positive = label_values[1]
        column = list(model.classes_).index(positive)
        return float(roc_auc_score([t == positive for t in truth], model.predict_proba(x_test)[:, column]))
    model = HistGradientBoostingRegressor(categorical_features=categorical, random_state=0)
    model.fit(x_train, [float(r[-1]) for r in train])
    truth = [float(r[-1]) for r in test_rows]
    predicted = model.predict(x_test)
    return float({"r2": r2_score, "mae": mean_absolute_error,
                  "rmse": lambda a, b: mean_squared_error(a, b) ** 0.5}[metric](truth, predicted))


def read_object(uri: str) -> bytes:
    import boto3

    bucket, _, key = uri[len("s3://"):].partition("/")
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def test_split(uri: str) -> list[list[str]]:
    import boto3

    s3 = boto3.client("s3")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    rows = []
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        text = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8")
        rows.extend(row for row in csv.reader(io.StringIO(text)) if row)
    return rows


def run(out: Path, only: list[str]) -> list[dict]:
    from localmode import runner
    from localmode.__main__ import main as localmode_main
    from localmode.faults import Faults
    from localmode.iam.enforce import as_harness
    from localmode.session import LocalPipeline

    tables = [t for t in TABLES if not only or t.name in only]
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    drafted = {}
    for table in tables:
        data = data_dir / f"{table.name}.csv"
        table.build(data)
        spec_path = data_dir / f"{table.name}.json"
        started = time.monotonic()
        if localmode_main(["spec", "draft", str(data), "--label", table.label, "--out", str(spec_path)]) != 0:
            raise SystemExit(f"spec draft refused {table.name}")
        drafted[table.name] = (data, spec_path, round(time.monotonic() - started, 1))
    results = []
    lines: list[str] = []
    with LocalPipeline(out / "account", say=lines.append, extra_specs=[s for _, s, _ in drafted.values()]) as pipeline:
        for table in tables:
            data, spec_path, draft_seconds = drafted[table.name]
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
            args = runner.parse_args(["--auto-approve", "--data", str(data), "--spec", str(spec_path)])
            exit_code, report_path = runner.execute(pipeline, args, data, Faults(), dataset=spec["name"])
            report = json.loads(report_path.read_text(encoding="utf-8"))
            qa = report.get("qa") or {}
            qa_report = qa.get("report") or {}
            entry = {"table": table.name, "shape": table.shape, "expect": table.expect,
                     "features": len([c for c in spec["columns"] if c["type"] != "ignore"]) - 1,
                     "ignored": [c["name"] for c in spec["columns"] if c["type"] == "ignore"],
                     "gate": spec["quality_gate"], "outcome": report["outcome"], "exit_code": exit_code,
                     "qa_value": qa.get("value"), "qa_rows": qa.get("rows"), "seconds": report["seconds"],
                     "draft_seconds": draft_seconds,
                     "failure": (report.get("failure") or {}).get("message")}
            manifest_uris = (report.get("artifacts") or {}).get("manifest")
            if manifest_uris:
                with as_harness():
                    rows = test_split(manifest_uris["test"])
                entry["test_rows"] = len(rows)
                with as_harness():
                    schema = json.loads(read_object(manifest_uris["preprocess_schema"]))
                fields = rows[0][:-1]
                entry["serving"] = {"request_content_type": (report.get("smoke") or {}).get("request_content_type"),
                                    "schema_characters": len(json.dumps(schema, separators=(",", ":"))),
                                    "json_request_bytes": len(json.dumps({"schema": schema, "data": fields},
                                                                         separators=(",", ":")).encode("utf-8"))}
                entry["baseline"] = baseline(spec, read_rows(data, spec), rows, spec["quality_gate"],
                                             qa_report.get("labels"))
            results.append(entry)
            print(json.dumps(entry), flush=True)
    return results


def render(results: list[dict], seconds: float) -> str:
    lines = [
        "# Real tables, first runs",
        "",
        "Written by `make real-tables` (scripts/real_tables.py): each table built from a file a wheel ships,",
        "`spec draft <file> --label <label>` with nothing else, then one run as `make local AUTO_APPROVE=1`",
        "makes it, on one local account under the template's IAM. Baseline: scikit-learn",
        "HistGradientBoosting (default settings, categorical columns as categories) trained on every input",
        "row outside the run's test split and scored by the drafted gate's metric on the whole test split;",
        "QA scores the endpoint on a seeded stratified sample of that split (all of it below 5,000 rows).",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}; {seconds:.0f} s in all.",
        "",
        "| table | shape | features (ignored) | drafted gate | QA (rows) | baseline | QA - baseline | first run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        gate = f"{r['gate']['metric']} >= {r['gate']['threshold']}" if r["gate"].get("threshold") is not None \
            else f"{r['gate']['metric']} (stack default)"
        if r["gate"]["metric"] in ("rmse", "mae"):
            gate = gate.replace(">=", "<=")
        qa = f"{r['qa_value']:.4f} ({r['qa_rows']})" if r.get("qa_value") is not None else "-"
        base = f"{r['baseline']:.4f}" if r.get("baseline") is not None else "-"
        diff = (f"{r['qa_value'] - r['baseline'] + 0.0:+.4f}".replace("-0.0000", "+0.0000")
                if r.get("qa_value") is not None and r.get("baseline") is not None else "-")
        ignored = f"{r['features']} ({', '.join(r['ignored'])})" if r["ignored"] else str(r["features"])
        outcome = r["outcome"] + ("" if r["outcome"] == r["expect"] else f" (expected {r['expect']})")
        lines.append(f"| {r['table']} | {r['shape']} | {ignored} | {gate} | {qa} | {base} | {diff} | {outcome} |")
    compared = [(r["table"], abs(r["qa_value"] - r["baseline"])) for r in results
                if r.get("qa_value") is not None and r.get("baseline") is not None]
    if compared:
        worst = max(compared, key=lambda entry: entry[1])
        lines += ["", f"Largest gap between QA and the baseline: {worst[1]:.4f} ({worst[0]}). The margin these runs "
                  f"are held to is {MARGIN} (a test split of 50 to 300 rows moves a score by a few hundredths)."]
    served = [r for r in results if r.get("serving")]
    if served:
        lines += ["", "How each endpoint takes a request (dataset_spec.serving): the preprocess schema's length, and",
                  "the request a client sends.", "", "| table | features | schema (characters) | request |",
                  "|---|---|---|---|"]
        for r in served:
            s = r["serving"]
            request = ("one CSV record" if s["request_content_type"] == "text/csv"
                       else f"JSON with the schema, {s['json_request_bytes']} bytes")
            lines.append(f"| {r['table']} | {r['features']} | {s['schema_characters']} | {request} |")
    lines += ["", "Failures, as the run reported them:", ""]
    lines += [f"- {r['table']}: {r['failure']}" for r in results if r.get("failure")] or ["- none"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "real-tables")
    parser.add_argument("--only", action="append", default=[], help="a table name (repeatable)")
    parser.add_argument("--write", type=Path, default=REPO_ROOT / "docs" / "real-tables.md")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = run(args.out, args.only)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if not args.only:
        args.write.write_text(render(results, time.monotonic() - started), encoding="utf-8")
        print(f"wrote {args.write}")
    unexpected = [r["table"] for r in results if r["outcome"] != r["expect"]
                  or (r.get("qa_value") is not None and r.get("baseline") is not None
                      and abs(r["qa_value"] - r["baseline"]) > MARGIN)]
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
