"""The dataset spec (datasets/<name>.json; docs/architecture.md, "Dataset spec"): the one parser
and checker, used by the Glue job, `make deploy`, local mode and the spec drafter alike.

A spec lists the file's columns in order, each with a type (categorical, numeric, date, ignore), and
names the label. It is the only place that names columns. parse_spec() checks it whole and reports
every problem at once; the Layout it returns is what the job runs on. Standard library only: the
Lambda layer ships this package, and so does the Glue job's zip.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

from dataset_spec.gate import GATE_METRICS, spec_default_metric
from dataset_spec.names import DATASET_NAME, DATASET_NAME_RULE
from dataset_spec.serving import RESERVED_COLUMNS

COLUMN_TYPES = ("categorical", "numeric", "date", "ignore")
# How a date column writes its dates (dataset_spec.dates): year first (ISO 8601, a time may follow),
# month first (US) or day first (EU).
DATE_FORMATS = ("iso", "us", "eu")
HEADER_MODES = ("auto", "yes", "no")
# An empty cell is always missing; these are the other markers unless the spec says otherwise.
DEFAULT_MISSING_VALUES = ("NA", "N/A", "null", "?")
DEFAULT_MAX_CATEGORIES = 20
# A learned label with more classes than this is more likely a number (regression) than classes.
MAX_LEARNED_CLASSES = 100
IMPUTE_STRATEGIES = ("mean", "median")
DEFAULT_BINARY_THRESHOLD = 0.5
SPEC_KEYS = ("name", "description", "header", "missing_values", "columns", "label", "binary_threshold",
             "quality_gate", "source")
COLUMN_KEYS = {
    "categorical": ("name", "type", "values", "max_categories", "allow_missing", "missing_values", "description"),
    "numeric": ("name", "type", "impute", "missing_values", "description"),
    "date": ("name", "type", "format", "impute", "missing_values", "description"),
    "ignore": ("name", "type", "description"),
}
GATE_KEYS = ("metric", "threshold", "higher_is_better")
# What the job accepts as a number: plain decimals, optionally signed, with an exponent. Spark's cast
# and Java's Double.parseDouble (SparkML Serving, MLeap) read these the same; they also read forms
# the other does not ("inf", "1d", hex), which is why a training file may not use them.
NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


class InvalidSpec(ValueError):
    """The dataset spec is not one the job can run; the message lists every problem."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # categorical | numeric | date | ignore
    position: int  # 0-based, in the file
    values: tuple | None = None  # categorical: the listed values; None: learned from the training split
    max_categories: int = DEFAULT_MAX_CATEGORIES  # learned categorical: values with a slot of their own
    allow_missing: bool = False  # categorical feature: a missing cell is an all-zero block
    impute: str = "mean"  # numeric or date feature
    date_format: str = "iso"  # date feature: DATE_FORMATS
    missing_values: tuple = DEFAULT_MISSING_VALUES  # markers besides the empty cell

    @property
    def learned(self) -> bool:
        return self.type == "categorical" and self.values is None

    def is_missing(self, text: str) -> bool:
        return text == "" or text in self.missing_values


@dataclass(frozen=True)
class Layout:
    """A checked dataset spec: the file's columns, the label, and what the run is judged by."""

    name: str
    header: str
    columns: tuple  # ColumnSpec, file order
    label: ColumnSpec
    binary_threshold: float
    quality_gate: dict  # metric, threshold (None: the stack's default), higher_is_better
    spec: dict  # the spec with every default written out (the manifest's `spec`)
    binary_threshold_given: bool = False

    @property
    def features(self) -> list[ColumnSpec]:
        """Model inputs, in file order (the label and ignored columns left out)."""
        return [c for c in self.columns if c is not self.label and c.type != "ignore"]

    @property
    def used(self) -> list[ColumnSpec]:
        """Features and label, in file order."""
        return [c for c in self.columns if c.type != "ignore"]

    @property
    def classification(self) -> bool:
        return self.label.type == "categorical"

    @property
    def data_dependent(self) -> bool:
        """Whether the preprocess pipeline needs statistics of the training split."""
        return any(c.learned or c.type in ("numeric", "date") for c in self.features)

    def problem_type(self, label_values: list | None) -> str:
        if not self.classification:
            return "regression"
        return "binary" if len(label_values) == 2 else "multiclass"


def _is_plain_text(value) -> bool:
    """A value the job can hold in a CSV field as it is: no comma, quote, line break or outer space."""
    return isinstance(value, str) and value == value.strip() and not any(ch in value for ch in ',"\r\n')


def is_column_name(value) -> bool:
    # Spark reads "a.b" as a field of a struct and backticks as quoting.
    return _is_plain_text(value) and value != "" and not any(ch in value for ch in ".`")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_markers(where: str, markers, problems: list[str]) -> tuple:
    if not isinstance(markers, list) or not all(isinstance(m, str) for m in markers):
        problems.append(f"{where}: missing_values must be a list of strings")
        return DEFAULT_MISSING_VALUES
    bad = [m for m in markers if not _is_plain_text(m)]
    if bad:
        problems.append(f"{where}: missing_values {bad} must not hold commas, quotes, line breaks or outer spaces")
    return tuple(m for m in markers if m != "")


def _parse_column(raw, position: int, default_markers: tuple, problems: list[str]) -> ColumnSpec | None:
    where = f"columns[{position}]"
    if not isinstance(raw, dict):
        problems.append(f"{where} must be an object with at least name and type")
        return None
    name = raw.get("name")
    if not is_column_name(name):
        problems.append(f"{where}: name must be a non-empty string without commas, quotes, dots, backticks, "
                        f"line breaks or outer spaces, got {name!r}")
        return None
    where = f"column {name!r}"
    kind = raw.get("type")
    if kind not in COLUMN_TYPES:
        problems.append(f"{where}: type must be one of {', '.join(COLUMN_TYPES)}, got {kind!r}")
        return None
    unknown = sorted(set(raw) - set(COLUMN_KEYS[kind]))
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)} for a {kind} column "
                        f"(allowed: {', '.join(COLUMN_KEYS[kind])})")
    if "description" in raw and not isinstance(raw["description"], str):
        problems.append(f"{where}: description must be a string")
    markers = default_markers
    if "missing_values" in raw:
        markers = _check_markers(where, raw["missing_values"], problems)
    column = ColumnSpec(name=name, type=kind, position=position, missing_values=markers)
    if kind in ("numeric", "date"):
        impute = raw.get("impute", "mean")
        if impute not in IMPUTE_STRATEGIES:
            problems.append(f"{where}: impute must be one of {', '.join(IMPUTE_STRATEGIES)}, got {impute!r}")
        column = replace(column, impute=impute)
    if kind == "date":
        date_format = raw.get("format", "iso")
        if date_format not in DATE_FORMATS:
            problems.append(f"{where}: format must be one of {', '.join(DATE_FORMATS)}, got {date_format!r}")
            date_format = "iso"
        return replace(column, date_format=date_format)
    if kind == "numeric":
        return column
    if kind == "categorical":
        allow_missing = raw.get("allow_missing", False)
        if not isinstance(allow_missing, bool):
            problems.append(f"{where}: allow_missing must be true or false, got {allow_missing!r}")
            allow_missing = False
        column = replace(column, allow_missing=allow_missing)
        if "values" in raw:
            values = raw["values"]
            if "max_categories" in raw:
                problems.append(f"{where}: max_categories applies to learned values only; this column lists its values")
            if not isinstance(values, list) or not values or len(set(map(str, values))) != len(values):
                problems.append(f"{where}: values must be a non-empty list without duplicates")
                return column
            bad = [v for v in values if not _is_plain_text(v) or v == ""]
            if bad:
                problems.append(f"{where}: values {bad} must be non-empty strings without commas, quotes, "
                                "line breaks or outer spaces")
            clash = [v for v in values if v in markers]
            if clash:
                problems.append(f"{where}: values {clash} are also missing-value markers of this column; "
                                "give the column its own missing_values")
            return replace(column, values=tuple(values))
        cap = raw.get("max_categories", DEFAULT_MAX_CATEGORIES)
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            problems.append(f"{where}: max_categories must be a positive integer, got {cap!r}")
            cap = DEFAULT_MAX_CATEGORIES
        return replace(column, max_categories=cap)
    return column


def _parse_gate(raw, label: ColumnSpec | None, problems: list[str]) -> dict:
    kind = "regression" if label is not None and label.type == "numeric" else "classification"
    default = spec_default_metric(kind == "regression")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append("quality_gate must be an object: {\"metric\", \"threshold\", \"higher_is_better\"}")
        raw = {}
    unknown = sorted(set(raw) - set(GATE_KEYS))
    if unknown:
        problems.append(f"quality_gate: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(GATE_KEYS)})")
    metric = raw.get("metric", default)
    if metric not in GATE_METRICS:
        problems.append(f"quality_gate.metric must be one of {', '.join(GATE_METRICS)}, got {metric!r}")
        metric = default
    measures, higher = GATE_METRICS[metric]
    if label is not None:
        if kind == "regression" and "regression" not in measures:
            problems.append(f"quality_gate.metric {metric!r} measures classification, but the label "
                            f"{label.name!r} is numeric (regression): use rmse, mae or r2")
        elif kind == "classification" and "regression" in measures:
            problems.append(f"quality_gate.metric {metric!r} measures regression, but the label {label.name!r} "
                            "is categorical (classification): use accuracy, macro_f1 or roc_auc")
        elif measures == ("binary",) and label.values is not None and len(label.values) != 2:
            problems.append(f"quality_gate.metric 'roc_auc' needs two classes; the label {label.name!r} lists "
                            f"{len(label.values)}")
    given = raw.get("higher_is_better", higher)
    if given is not higher:
        problems.append(f"quality_gate.higher_is_better must be {str(higher).lower()} for {metric}")
    threshold = raw.get("threshold")
    if threshold is not None:
        if not _is_number(threshold):
            problems.append(f"quality_gate.threshold must be a number or null, got {threshold!r}")
            threshold = None
        elif metric in ("accuracy", "macro_f1", "roc_auc") and not 0 <= threshold <= 1:
            problems.append(f"quality_gate.threshold for {metric} must be between 0 and 1, got {threshold}")
        elif metric == "r2" and threshold > 1:
            problems.append(f"quality_gate.threshold for r2 must be at most 1, got {threshold}")
        elif metric in ("rmse", "mae") and threshold < 0:
            problems.append(f"quality_gate.threshold for {metric} must not be negative, got {threshold}")
    return {"metric": metric, "threshold": threshold, "higher_is_better": higher}


def parse_spec(spec) -> Layout:
    """The spec checked whole; InvalidSpec lists every problem found."""
    if not isinstance(spec, dict):
        raise InvalidSpec("dataset spec must be a JSON object")
    problems: list[str] = []
    if "features" in spec or isinstance(spec.get("label"), dict):
        raise InvalidSpec(
            "dataset spec is in the previous format (features + label {name, values}): list every column of the "
            "file, in order, under \"columns\" ({\"name\", \"type\": categorical|numeric|ignore, ...}) and name "
            "the label column with \"label\": \"<name>\" (docs/architecture.md, \"Dataset spec\")")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(SPEC_KEYS)})")
    name = spec.get("name")
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        problems.append(f"name must be {DATASET_NAME_RULE} (it names S3 keys and endpoints), got {name!r}")
    if "description" in spec and not isinstance(spec["description"], str):
        problems.append("description must be a string")
    if "source" in spec and not isinstance(spec["source"], dict):
        problems.append("source must be an object")
    header = spec.get("header", "auto")
    if header not in HEADER_MODES:
        problems.append(f"header must be one of {', '.join(HEADER_MODES)}, got {header!r}")
        header = "auto"
    markers = DEFAULT_MISSING_VALUES
    if "missing_values" in spec:
        markers = _check_markers("spec", spec["missing_values"], problems)

    raw_columns = spec.get("columns")
    columns: list[ColumnSpec] = []
    if not isinstance(raw_columns, list) or not raw_columns:
        problems.append("columns must list the file's columns in order")
    else:
        parsed = [_parse_column(raw, i, markers, problems) for i, raw in enumerate(raw_columns)]
        columns = [c for c in parsed if c is not None]
    names = [c.name for c in columns]
    # Spark resolves column names case-insensitively.
    lowered = [n.lower() for n in names]
    duplicates = sorted({n for n in names if lowered.count(n.lower()) > 1})
    if duplicates:
        problems.append(f"column names {duplicates} are not unique (ignoring case)")
    clashes = sorted(RESERVED_COLUMNS.intersection(names) | {n for n in names if "__" in n})
    if clashes:
        problems.append(f"column names {clashes} clash with the job's own columns (reserved: "
                        f"{', '.join(sorted(RESERVED_COLUMNS))}, and any name with '__')")

    label = None
    label_name = spec.get("label")
    if not isinstance(label_name, str):
        problems.append("label must name one of the columns")
    elif columns and label_name not in names:
        problems.append(f"label {label_name!r} is not one of the columns ({', '.join(names)})")
    elif columns:
        label = columns[names.index(label_name)]
        if label.type in ("ignore", "date"):
            problems.append(f"label column {label_name!r} is of type {label.type}: make it categorical "
                            "(classification) or numeric (regression)")
        if label.allow_missing:
            problems.append(f"label column {label_name!r}: allow_missing does not apply, every row needs a label")
        raw_label = raw_columns[label.position]
        if label.type == "categorical" and "max_categories" in raw_label:
            problems.append(f"label column {label_name!r}: max_categories does not apply to a label, every "
                            "class is kept")
        if label.type == "numeric" and "impute" in raw_label:
            problems.append(f"label column {label_name!r}: impute does not apply, every row needs a label")
        if label.values is not None and len(label.values) < 2:
            problems.append(f"label column {label_name!r} lists one value: a classifier needs at least two")
        if columns and not [c for c in columns if c is not label and c.type != "ignore"]:
            problems.append("no feature columns: every column but the label is ignored")

    threshold = spec.get("binary_threshold")
    if threshold is not None:
        if not _is_number(threshold) or not 0 < threshold < 1:
            problems.append(f"binary_threshold must be a number between 0 and 1 (exclusive), got {threshold!r}")
        elif label is not None and label.type == "numeric":
            problems.append(f"binary_threshold applies to a two-class label; {label.name!r} is numeric (regression)")
        elif label is not None and label.values is not None and len(label.values) != 2:
            problems.append(f"binary_threshold applies to a two-class label; {label.name!r} lists "
                            f"{len(label.values)} classes")
    gate = _parse_gate(spec.get("quality_gate"), label, problems)
    if problems:
        raise InvalidSpec("dataset spec " + (f"{name!r} " if isinstance(name, str) else "") + "is invalid: "
                          + "; ".join(problems))

    normalized = {"name": name}
    if "description" in spec:
        normalized["description"] = spec["description"]
    normalized.update({"header": header, "missing_values": list(markers),
                       "columns": [_normalized_column(raw, c, markers, c is label) for raw, c in zip(raw_columns, columns)],
                       "label": label.name})
    if threshold is not None or (label.values is not None and len(label.values) == 2):
        normalized["binary_threshold"] = DEFAULT_BINARY_THRESHOLD if threshold is None else threshold
    normalized["quality_gate"] = dict(gate)
    if "source" in spec:
        normalized["source"] = spec["source"]
    return Layout(name=name, header=header, columns=tuple(columns), label=label,
                  binary_threshold=DEFAULT_BINARY_THRESHOLD if threshold is None else float(threshold),
                  quality_gate=gate, spec=normalized, binary_threshold_given=threshold is not None)


def _normalized_column(raw: dict, column: ColumnSpec, default_markers: tuple, is_label: bool) -> dict:
    out = {"name": column.name, "type": column.type}
    if column.type == "categorical":
        if column.values is not None:
            out["values"] = list(column.values)
        elif not is_label:
            out["max_categories"] = column.max_categories
        if not is_label:
            out["allow_missing"] = column.allow_missing
    if column.type == "date":
        out["format"] = column.date_format
    if column.type in ("numeric", "date") and not is_label:
        out["impute"] = column.impute
    if column.type != "ignore" and column.missing_values != default_markers:
        out["missing_values"] = list(column.missing_values)
    if "description" in raw:
        out["description"] = raw["description"]
    return out


def validate_spec(spec) -> None:
    parse_spec(spec)


def spec_columns(spec: dict) -> list[str]:
    """Every column of the file, in order."""
    return [c["name"] for c in spec["columns"]]


def read_spec(text: str, source: str) -> dict:
    """A spec file's text, parsed and checked; `source` names the file in the message."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSpec(f"dataset spec {source} is not valid JSON: {exc}") from None
    validate_spec(spec)
    return spec


def as_layout(spec) -> Layout:
    """A Layout as it is, or the spec parsed."""
    return spec if isinstance(spec, Layout) else parse_spec(spec)
