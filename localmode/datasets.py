"""`python -m localmode datasets build NAME|all --out DIR`: the project's test datasets, one per
label type, written as CSV next to nothing else; their specs are `datasets/<name>.json`.

Each is built from a file a PyPI package ships (nothing third-party is committed here) with
seeded, documented changes, so the same command writes the same bytes everywhere:

| name | source | label | what it exercises |
|---|---|---|---|
| penguins | palmerpenguins 0.1.6, `data/penguins.csv` as shipped | species (first column), 3 classes, learned | header row, NA cells, learned categories with a cap (island: 2 + "other"), a categorical with missing cells (sex), mean and median imputing |
| breast-cancer | scikit-learn 1.9.1, `load_breast_cancer` (its 30 measurements) | diagnosis (last column), benign/malignant | no header, 30 numeric columns (too long a schema under their own names: served as c1..c30 by CSV), missing cells as "", NA and ? |
| digits-wide | scikit-learn 1.9.1, `load_digits`, and 36 seeded columns with no signal | digit (last column), 10 classes | 100 features (served by JSON requests that carry the schema), near-constant pixel columns, empty cells in numeric and categorical noise |
| weather | vega_datasets 0.9.0, `seattle-weather.csv` | weather (last column), 5 unequal classes | a date column (year/month/day with slashes; 2% blanked), four numbers |
| diabetes | scikit-learn 1.9.1, `load_diabetes(scaled=False)` | progression (a number, 7th of 14 columns) | regression, an ignored id column, a listed categorical with missing cells, a learned one with a cap, the spec's own missing marker (N/A) |
"""
from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
from pathlib import Path

from localmode import REPO_ROOT

SPEC_DIR = REPO_ROOT / "datasets"
SEED = 20261130


def _number(value: float) -> str:
    """A float as the shortest text that reads back the same; whole numbers without '.0'."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _write_rows(path: Path, rows: list[list[str]], header: list[str] | None) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def _blank_cells(rows: list[list[str]], columns: list[int], share: float, markers: list[str], seed: int) -> None:
    """Replaces about `share` of the cells of each column in `columns` by a missing marker, in place."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for column in columns:
        hit = rng.random(len(rows)) < share
        choice = rng.integers(0, len(markers), size=len(rows))
        for i in np.flatnonzero(hit):
            rows[i][column] = markers[choice[i]]


def build_penguins(path: Path) -> None:
    """The palmerpenguins package's CSV, byte for byte (header, NA markers, species first)."""
    import importlib.util

    package = importlib.util.find_spec("palmerpenguins")
    source = Path(package.submodule_search_locations[0]) / "data" / "penguins.csv"
    shutil.copyfile(source, path)


def build_breast_cancer(path: Path) -> None:
    """Wisconsin diagnostic breast cancer: the 30 measurements, then the diagnosis; no header row.
    About 4% of the cells of three columns are blanked (seeded) with "", NA or ?.

    Thirty features whose names make a 1,369-character schema, more than SageMaker's 1024 for a
    container environment value: the bundle names them c1..c30 and requests stay CSV
    (dataset_spec.serving)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    columns = [str(n).replace(" ", "_") for n in data.feature_names]
    # sklearn's target: 0 = malignant, 1 = benign (data.target_names).
    names = [str(n) for n in data.target_names]
    rows = [[_number(value) for value in features] + [names[int(target)]]
            for features, target in zip(data.data, data.target)]
    blanked = [columns.index(n) for n in ("mean_texture", "mean_smoothness", "mean_concavity")]
    _blank_cells(rows, blanked, 0.04, ["", "NA", "?"], SEED)
    _write_rows(path, rows, header=None)


def build_digits_wide(path: Path) -> None:
    """100 features: scikit-learn's 8x8 handwritten digits (Alpaydin and Kaynak 1998; 1,797 rows,
    64 pixel intensities 0-16, many columns all or nearly all zero) and 36 columns that carry no
    signal (seeded): 30 numbers `sensor_00`.. and 6 categories `site_0`.. of four values, 2% of
    their cells empty. Header row; the label `digit` (d0..d9) last.

    Too wide for any schema in a container environment value: the endpoint takes JSON requests
    that carry the schema (dataset_spec.serving)."""
    import numpy as np
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(SEED)
    header = ([f"pixel_{r}_{c}" for r in range(8) for c in range(8)] + [f"sensor_{i:02d}" for i in range(30)]
              + [f"site_{i}" for i in range(6)] + ["digit"])
    sites = np.array(["north", "south", "east", "west"])
    rows = []
    for pixels, target in zip(data.data, data.target):
        rows.append([_number(v) for v in pixels] + [_number(round(float(v), 3)) for v in rng.normal(size=30)]
                    + list(rng.choice(sites, size=6)) + [f"d{int(target)}"])
    _blank_cells(rows, list(range(64, 100)), 0.02, [""], SEED + 2)
    _write_rows(path, rows, header=header)


def build_weather(path: Path) -> None:
    """Seattle's daily weather 2012-2015 (vega_datasets 0.9.0, `_data/seattle-weather.csv`, as
    shipped): the date (2012/01/01: year first with slashes), precipitation, temp_max, temp_min, wind
    and the weather, five classes from 714 days (sun) to 23 (snow). Header row. About 2% of the
    dates are blanked (seeded), so the date's parts are imputed there."""
    import importlib.resources

    source = importlib.resources.files("vega_datasets") / "_data" / "seattle-weather.csv"
    lines = list(csv.reader(io.StringIO(source.read_text(encoding="utf-8"))))
    header, rows = lines[0], lines[1:]
    _blank_cells(rows, [header.index("date")], 0.02, [""], SEED + 3)
    _write_rows(path, rows, header=header)


def _age_group(age: float) -> str:
    return f"{int(age) // 10 * 10}s"


def build_diabetes(path: Path) -> None:
    """Diabetes progression one year after baseline (Efron et al. 2004), raw units, with a header.

    Columns: patient_id (p001...), age, age_group (the age's decade: a learned category), sex (1/2),
    bmi, bp, progression (the label), s1..s6. About 3% of bmi, bp and s1..s6 cells are blanked
    (seeded) with "" or N/A, and 2% of sex cells with "".
    """
    from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    names = [str(n) for n in data.feature_names]  # age, sex, bmi, bp, s1..s6
    header = ["patient_id", "age", "age_group", "sex", "bmi", "bp", "progression", "s1", "s2", "s3", "s4", "s5", "s6"]
    rows = []
    for i, (features, target) in enumerate(zip(data.data, data.target)):
        value = dict(zip(names, features))
        rows.append([f"p{i + 1:03d}", _number(value["age"]), _age_group(value["age"]), _number(value["sex"]),
                     _number(value["bmi"]), _number(value["bp"]), _number(target),
                     *[_number(value[f"s{k}"]) for k in range(1, 7)]])
    _blank_cells(rows, [header.index(n) for n in ("bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")], 0.03,
                 ["", "N/A"], SEED)
    _blank_cells(rows, [header.index("sex")], 0.02, [""], SEED + 1)
    _write_rows(path, rows, header=header)


BUILDERS = {
    "penguins": build_penguins,
    "breast-cancer": build_breast_cancer,
    "diabetes": build_diabetes,
    "digits-wide": build_digits_wide,
    "weather": build_weather,
}


def spec_path(name: str) -> Path:
    return SPEC_DIR / f"{name}.json"


def build(name: str, out_dir: Path) -> tuple[Path, Path]:
    """Writes `<out_dir>/<name>.csv`; returns (data file, spec file)."""
    if name not in BUILDERS:
        raise KeyError(f"unknown dataset {name!r} (known: {', '.join(BUILDERS)})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.csv"
    BUILDERS[name](path)
    return path, spec_path(name)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmode datasets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="write a dataset's CSV; prints `DATA=<csv> SPEC=<json>`")
    build_cmd.add_argument("name", choices=[*BUILDERS, "all"])
    build_cmd.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "datasets", help="default: %(default)s")
    commands.add_parser("list", help="the datasets and their specs")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in BUILDERS:
            print(f"{name}\t{spec_path(name)}")
        return 0
    for name in BUILDERS if args.name == "all" else [args.name]:
        data, spec = build(name, args.out)
        print(f"DATA={data} SPEC={spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
