"""`python -m localmode spec draft data.csv --label COLUMN [--out spec.json]`: a dataset spec to
review, drafted from a CSV whose first line holds the column names.

Each column's type comes from its cells: numbers only -> numeric (missing cells are imputed), `ignore`
when they number the rows (whole numbers, one per row, no gap); text -> categorical, its values listed
when there are few (--max-listed), learned with a cap otherwise, `ignore` when nearly every row has its
own value (an identifier, names, free text); a categorical feature with missing cells gets
allow_missing. The label: text or a few whole numbers -> classification (its classes listed),
other numbers -> regression (--label-type decides instead). Empty cells and the markers of
--missing-values are missing.

Where the cells do not say, it refuses and names the column and why, and writes nothing: a column
with no value at all, numbers mixed with text, a label with one value or with missing cells, rows
of another length than the header.
"""
from __future__ import annotations

import argparse
import collections
import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dataset_spec import NUMBER_PATTERN, InvalidSpec, parse_spec
from dataset_spec.dates import draft_format, is_ambiguous_date
from dataset_spec.gate import spec_default_metric
from dataset_spec.serving import CSV_REQUEST, MAX_ENVIRONMENT_VALUE, RESERVED_COLUMNS, serving_inputs
from dataset_spec.spec import (DEFAULT_BINARY_THRESHOLD, DEFAULT_MAX_CATEGORIES, DEFAULT_MISSING_VALUES,
                               MAX_LEARNED_CLASSES, is_column_name)
from localmode.gate_evidence import propose_gate
from localmode.precheck import DataRefused, first_undecodable_line, open_text

# Enough distinct values to tell "few" from "many" and to spot identifiers; beyond it only counts grow.
DISTINCT_LIMIT = 10_000
DEFAULT_MAX_LISTED = 20
# A label of at most this many distinct whole numbers is drafted as classes.
MAX_INTEGER_CLASSES = 10
# An identifier: (nearly) every row its own value, and more rows than any listing would hold.
IDENTIFIER_MIN_ROWS = 50
# Text with this share of distinct values among its cells is free text or names, not categories: a slot per
# value would learn nothing (a near-unique name column of 1,310 values in 1,313 rows, issue 22).
NEAR_UNIQUE_SHARE = 0.9
EXAMPLES = 3
ROW_NAMES_COLUMN = "row_name"


class DraftRefused(ValueError):
    """The file does not say what a column is; the message names each such column and why."""


@dataclass
class ColumnStats:
    name: str
    cells: int = 0
    missing: int = 0
    numbers: int = 0
    integers: int = 0
    texts: int = 0
    counts: collections.Counter = field(default_factory=collections.Counter)
    overflow: bool = False  # more than DISTINCT_LIMIT distinct values
    low: float = float("inf")  # the smallest and largest number seen
    high: float = float("-inf")
    number_examples: list = field(default_factory=list)  # (line, value)
    text_examples: list = field(default_factory=list)
    missing_lines: list = field(default_factory=list)

    def add(self, value: str, line: int, missing: bool, number_pattern) -> None:
        self.cells += 1
        if missing:
            self.missing += 1
            if len(self.missing_lines) < EXAMPLES:
                self.missing_lines.append(line)
            return
        if number_pattern.fullmatch(value):
            self.numbers += 1
            self.integers += re.fullmatch(r"[+-]?\d+(\.0*)?", value) is not None
            self.low, self.high = min(self.low, float(value)), max(self.high, float(value))
            if len(self.number_examples) < EXAMPLES:
                self.number_examples.append((line, value))
        else:
            self.texts += 1
            if len(self.text_examples) < EXAMPLES:
                self.text_examples.append((line, value))
        if value in self.counts or len(self.counts) < DISTINCT_LIMIT:
            self.counts[value] += 1
        else:
            self.overflow = True

    @property
    def present(self) -> int:
        return self.cells - self.missing

    @property
    def distinct(self) -> str:
        return f"more than {DISTINCT_LIMIT}" if self.overflow else str(len(self.counts))

    def row_numbers(self) -> bool:
        """Whole numbers, one per row, with no gap: the file's row numbers (or an id counted up), not a measure."""
        return (self.present >= IDENTIFIER_MIN_ROWS and self.missing == 0 and self.integers == self.present
                and all(count == 1 for count in self.counts.values()) and self.high - self.low + 1 == self.present)

    def near_unique_text(self) -> bool:
        # Past DISTINCT_LIMIT only a lower bound on the distinct values is known.
        return self.present >= IDENTIFIER_MIN_ROWS and len(self.counts) >= NEAR_UNIQUE_SHARE * self.present


def _examples(pairs) -> str:
    return ", ".join(f"{value!r} on line {line}" for line, value in pairs)


def _name_from(path: Path) -> str:
    stem = path.name.split(".")[0].lower()
    return re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:32].strip("-")


def natural_order(values, number_pattern) -> list[str]:
    values = list(values)
    if all(number_pattern.fullmatch(v) for v in values):
        return sorted(values, key=lambda v: (float(v), v))
    return sorted(values)


def _read_rows(reader, path: Path, markers: set[str], number_pattern):
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise DraftRefused(f"{path}: line 1 should hold the column names, and the file is empty")
    names = [h.strip() for h in header]
    stats = [ColumnStats(name) for name in names]
    ragged: list[int] = []
    rows = 0
    for line_number, fields in enumerate(reader, start=2):
        if not fields or not "".join(fields).strip():
            continue  # blank lines: the job ignores them too
        if len(fields) != len(names):
            if len(ragged) < EXAMPLES:
                ragged.append(line_number)
            rows += 1
            continue
        rows += 1
        for column, raw in zip(stats, fields):
            value = raw.strip()
            column.add(value, line_number, value == "" or value in markers, number_pattern)
    return stats, rows, names, ragged


def read_stats(path: Path, markers: set[str], number_pattern) -> tuple[list[ColumnStats], int]:
    """Per-column statistics of the file; refuses a file without a usable header or with ragged rows."""
    problems = []
    try:
        handle = open_text(path)
    except DataRefused as exc:
        raise DraftRefused(str(exc)) from None
    with handle:
        try:
            stats, rows, names, ragged = _read_rows(csv.reader(handle), path, markers, number_pattern)
        except UnicodeDecodeError:
            raise DraftRefused(f"{path}: line {first_undecodable_line(path)} is not valid UTF-8 text (save the file "
                               "as UTF-8)") from None
        except EOFError as exc:  # gzip content cut short
            raise DraftRefused(f"{path}: the gzip file is cut short ({exc})") from None
    if ragged:
        problems.append(f"rows of another length than the {len(names)} column names of line 1, e.g. on line(s) "
                        f"{', '.join(map(str, ragged))}")
    if rows == 0:
        problems.append("no data rows after the column names")
    if problems:
        raise DraftRefused(f"{path}: " + "; ".join(problems))
    return stats, rows


def draft_spec(path: Path, label: str, *, name: str | None = None, label_type: str | None = None,
               missing_values: list[str] | None = None, max_listed: int = DEFAULT_MAX_LISTED) -> tuple[dict, list[str]]:
    """(spec, review notes); raises DraftRefused naming every column it cannot draft."""
    number_pattern = re.compile(NUMBER_PATTERN)
    markers = list(DEFAULT_MISSING_VALUES if missing_values is None else missing_values)
    stats, rows = read_stats(Path(path), set(markers), number_pattern)
    refusals, notes = [], []
    # R's write.csv and pandas' to_csv write row names under an empty first header cell; the job reads such a
    # header when that column is ignored.
    row_names = stats[0] if stats[0].name == "" and len(stats) > 1 and label != ROW_NAMES_COLUMN else None
    if row_names is not None and ROW_NAMES_COLUMN not in [s.name for s in stats]:
        row_names.name = ROW_NAMES_COLUMN
    names = [s.name for s in stats]
    if sum(bool(number_pattern.fullmatch(n)) for n in names) * 2 >= len(names):
        raise DraftRefused(f"{path}: line 1 holds numbers ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}), "
                           "not column names: spec draft reads the names from line 1; add a header row")

    bad_names = [n for n in names if not is_column_name(n) or "__" in n or n in RESERVED_COLUMNS]
    if bad_names:
        refusals.append(f"column name(s) {bad_names} on line 1 cannot be spec names (no commas, quotes, dots, "
                        f"backticks, '__', outer spaces; not {', '.join(sorted(RESERVED_COLUMNS))}): rename them")
    lowered = [n.lower() for n in names]
    duplicates = sorted({n for n in names if lowered.count(n.lower()) > 1})
    if duplicates:
        refusals.append(f"column name(s) {duplicates} appear more than once (ignoring case)")
    if label not in names:
        refusals.append(f"--label {label!r} is not a column (line 1 names: {', '.join(names)})")
    if refusals:
        raise DraftRefused("; ".join(refusals))

    columns = []
    for column in stats:
        is_label = column.name == label
        where = f"{'label ' if is_label else ''}column {column.name!r}"
        if column.present == 0:
            refusals.append(f"{where} has no value in any of the {rows} rows (every cell is empty or a missing-value "
                            "marker): nothing to tell its type from; remove it from the file")
            continue
        if column.numbers and column.texts:
            refusals.append(f"{where} mixes numbers ({column.numbers} cells, e.g. {_examples(column.number_examples)}) "
                            f"and text ({column.texts} cells, e.g. {_examples(column.text_examples)}): fix the cells, "
                            "or if the text marks a missing value, pass it in --missing-values")
            continue
        numeric = column.texts == 0
        entry: dict = {"name": column.name}
        if column is row_names:
            entry.update(type="ignore", description=f"{column.distinct} distinct values; no name on line 1")
            notes.append(f"the first column has no name on line 1 (row names, as R's write.csv and pandas' to_csv "
                         f"write them): drafted as ignore, named {ROW_NAMES_COLUMN!r}")
            columns.append(entry)
            continue
        if is_label:
            if column.missing:
                refusals.append(f"{where} is missing on {column.missing} row(s) (e.g. line(s) "
                                f"{', '.join(map(str, column.missing_lines))}): every row needs a label")
                continue
            if len(column.counts) < 2 and not column.overflow:
                only = next(iter(column.counts))
                refusals.append(f"{where} has a single value ({only!r}) in all {rows} rows: nothing to predict")
                continue
            few_whole = numeric and column.integers == column.numbers and not column.overflow \
                and len(column.counts) <= MAX_INTEGER_CLASSES
            kind = label_type or ("categorical" if not numeric or few_whole else "numeric")
            if kind == "numeric" and not numeric:
                refusals.append(f"{where}: --label-type numeric, but it holds text (e.g. "
                                f"{_examples(column.text_examples)})")
                continue
            entry["type"] = kind
            if kind == "categorical":
                if column.overflow or len(column.counts) > MAX_LEARNED_CLASSES:
                    refusals.append(f"{where} has {column.distinct} distinct values: too many classes to list; "
                                    "pass --label-type numeric for regression")
                    continue
                entry["values"] = natural_order(column.counts, number_pattern)
                if few_whole and label_type is None:
                    notes.append(f"label {column.name!r} holds {len(column.counts)} whole numbers: drafted as classes "
                                 "(classification); pass --label-type numeric for regression")
            columns.append(entry)
            continue
        if numeric and column.row_numbers():
            entry["type"] = "ignore"
            notes.append(f"column {column.name!r} numbers the rows ({column.low:g} to {column.high:g}, one per row, "
                         "no gap): a row number or id, not a measurement; drafted as ignore")
        elif numeric:
            entry["type"] = "numeric"
            entry["impute"] = "mean"
        elif (date_format := draft_format(list(column.counts))) is not None:
            entry.update(type="date", format=date_format, impute="median")
            notes.append(f"column {column.name!r} holds dates ({date_format}, e.g. "
                         f"{', '.join(map(repr, list(column.counts)[:3]))}): its year, month, day of the week and "
                         "day of the year become features")
        elif column.near_unique_text():
            if is_ambiguous_date(list(column.counts)):
                notes.append(f"column {column.name!r} holds dates, but every one reads both as month/day/year and "
                             "as day/month/year: to use them, set \"type\": \"date\" with \"format\": \"us\" "
                             "or \"eu\"")
            entry["type"] = "ignore"
            every = "a different value on every row" if len(column.counts) == column.present and not column.overflow \
                else f"{column.distinct} distinct values in {column.present} cells"
            notes.append(f"column {column.name!r} has {every} (an identifier, a name or free text): categories would "
                         "learn nothing from it; drafted as ignore")
        else:
            entry["type"] = "categorical"
            if not column.overflow and len(column.counts) <= max_listed:
                entry["values"] = natural_order(column.counts, number_pattern)
            else:
                entry["max_categories"] = DEFAULT_MAX_CATEGORIES
                notes.append(f"column {column.name!r} has {column.distinct} distinct values: learned from the "
                             f"training split, the {DEFAULT_MAX_CATEGORIES} most frequent with a slot each")
            entry["allow_missing"] = column.missing > 0
        description = f"{column.distinct} distinct values"
        if column.missing:
            description += f"; {column.missing} of {rows} cells missing"
        entry["description"] = description
        columns.append(entry)
    if refusals:
        raise DraftRefused("; ".join(refusals))

    name = name or _name_from(Path(path))
    spec = {"name": name, "description": f"Drafted by `python -m localmode spec draft` from {Path(path).name} "
                                         f"({rows} rows): review every column before use.",
            "header": "yes"}
    if missing_values is not None:
        spec["missing_values"] = markers
    spec["columns"] = columns
    spec["label"] = label
    label_entry = next(c for c in columns if c["name"] == label)
    if label_entry["type"] == "categorical" and len(label_entry["values"]) == 2:
        spec["binary_threshold"] = DEFAULT_BINARY_THRESHOLD
    metric = spec_default_metric(label_entry["type"] == "numeric")
    spec["quality_gate"] = {"metric": metric, "threshold": None}
    try:
        layout = parse_spec(spec)
    except InvalidSpec as exc:
        raise DraftRefused(f"the drafted spec is not valid ({exc}); pass --name if the file name is the problem") from None
    served = serving_inputs([c.name for c in layout.features])
    if served.content_type != CSV_REQUEST:
        notes.append(f"{len(served.names)} feature columns are too many for a schema in the serving container's "
                     f"environment (SageMaker allows {MAX_ENVIRONMENT_VALUE} characters): each request to the endpoint "
                     "is JSON that carries the run's model/preprocess/schema.json (README: what to send the endpoint)")
    elif served.names != tuple(c.name for c in layout.features):
        notes.append(f"the {len(served.names)} feature names are too long together for the serving container's "
                     f"schema ({MAX_ENVIRONMENT_VALUE} characters): the model names them c1..c{len(served.names)}; "
                     "requests stay CSV, the fields in the spec's order")
    evidence = propose_gate(path, spec)
    if evidence is not None:
        spec["quality_gate"]["threshold"] = evidence.threshold
        notes.append(evidence.note())
    return spec, notes


def render(spec: dict) -> str:
    """The spec as the committed ones are laid out: one column per line."""
    lines = ["{"]
    for key, value in spec.items():
        if key == "columns":
            lines.append('  "columns": [')
            lines.append(",\n".join("    " + json.dumps(c, ensure_ascii=False) for c in value))
            lines.append("  ],")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    lines[-1] = lines[-1].rstrip(",")
    return "\n".join(lines) + "\n}\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmode spec", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    draft = commands.add_parser("draft", help="draft a spec from a CSV with a header row",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    draft.add_argument("data", type=Path, help="CSV file whose first line holds the column names")
    draft.add_argument("--label", required=True, help="the column to predict")
    draft.add_argument("--out", type=Path, help="write the spec here (default: standard output)")
    draft.add_argument("--name", help="dataset name (default: from --out's file name, else from the data's)")
    draft.add_argument("--label-type", choices=["categorical", "numeric"],
                       help="classification or regression, instead of guessing from the label's cells")
    draft.add_argument("--missing-values", help="comma-separated missing-value markers besides the empty cell "
                                                "(default: NA,N/A,null,?)")
    draft.add_argument("--max-listed", type=int, default=DEFAULT_MAX_LISTED,
                       help="list a text column's values when it has at most this many (default: %(default)s)")
    args = parser.parse_args(argv)
    markers = None if args.missing_values is None else [m.strip() for m in args.missing_values.split(",") if m.strip()]
    # The spec's file name is its dataset's name (make deploy uploads datasets/<name>.json): --out names it.
    name = args.name or (_name_from(args.out) if args.out else None)
    try:
        spec, notes = draft_spec(args.data, args.label, name=name, label_type=args.label_type,
                                 missing_values=markers, max_listed=args.max_listed)
    except (DraftRefused, OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"error: no spec drafted: {exc}", file=sys.stderr)
        return 2
    text = render(spec)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}: review it, then run `make local DATA={args.data} SPEC={args.out}`", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
