"""Glue 5.1 job: validate the raw CSV, split it, fit the feature pipeline and
write everything the rest of the pipeline reads (layout: docs/architecture.md,
"One run's artifacts").

Runs unchanged on AWS Glue 5.1 (Spark 3.5.6, Python 3.11, Java 17) and on local
PySpark 3.5.6: `python -m localmode glue` (or `make glue-local`) calls `run()`
in-process. It needs nothing Glue does not provide (the standard library,
PySpark, boto3): sam package uploads this one file. Importing it does no work.
The MLeap bundles are written by this script itself, in the JSON format that
MLeap runtime 0.20.0 (SparkML Serving 3.3) reads ("MLeap bundles" below); the
tests load them in that runtime and compare with Spark on every held-out row.

Input contract. The columns are the dataset spec's `columns`, in order
(datasets/<name>.json, passed with --spec; docs/architecture.md "Dataset spec"):
categorical (values listed, or learned from the training split), numeric, or
ignored; the label is any one of them. The first line is the column names when
the spec says `"header": "yes"`, never when "no", and may be when "auto" (any
letter case). Accepted: LF, CRLF or CR line endings; a UTF-8 byte-order mark;
fields in double quotes; spaces around fields; blank lines anywhere (ignored);
gzip-compressed files; in a numeric feature or a categorical one with
allow_missing, an empty cell or a missing-value marker (NA, N/A, null, ? unless
the spec lists others). Refused, before anything is fitted or written, with the
number of offending lines and the first few line numbers and values: bytes that
are not UTF-8, unbalanced quotes, a wrong field count, a first line that should
be (or looks like) the column names but does not match the spec, a missing cell
where the column allows none (always the label), a label or feature value the
spec does not list, a value that is not a number in a numeric column or label
(plain decimals only: Spark and Java disagree on "inf", "1d" or hex), the
column-names line anywhere but line 1, no data rows at all (empty file, blank
lines or a header only), a feature without any value, a learned label with one
class, a learned categorical with more than MAX_LEARNED_VALUES values. The
message is the `InvalidInputData` text, which on Glue becomes the job run's
ErrorMessage and so the cause shown by Step Functions.

How validation scales. Only JVM DataFrame expressions are used (no Python
UDFs: each would ship every row to a Python worker and back), and nothing row-level is
collected: the input is read once, parsed lines are cached (memory, then
disk), and one aggregation counts lines per (file, Spark partition, problem
kind) and valid rows per (label, split bucket); only when something is
wrong do a few `orderBy(...).limit(k)` queries fetch the first offending
lines. Line numbers come from reading the file as text (`spark.read.text`),
tagging each line with input_file_name(), spark_partition_id() and
monotonically_increasing_id() right at the scan, and adding the line counts
of the same file's earlier partitions. That is exact because Spark plans a
file's splits in offset order (its planner sorts splits by size, descending
and stably: all splits but a file's last have the same size, and the last is
the smallest), a full-size split is alone in its partition, and a partition
reads each of its splits sequentially. This leans on Spark's planner, so
the tests check it on input cut into many partitions.

Split: 70% train, 15% validation, 15% test, stratified by label with exact
per-label counts (regression: one stratum). The car data's rare classes (good:
69, vgood: 65 rows) still get about 10 rows each in validation (early stopping)
and in the QA test set, which 80/10/10 would halve. Within each label, rows are
ranked by xxhash64(seed, the row's parsed fields but the ignored ones), with the
line position breaking ties
between identical rows only. So which rows go where depends on the seed and
the data alone (not on file paths, line endings, quoting or partitioning), and
identical rows land together, keeping duplicates from leaking between train
and test. Ranking does not sort the data: rows are
hashed into 1024 buckets per label, counted, and only the few buckets where a
cut falls are ranked (assign_split).

Feature pipeline (what the SparkML Serving container runs), features in file
order. Categorical: one StringIndexer per feature (MLeap 0.20.0 refuses
multi-column indexers) with labels fixed to the spec's value order, or for a
learned column to the training split's values by frequency (ties by text);
OneHotEncoder; VectorAssembler -> `features`. Unseen values: the indexers use
handleInvalid="keep", which maps any value not in the labels to one extra index;
the encoder has dropLast=True, and since "keep" makes that extra index the last
category, it is the one dropped: a known value is one 1 in its feature's block
and an unseen (or missing) value is an all-zero block, a valid vector (XGBoost
reads it as "none of the known values") instead of an HTTP 4xx. A learned
column with more values than its max_categories keeps the rarer ones at the end
of the labels and folds them into one "other" slot with a Bucketizer on the
index (Spark has no op mapping many strings to one index; Bucketizer is one
MLeap 0.20.0 loads), the never-seen index still last and dropped. Numeric: an
Imputer whose surrogate (mean or median) comes from the training split; the
serving schema types it as a string, so an empty field reaches the Imputer as
null (sparkml_schemas). The layout is the manifest's `feature_slots`.

Label: classification indexes the classes in the spec's order, or for learned
classes in text order (numeric order when every class is a number); the
postprocess bundle maps XGBoost's answer (multi:softmax: the class index;
binary:logistic: the probability of the second class, cut at the spec's
binary_threshold by a Binarizer) back to the class with IndexToString, input
`label` (double) -> output `predicted_label` (string). Regression trains on the
number and has no postprocess bundle: XGBoost's answer is the prediction.

Outputs, written so that nothing half-written looks like success: locally,
into a temporary sibling directory renamed into place at the end; on S3, Spark
writes the data, boto3 the model files built in a local temp dir, and
manifest.json is written last; a failed run deletes what it wrote under its
run prefix. Spark's _SUCCESS markers are disabled: the manifest is the only
success marker.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import platform
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

LOG = logging.getLogger("preprocess")

SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
DEFAULT_SEED = 42
# What SageMaker SparkML Serving 3.3 runs; the bundles are checked against it by tests/jvm.
MLEAP_SERVING_RUNTIME = "0.20.0"
FEATURES_COL = "features"
POSTPROCESS_INPUT = "label"
POSTPROCESS_OUTPUT = "predicted_label"
# Binary postprocess: the Binarizer's 0/1 between the probability and the label string.
POSTPROCESS_CLASS = "class__index"
LABEL_INDEX_COL = "label_index"
EXAMPLES_PER_PROBLEM = 5
# Rows are hashed into this many buckets per label for the split (see assign_split).
SPLIT_BUCKETS = 1024
# A comma followed by an even number of double quotes up to the end of the line
# is outside any quoted field.
_QUOTE_AWARE_COMMA = ',(?=(?:[^"]*"[^"]*")*[^"]*$)'
# Malformed UTF-8 bytes become U+FFFD when the JVM decodes the line for a regex.
_UNDECODABLE = "\ufffd"
_RESERVED_COLUMNS = {FEATURES_COL, POSTPROCESS_INPUT, POSTPROCESS_OUTPUT, LABEL_INDEX_COL}
# SageMaker caps each container environment value at 1024 characters (botocore's SageMaker model:
# EnvironmentValue, max 1024), and SparkML Serving reads a CSV request's schema only from the
# SAGEMAKER_SPARKML_SCHEMA variable: the feature names must fit in it (functions/create_model checks
# the written schema against the same number).
MAX_ENVIRONMENT_VALUE = 1024


class InvalidInputData(ValueError):
    """The training data does not match the dataset spec; nothing was fitted or kept.

    `problems` holds one dict per problem kind: kind, count, lines (the first
    offending locations, "line N" or "file:line N"), message.
    """

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.problems = problems or []


class InvalidSpec(ValueError):
    """The dataset spec cannot describe an all-categorical CSV."""


@dataclass(frozen=True)
class JobOptions:
    input: str
    output: str
    run_id: str
    spec: dict
    seed: int = DEFAULT_SEED
    spec_source: str = field(default="", compare=False)


# --------------------------------------------------------------------------- spec
#
# The dataset spec (datasets/<name>.json, docs/architecture.md "Dataset spec") lists the file's
# columns in order, each with a type, and names the label. It is the only place that names
# columns. parse_spec() checks it whole and reports every problem at once.

COLUMN_TYPES = ("categorical", "numeric", "ignore")
HEADER_MODES = ("auto", "yes", "no")
# An empty cell is always missing; these are the other markers unless the spec says otherwise.
DEFAULT_MISSING_VALUES = ("NA", "N/A", "null", "?")
DEFAULT_MAX_CATEGORIES = 20
# A learned categorical column keeps every value seen in training in its bundle (so that a rare
# value maps to "other" and a never-seen one to an all-zero block); beyond this it is an identifier
# or free text, not a category.
MAX_LEARNED_VALUES = 10_000
# A learned label with more classes than this is more likely a number (regression) than classes.
MAX_LEARNED_CLASSES = 100
IMPUTE_STRATEGIES = ("mean", "median")
DEFAULT_BINARY_THRESHOLD = 0.5
# metric -> (label kinds it fits, higher is better); names shared with the QA step (manifest quality_gate).
GATE_METRICS = {
    "accuracy": ("classification", True),
    "macro_f1": ("classification", True),
    "roc_auc": ("binary", True),
    "rmse": ("regression", False),
    "mae": ("regression", False),
    "r2": ("regression", True),
}
DEFAULT_GATE_METRIC = {"classification": "accuracy", "regression": "r2"}
SPEC_KEYS = ("name", "description", "header", "missing_values", "columns", "label", "binary_threshold",
             "quality_gate", "source")
COLUMN_KEYS = {
    "categorical": ("name", "type", "values", "max_categories", "allow_missing", "missing_values", "description"),
    "numeric": ("name", "type", "impute", "missing_values", "description"),
    "ignore": ("name", "type", "description"),
}
GATE_KEYS = ("metric", "threshold", "higher_is_better")
# The dataset name becomes part of S3 keys and SageMaker resource names.
_NAME_PATTERN = r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?"


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # categorical | numeric | ignore
    position: int  # 0-based, in the file
    values: tuple | None = None  # categorical: the listed values; None: learned from the training split
    max_categories: int = DEFAULT_MAX_CATEGORIES  # learned categorical: values with a slot of their own
    allow_missing: bool = False  # categorical feature: a missing cell is an all-zero block
    impute: str = "mean"  # numeric feature
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
        return any(c.learned or c.type == "numeric" for c in self.features)

    def problem_type(self, label_values: list | None) -> str:
        if not self.classification:
            return "regression"
        return "binary" if len(label_values) == 2 else "multiclass"


def _is_plain_text(value) -> bool:
    """A value the job can hold in a CSV field as it is: no comma, quote, line break or outer space."""
    return isinstance(value, str) and value == value.strip() and not any(ch in value for ch in ',"\r\n')


def _is_column_name(value) -> bool:
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
    if not _is_column_name(name):
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
    if kind == "numeric":
        impute = raw.get("impute", "mean")
        if impute not in IMPUTE_STRATEGIES:
            problems.append(f"{where}: impute must be one of {', '.join(IMPUTE_STRATEGIES)}, got {impute!r}")
        return replace(column, impute=impute)
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
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append("quality_gate must be an object: {\"metric\", \"threshold\", \"higher_is_better\"}")
        raw = {}
    unknown = sorted(set(raw) - set(GATE_KEYS))
    if unknown:
        problems.append(f"quality_gate: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(GATE_KEYS)})")
    metric = raw.get("metric", DEFAULT_GATE_METRIC[kind])
    if metric not in GATE_METRICS:
        problems.append(f"quality_gate.metric must be one of {', '.join(GATE_METRICS)}, got {metric!r}")
        metric = DEFAULT_GATE_METRIC[kind]
    fits, higher = GATE_METRICS[metric]
    if label is not None:
        if kind == "regression" and fits != "regression":
            problems.append(f"quality_gate.metric {metric!r} measures classification, but the label "
                            f"{label.name!r} is numeric (regression): use rmse, mae or r2")
        elif kind == "classification" and fits == "regression":
            problems.append(f"quality_gate.metric {metric!r} measures regression, but the label {label.name!r} "
                            "is categorical (classification): use accuracy, macro_f1 or roc_auc")
        elif fits == "binary" and label.values is not None and len(label.values) != 2:
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
    if not isinstance(name, str) or not re.fullmatch(_NAME_PATTERN, name):
        problems.append(f"name must be 1-32 lower-case letters, digits or inner hyphens (it names S3 keys and "
                        f"endpoints), got {name!r}")
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
    clashes = sorted(_RESERVED_COLUMNS.intersection(names) | {n for n in names if "__" in n})
    if clashes:
        problems.append(f"column names {clashes} clash with the job's own columns (reserved: "
                        f"{', '.join(sorted(_RESERVED_COLUMNS))}, and any name with '__')")

    label = None
    label_name = spec.get("label")
    if not isinstance(label_name, str):
        problems.append("label must name one of the columns")
    elif columns and label_name not in names:
        problems.append(f"label {label_name!r} is not one of the columns ({', '.join(names)})")
    elif columns:
        label = columns[names.index(label_name)]
        if label.type == "ignore":
            problems.append(f"label column {label_name!r} is of type ignore: make it categorical (classification) "
                            "or numeric (regression)")
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
    if label is not None and not problems:
        schema = preprocess_schema([c.name for c in columns if c is not label and c.type != "ignore"])
        length = environment_value_length(schema)
        if length > MAX_ENVIRONMENT_VALUE:
            problems.append(
                f"the preprocess container's schema (SAGEMAKER_SPARKML_SCHEMA, one entry per feature column) would be "
                f"{length} characters, and SageMaker allows {MAX_ENVIRONMENT_VALUE} in a container environment "
                f"value: use fewer feature columns (type \"ignore\") or shorter column names")
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
    if column.type == "numeric" and not is_label:
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


def load_spec(source: str) -> dict:
    if source.startswith("s3://"):
        bucket, key = _split_s3(source)
        body = _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        text = body.decode("utf-8")
    else:
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSpec(f"dataset spec {source} is not valid JSON: {exc}") from None
    validate_spec(spec)
    return spec


# ------------------------------------------------------------------- arguments

def _default_spec_path() -> str | None:
    candidate = Path(__file__).resolve().parent.parent / "datasets" / "car.json"
    return str(candidate) if candidate.is_file() else None


def parse_options(argv: list[str]) -> JobOptions:
    """`argv` without the program name. Glue passes job arguments as `--name value`
    (plus its own, which are ignored); so does the local command line."""
    try:
        from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
    except ImportError:
        getResolvedOptions = None
    if getResolvedOptions is not None:
        # getResolvedOptions fails on names that are absent: ask for optional ones only when given.
        names = ["input", "output", "run_id"] + [n for n in ("spec", "seed") if f"--{n}" in argv]
        # Like sys.argv, getResolvedOptions expects the program name first.
        values = getResolvedOptions(["preprocess.py", *argv], names)
    else:
        parser = argparse.ArgumentParser(description="Glue preprocessing job (local invocation)")
        parser.add_argument("--input", required=True, help="CSV file or prefix (s3:// or local)")
        parser.add_argument("--output", required=True, help="run prefix (s3://bucket/runs/<id>/ or a local directory)")
        parser.add_argument("--run_id", required=True)
        parser.add_argument("--spec", default=_default_spec_path(), help="dataset spec JSON (s3:// or local)")
        parser.add_argument("--seed", default=str(DEFAULT_SEED))
        values = vars(parser.parse_known_args(argv)[0])
    spec_source = values.get("spec") or _default_spec_path()
    if not spec_source:
        raise InvalidSpec("--spec is required (s3:// URI or path of the dataset spec JSON)")
    try:
        seed = int(values.get("seed") or DEFAULT_SEED)
    except ValueError as exc:
        raise ValueError(f"--seed must be an integer, got {values.get('seed')!r}") from exc
    return JobOptions(
        input=values["input"], output=values["output"], run_id=values["run_id"],
        spec=load_spec(spec_source), seed=seed, spec_source=spec_source,
    )


# ---------------------------------------------------------------------- storage

def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urllib.parse.urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _s3_client():
    import boto3

    return boto3.client("s3")


class LocalRunStore:
    """Builds the run in a hidden sibling directory and renames it into place on commit."""

    _RUN_ENTRIES = {"data", "model", "manifest.json"}

    def __init__(self, output: str):
        self.final = Path(output).expanduser().resolve()
        self.staging: Path | None = None

    def begin(self) -> None:
        if self.final.exists():
            entries = {p.name for p in self.final.iterdir()}
            if not entries <= self._RUN_ENTRIES:
                raise FileExistsError(
                    f"{self.final} exists and holds more than a previous run ({sorted(entries - self._RUN_ENTRIES)}); "
                    "choose an empty or new output directory")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.partial-", dir=self.final.parent))

    def spark_uri(self, relative: str) -> str:
        return (self.staging / relative).as_uri()

    def uri(self, relative: str) -> str:
        return str(self.final / relative) + ("/" if relative.endswith("/") else "")

    def put_file(self, relative: str, local_path: str) -> None:
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path, target)

    def put_json(self, relative: str, document: dict) -> None:
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    def commit(self, manifest: dict) -> None:
        # Hadoop's local file system leaves .crc checksum files next to every part file.
        for crc in self.staging.rglob("*.crc"):
            crc.unlink()
        self.put_json("manifest.json", manifest)
        if self.final.exists():
            previous = self.final.with_name(f".{self.final.name}.previous-{uuid.uuid4().hex[:8]}")
            self.final.rename(previous)
            self.staging.rename(self.final)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            self.staging.rename(self.final)
        self.staging = None

    def abort(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


class S3RunStore:
    """Writes under s3://bucket/runs/<id>/; manifest.json last; abort deletes this run's keys."""

    _RUN_KEYS = ("manifest.json", "data/", "model/")

    def __init__(self, output: str, client=None):
        bucket, key = _split_s3(output)
        self.bucket = bucket
        self.prefix = key if key.endswith("/") or not key else key + "/"
        self.client = client or _s3_client()

    def begin(self) -> None:
        # A retried Glue attempt may find a killed attempt's leftovers: start clean, manifest first.
        self._delete_run_keys()

    def spark_uri(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{relative}"

    uri = spark_uri

    def put_file(self, relative: str, local_path: str) -> None:
        self.client.upload_file(local_path, self.bucket, self.prefix + relative)

    def put_json(self, relative: str, document: dict) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + relative,
                               Body=(json.dumps(document, indent=2) + "\n").encode("utf-8"),
                               ContentType="application/json")

    def commit(self, manifest: dict) -> None:
        self.put_json("manifest.json", manifest)

    def abort(self) -> None:
        self._delete_run_keys()

    def _delete_run_keys(self) -> None:
        for run_key in self._RUN_KEYS:
            if run_key.endswith("/"):
                keys = []
                for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + run_key):
                    keys.extend(obj["Key"] for obj in page.get("Contents", []))
            else:
                keys = [self.prefix + run_key]
            for start in range(0, len(keys), 1000):
                self.client.delete_objects(Bucket=self.bucket,
                                           Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})


def make_store(output: str):
    return S3RunStore(output) if output.startswith("s3://") else LocalRunStore(output)


# -------------------------------------------------------------------- validation

def read_lines(spark, input_uri: str):
    """Every line of the input with its file and a position that orders lines within a file."""
    from pyspark.sql import functions as F
    from pyspark.sql.utils import AnalysisException

    path = input_uri
    if "://" not in path:
        # Not Path.as_uri(): Hadoop does not percent-decode it, so "a b.csv" would be looked for as "a%20b.csv".
        path = "file://" + str(Path(path).expanduser().resolve())
    try:
        lines = spark.read.text(path)
    except AnalysisException as exc:
        raise InvalidInputData(f"Input {input_uri} cannot be read: {getattr(exc, 'desc', exc)}") from exc
    value = F.col("value")
    return lines.select(
        F.input_file_name().alias("file"),
        F.spark_partition_id().alias("part"),
        F.monotonically_increasing_id().alias("pos"),
        F.when(value.startswith("\ufeff"), F.expr("substring(value, 2)")).otherwise(value).alias("line"),
    )


# What classify() says of a line, as a small code (its position here): the first problem, or a kind of good line.
KINDS = ("row", "blank", "header", "undecodable", "quotes", "field_count", "missing_value", "label_value",
         "label_number", "feature_value", "numeric_value")
# What the job accepts as a number: plain decimals, optionally signed, with an exponent. Spark's cast
# and Java's Double.parseDouble (SparkML Serving, MLeap) read these the same; they also read forms
# the other does not ("inf", "1d", hex), which is why a training file may not use them.
NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def index_name(column: str) -> str:
    """The cached form of a column's value: its position in the listed values (categorical with
    values), the text (learned categorical), the number (numeric); null when the cell is missing."""
    return f"{column}__value"


def value_index(col, values: list[str]):
    """The position of the column's value in the spec's list (tinyint), null for any other value."""
    from pyspark.sql import functions as F

    index = F.when(col == values[0], F.lit(0))
    for i, value in enumerate(values[1:], start=1):
        index = index.when(col == value, F.lit(i))
    return index.cast("tinyint" if len(values) <= 127 else "int")


def is_missing(col, column: ColumnSpec):
    from pyspark.sql import functions as F

    if not column.missing_values:
        return col == ""
    return (col == "") | col.isin(list(column.missing_values))


def parse_number(col):
    """The cell as a double when it is a number of NUMBER_PATTERN, else null. A pattern number can
    still overflow to infinity (1e999): is_number tells the finite ones. (Each input column appears
    once: an expression repeated per cell multiplies the generated code, see classify.)"""
    from pyspark.sql import functions as F

    return F.when(col.rlike(NUMBER_PATTERN), col.cast("double"))


def is_number(value):
    """A parsed value (parse_number) that XGBoost and serving accept: not null, not infinite."""
    from pyspark.sql import functions as F

    return value.isNotNull() & (F.abs(value) < float("inf"))


def cached_value(col, column: ColumnSpec):
    """index_name's value for a parsed cell of `column`."""
    from pyspark.sql import functions as F

    if column.type == "categorical" and column.values is not None:
        return value_index(col, list(column.values))
    missing = is_missing(col, column)
    if column.type == "categorical":
        return F.when(~missing, col)
    return F.when(~missing, parse_number(col))


def _allows_missing(column: ColumnSpec, layout: Layout) -> bool:
    return column is not layout.label and (column.type == "numeric" or column.allow_missing)


def classify(lines, layout: Layout):
    """One row per input line: file, part, pos, `kind` (the KINDS code of the line's first problem,
    or of "row", "blank", "header"), `n_fields`, every column (parsed, unquoted, trimmed) and each
    used column's cached value (index_name)."""
    from pyspark.sql import functions as F

    columns = [c.name for c in layout.columns]
    line = F.col("line")
    has_quote = F.instr(line, '"') > 0

    def unquote(f):
        quoted = f.rlike(r'^\s*".*"\s*$')
        inner = F.regexp_replace(F.regexp_extract(f, r'^\s*"(.*)"\s*$', 1), '""', '"')
        return F.trim(F.when(quoted, inner).otherwise(f))

    # Most lines need neither unquoting nor trimming: keep the per-field work off their path.
    fields = (F.when(has_quote, F.transform(F.split(line, _QUOTE_AWARE_COMMA), unquote))
              .when(F.instr(line, " ") > 0, F.transform(F.split(line, ","), F.trim))
              .otherwise(F.split(line, ",")))
    parsed = lines.select(
        "file", "part", "pos",
        F.length(F.trim(line)).alias("length"),
        line.rlike(_UNDECODABLE).alias("undecodable"),
        (has_quote & ((F.length(line) - F.length(F.regexp_replace(line, '"', ""))) % 2 == 1)).alias("odd_quotes"),
        fields.alias("fields"),
    )
    n_fields = F.size("fields")
    # Guarded so that ANSI mode, if a cluster enables it, cannot turn a short line into an exception.
    named = [F.when(n_fields > i, F.col("fields")[i]).alias(name) for i, name in enumerate(columns)]
    parsed = parsed.select("file", "part", "pos", "length", "undecodable", "odd_quotes", n_fields.alias("n_fields"), *named)

    used = layout.used
    is_header = F.lit(layout.header != "no")
    for name in columns:
        is_header = is_header & (F.lower(F.col(name)) == name.lower())
    parsed = parsed.select("*", *[cached_value(F.col(c.name), c).alias(index_name(c.name)) for c in used])
    value = {c.name: F.col(index_name(c.name)) for c in used}
    label = layout.label

    # A missing cell has a null cached value (listed values exclude the markers: parse_spec), so the
    # marker comparisons run only for the rare cells without a value: And/Or short-circuit.
    missing_refused = F.lit(False)
    for c in used:
        if not _allows_missing(c, layout):
            missing_refused = missing_refused | (value[c.name].isNull() & is_missing(F.col(c.name), c))
    listed_ok = F.lit(True)
    numbers_ok = F.lit(True)
    for c in layout.features:
        if c.type == "categorical" and c.values is not None:
            listed_ok = listed_ok & (value[c.name].isNotNull() | is_missing(F.col(c.name), c))
        elif c.type == "numeric":
            numbers_ok = numbers_ok & (is_number(value[c.name]) | is_missing(F.col(c.name), c))
    kind = (F.when(F.col("length") == 0, KINDS.index("blank"))
            .when(F.col("undecodable"), KINDS.index("undecodable"))
            .when(F.col("odd_quotes"), KINDS.index("quotes"))
            .when(F.col("n_fields") != len(columns), KINDS.index("field_count"))
            .when(is_header, KINDS.index("header"))
            .when(missing_refused, KINDS.index("missing_value")))
    if label.type == "categorical" and label.values is not None:
        kind = kind.when(value[label.name].isNull(), KINDS.index("label_value"))
    elif label.type == "numeric":
        kind = kind.when(~is_number(value[label.name]), KINDS.index("label_number"))
    kind = (kind.when(~listed_ok, KINDS.index("feature_value"))
            .when(~numbers_ok, KINDS.index("numeric_value"))
            .otherwise(KINDS.index("row")))
    return parsed.select("file", "part", "pos", kind.cast("tinyint").alias("kind"), "n_fields", *columns,
                         *[index_name(c.name) for c in used])


def _shown(name: str, col):
    """`name='value'` for a problem's detail."""
    from pyspark.sql import functions as F

    return F.concat(F.lit(f"{name}='"), col, F.lit("'"))


def problem_detail(layout: Layout):
    """What to show next to an offending line number; computed only for the few lines shown."""
    from pyspark.sql import functions as F

    kind = F.col("kind_name")
    label = layout.label
    missing = F.coalesce(*[F.when(is_missing(F.col(c.name), c), _shown(c.name, F.col(c.name)))
                           for c in layout.used if not _allows_missing(c, layout)], F.lit(""))
    listed = [c for c in layout.features if c.type == "categorical" and c.values is not None]
    numeric = [c for c in layout.features if c.type == "numeric"]
    bad_feature = F.coalesce(*[
        F.when(~F.col(c.name).isin(list(c.values)) & ~is_missing(F.col(c.name), c), _shown(c.name, F.col(c.name)))
        for c in listed], F.lit(""))
    bad_number = F.coalesce(*[
        F.when(~is_number(parse_number(F.col(c.name))) & ~is_missing(F.col(c.name), c), _shown(c.name, F.col(c.name)))
        for c in numeric], F.lit(""))
    return (F.when(kind == "field_count", F.concat(F.col("n_fields").cast("string"), F.lit(" fields")))
            .when(kind == "missing_value", missing)
            .when(kind.isin("label_value", "label_number"), F.concat(F.lit("'"), F.col(label.name), F.lit("'")))
            .when(kind == "feature_value", bad_feature)
            .when(kind == "numeric_value", bad_number))


class LineLocator:
    """Turns (file, partition, position) into 1-based line numbers from the per-chunk line counts."""

    def __init__(self, chunks: list[tuple[str, int, int, int]], input_uri: str):
        # chunks: (file, partition, line count, smallest position)
        self.first_pos: dict[tuple[str, int], int] = {}
        self.lines_before: dict[tuple[str, int], int] = {}
        self.file_first_pos: dict[str, int] = {}
        running: dict[str, int] = {}
        for file, part, count, min_pos in sorted(chunks, key=lambda c: (c[0], c[1])):
            self.first_pos[(file, part)] = min_pos
            self.lines_before[(file, part)] = running.get(file, 0)
            running[file] = running.get(file, 0) + count
            self.file_first_pos[file] = min(min_pos, self.file_first_pos.get(file, min_pos))
        self.files = sorted(running)
        self.input_uri = input_uri

    def line(self, file: str, part: int, pos: int) -> int:
        return self.lines_before[(file, part)] + (pos - self.first_pos[(file, part)]) + 1

    def where(self, file: str, part: int, pos: int) -> str:
        text = f"line {self.line(file, part, pos)}"
        if len(self.files) > 1:
            text = f"{self.file_name(file)}:{text}"
        return text

    @staticmethod
    def file_name(file: str) -> str:
        return urllib.parse.unquote(file.rsplit("/", 1)[-1])


def _label_text(layout: Layout) -> str:
    label = layout.label
    return f"{label.name!r} label"


_PROBLEM_TEXT = {
    "undecodable": lambda layout, n: f"{n} line(s) are not valid UTF-8 text (save the file as UTF-8)",
    "quotes": lambda layout, n: f"{n} line(s) have an unbalanced double quote",
    "field_count": lambda layout, n: (f"{n} line(s) do not have {len(layout.columns)} comma-separated fields "
                                      f"({', '.join(c.name for c in layout.columns)})"),
    "header_misplaced": lambda layout, n: f"{n} line(s) repeat the column names after line 1",
    "missing_value": lambda layout, n: (f"{n} line(s) have an empty cell or a missing-value marker in a column "
                                        "that allows none (the label, or a categorical feature without "
                                        "allow_missing)"),
    "label_value": lambda layout, n: (f"{n} line(s) have a {_label_text(layout)} outside the spec's values "
                                      f"({', '.join(layout.label.values or ())})"),
    "label_number": lambda layout, n: f"{n} line(s) have a {_label_text(layout)} that is not a number",
    "feature_value": lambda layout, n: f"{n} line(s) have feature values the spec does not list",
    "numeric_value": lambda layout, n: (f"{n} line(s) have a value that is not a number in a numeric column "
                                        "(accepted: decimals such as 12, -0.5, 1.5e3; missing: empty or "
                                        "the column's missing_values)"),
}


@dataclass
class ValidInput:
    # DataFrame: file, pos, split_hash, bucket, stratum, each used column's cached value (index_name)
    # and its text (the column's name: what a held-out row carries; null when missing)
    rows: object
    label_counts: dict[str, int]  # stratum -> rows (classification: per label value; regression: one stratum)
    bucket_counts: dict[tuple[str, int], int]
    missing_cells: dict[str, int]  # feature that allows missing cells -> how many rows have one
    release: object  # drops the cached lines


# The one stratum of a regression split.
ALL_ROWS = ""


def number_text(col):
    """A parsed number as a field of a held-out row: integers without '.0', others as Java prints a
    double (what SparkML Serving and XGBoost parse back to the same value); null stays null."""
    from pyspark.sql import functions as F

    whole = (F.abs(col) < 1e15) & (col == F.floor(col))
    return F.when(whole, col.cast("long").cast("string")).otherwise(col.cast("string"))


def validate(spark, layout: Layout, input_uri: str, seed: int) -> ValidInput:
    """Raises InvalidInputData before anything is fitted. The input is read and parsed once: what
    the later steps need of each line is cached on the way through (caller: `valid.release()`).

    The cache holds numbers where it can (position, kind code, split hash, a listed value's index
    in the spec, a parsed number) and text only for learned categories: building Spark's columnar
    cache of the parsed strings cost more CPU than parsing them. A listed value's text is the spec's
    own, so `rows` maps the indices back to it; the examples of a refused input are found by
    reading the input again, only on that path.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    used = layout.used
    label = layout.label
    classified = classify(read_lines(spark, input_uri), layout)
    is_row = F.col("kind") == KINDS.index("row")
    split_hash = F.xxhash64(F.lit(seed), *[F.col(c.name) for c in used])
    keyed = classified.select(
        "file", "part", "pos", "kind", *[index_name(c.name) for c in used],
        F.when(is_row, split_hash).alias("split_hash"),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    may_be_missing = [c for c in layout.features if _allows_missing(c, layout)]
    try:
        bucket = (F.col("split_hash") % SPLIT_BUCKETS + SPLIT_BUCKETS) % SPLIT_BUCKETS
        # Small whatever the input size: files x partitions x kinds groups.
        summary = [row.asDict() for row in keyed.groupBy("file", "part", "kind").agg(
            F.count(F.lit(1)).alias("n"), F.min("pos").alias("min_pos"),
            *[F.sum(F.col(index_name(c.name)).isNull().cast("long")).alias(f"missing{i}")
              for i, c in enumerate(may_be_missing)]).collect()]
        for row in summary:
            row["kind"] = KINDS[row["kind"]]
        _raise_for_problems(layout, input_uri, lambda: read_lines(spark, input_uri), summary)
        total = sum(r["n"] for r in summary if r["kind"] == "row")
        missing_cells = {c.name: sum(r[f"missing{i}"] for r in summary if r["kind"] == "row")
                         for i, c in enumerate(may_be_missing)}
        empty = [name for name, n in missing_cells.items() if n == total]
        if empty:
            raise InvalidInputData(
                f"Input data rejected, nothing was trained ({input_uri}): column(s) {', '.join(map(repr, empty))} "
                "have no value in any row (every cell is empty or a missing-value marker): nothing to learn from; "
                "declare them \"type\": \"ignore\" or fill them in.",
                [{"kind": "empty_column", "count": len(empty), "lines": [], "message": f"no values in {empty}"}])
        if label.type == "categorical" and label.values is not None:
            labels = list(label.values)
            stratum_of = lambda key: labels[key]  # noqa: E731
            stratum = F.col(index_name(label.name))
        elif label.type == "categorical":
            stratum_of = lambda key: key  # noqa: E731
            stratum = F.col(index_name(label.name))
        else:
            stratum_of = lambda key: key  # noqa: E731
            stratum = F.lit(ALL_ROWS)
        bucket_counts = {(stratum_of(r.stratum), r.bucket): r.n
                         for r in keyed.filter(is_row).groupBy(stratum.alias("stratum"), bucket.alias("bucket"))
                         .agg(F.count(F.lit(1)).alias("n")).collect()}
    except BaseException:
        keyed.unpersist()
        raise
    label_counts: dict[str, int] = {v: 0 for v in label.values} if label.values is not None else {}
    for (value, _), n in bucket_counts.items():
        label_counts[value] = label_counts.get(value, 0) + n

    def text(c: ColumnSpec):
        cached = F.col(index_name(c.name))
        if c.type == "categorical" and c.values is not None:
            return F.element_at(F.array(*[F.lit(v) for v in c.values]), cached.cast("int") + 1)
        return cached if c.type == "categorical" else number_text(cached)

    if label.type == "categorical" and label.values is not None:
        stratum_text = text(label)
    elif label.type == "categorical":
        stratum_text = F.col(index_name(label.name))
    else:
        stratum_text = F.lit(ALL_ROWS)
    rows = keyed.filter(is_row).select(
        "file", "pos", "split_hash", bucket.alias("bucket"), *[index_name(c.name) for c in used],
        *[text(c).alias(c.name) for c in used], stratum_text.alias("stratum"))
    return ValidInput(rows, label_counts, bucket_counts, missing_cells, release=keyed.unpersist)


def _header_problem(layout: Layout, fields: list[str]) -> str:
    """Why a first line is not the header the spec describes."""
    names = [c.name for c in layout.columns]
    given = [f.strip().strip('"').strip() for f in fields]
    lowered = [g.lower() for g in given]
    if layout.label.name.lower() not in lowered:
        why = f"it has no {layout.label.name!r} column (the label)"
    elif len(given) != len(names):
        why = f"it names {len(given)} columns, the spec {len(names)}"
    else:
        differ = [f"{g!r} where the spec has {n!r}" for g, n in zip(given, names) if g.lower() != n.lower()]
        why = "it has " + ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
    return f"{why}; the spec's columns, in order: {', '.join(names)}"


def _raise_for_problems(layout: Layout, input_uri: str, lines, summary: list[dict]) -> None:
    """`summary`: line counts per (file, part, kind name); `lines()`: the input's lines (read_lines),
    read again to find the first few offending lines when there are any."""
    from pyspark.sql import functions as F

    chunk_counts: dict[tuple[str, int], list[int]] = {}
    kind_counts: dict[str, int] = {}
    header_first_pos: dict[str, int] = {}
    first_line_kind: dict[str, str] = {}
    for row in summary:
        chunk = chunk_counts.setdefault((row["file"], row["part"]), [0, row["min_pos"]])
        chunk[0] += row["n"]
        chunk[1] = min(chunk[1], row["min_pos"])
        kind_counts[row["kind"]] = kind_counts.get(row["kind"], 0) + row["n"]
        if row["kind"] == "header":
            header_first_pos[row["file"]] = min(row["min_pos"], header_first_pos.get(row["file"], row["min_pos"]))
    locator = LineLocator([(f, p, c[0], c[1]) for (f, p), c in chunk_counts.items()], input_uri)
    for row in summary:
        if row["min_pos"] == locator.file_first_pos[row["file"]]:
            first_line_kind[row["file"]] = row["kind"]
    columns = [c.name for c in layout.columns]

    def classified():
        return classify(lines(), layout)

    def first_lines(kind: str, limit: int = EXAMPLES_PER_PROBLEM):
        rows = (classified().filter(F.col("kind") == KINDS.index(kind)).orderBy("file", "pos").limit(limit)
                .select("file", "part", "pos", F.lit(kind).alias("kind_name"), "n_fields", *columns)
                .select("file", "part", "pos", problem_detail(layout).alias("detail")).collect())
        return [(r, locator.where(r.file, r.part, r.pos) + (f" ({r.detail})" if r.detail else "")) for r in rows]

    problems = []
    # A first line that should be, or looks like, the column names but is not the spec's.
    suspects = [f for f in locator.files if first_line_kind.get(f) not in ("header", "blank")
                and (layout.header == "yes" or (layout.header == "auto" and first_line_kind.get(f) != "row"))]
    if suspects:
        wanted = F.lit(False)
        for file in suspects:
            wanted = wanted | ((F.col("file") == file) & (F.col("pos") == locator.file_first_pos[file]))
        for r in lines().filter(wanted).select("file", "line").collect():
            fields = next(csv.reader([r.line]), [])
            names_lower = {n.lower() for n in columns}
            looks_like_header = sum(f.lower() in names_lower for f in fields) >= max(1, (len(columns) + 1) // 2)
            if layout.header == "yes" or looks_like_header:
                where = (f"{locator.file_name(r.file)}: " if len(locator.files) > 1 else "")
                expected = "must be" if layout.header == "yes" else "looks like"
                problems.append({"kind": "header", "count": 1, "lines": [f"{where}line 1"],
                                 "message": f"{where}line 1 {expected} the header row but does not match the spec: "
                                            + _header_problem(layout, fields)})
    for kind in ("undecodable", "quotes", "field_count", "header_misplaced", "missing_value", "label_value",
                 "label_number", "feature_value", "numeric_value"):
        if kind == "header_misplaced":
            headers_on_line_1 = sum(1 for file, pos in header_first_pos.items() if pos == locator.file_first_pos[file])
            count = kind_counts.get("header", 0) - headers_on_line_1
            if count <= 0:
                continue
            candidates = first_lines("header", EXAMPLES_PER_PROBLEM + len(locator.files))
            examples = [text for r, text in candidates if r.pos != locator.file_first_pos[r.file]][:EXAMPLES_PER_PROBLEM]
        else:
            count = kind_counts.get(kind, 0)
            if not count:
                continue
            examples = [text for _, text in first_lines(kind)]
        more = f", ... ({count - len(examples)} more)" if count > len(examples) else ""
        problems.append({"kind": kind, "count": count, "lines": examples,
                         "message": f"{_PROBLEM_TEXT[kind](layout, count)}: {', '.join(examples)}{more}"})
    if not problems and kind_counts.get("row", 0) == 0:
        if kind_counts.get("header", 0):
            text = "the input holds only the column-names line and no data rows"
        else:
            text = "the input holds no data rows (it is empty or has only blank lines)"
        problems.append({"kind": "no_rows", "count": 0, "lines": [], "message": text})
    if problems:
        raise InvalidInputData(
            f"Input data rejected, nothing was trained ({input_uri}): " + "; ".join(p["message"] for p in problems) + ".",
            problems)


# ------------------------------------------------------------------------- split

def split_counts(label_counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Exact per-label sizes: test and validation rounded from their fractions, train gets the rest."""
    sizes = {}
    for label, n in label_counts.items():
        test = int(n * SPLIT_FRACTIONS["test"] + 0.5)
        validation = int(n * SPLIT_FRACTIONS["validation"] + 0.5)
        sizes[label] = {"test": test, "validation": validation, "train": n - test - validation}
    return sizes


def boundary_buckets(sizes: dict[str, dict[str, int]], bucket_counts: dict[tuple[str, int], int]) -> dict[str, dict]:
    """Per label: the buckets holding the last test row and the last validation row, and the
    rank each boundary bucket starts after. Rows in other buckets need no ranking at all."""
    plan = {}
    for label, size in sizes.items():
        ends = {"test": size["test"], "validation": size["test"] + size["validation"]}
        found = {"test": -1, "validation": -1}
        starts: dict[int, int] = {}
        seen = 0
        for bucket in sorted(b for (lab, b) in bucket_counts if lab == label):
            n = bucket_counts[(label, bucket)]
            for name, end in ends.items():
                if found[name] < 0 and seen < end <= seen + n:
                    found[name] = bucket
                    starts[bucket] = seen
            seen += n
        plan[label] = {"test_bucket": found["test"], "validation_bucket": found["validation"],
                       "test_end": ends["test"], "validation_end": ends["validation"], "starts": starts}
    return plan


def assign_split(valid: ValidInput, layout: Layout, sizes: dict[str, dict[str, int]]):
    """The used columns (text and cached value), `stratum` and `split`.

    Rank order within a stratum (a label value; regression: one stratum) is (bucket, split_hash,
    file, pos), bucket = split_hash mod SPLIT_BUCKETS. A row's split follows from its bucket alone, except in the few boundary
    buckets where a cut falls: only those rows are ranked, so no shuffle of the whole data
    set and no task holding a whole label (a window over each label would be both).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    names = [c.name for c in layout.used]
    label, bucket = F.col("stratum"), F.col("bucket")
    plan = boundary_buckets(sizes, valid.bucket_counts)

    def per_label(value_of):
        expression = None
        for value, entry in plan.items():
            expression = (F.when(label == value, F.lit(value_of(entry))) if expression is None
                          else expression.when(label == value, F.lit(value_of(entry))))
        return expression

    is_boundary = F.lit(False)
    for value, entry in plan.items():
        if entry["starts"]:
            is_boundary = is_boundary | ((label == value) & bucket.isin(list(entry["starts"])))
    by_bucket = (F.when(bucket < per_label(lambda e: e["test_bucket"]), "test")
                 .when(bucket < per_label(lambda e: e["validation_bucket"]), "validation").otherwise("train"))
    carried = [*names, *[index_name(name) for name in names], "stratum"]
    plain = valid.rows.filter(~is_boundary).select(*carried, by_bucket.alias("split"))

    start = F.lit(0)
    for value, entry in plan.items():
        for b, rank_start in entry["starts"].items():
            start = F.when((label == value) & (bucket == b), F.lit(rank_start)).otherwise(start)
    rank = start + F.row_number().over(Window.partitionBy(label, bucket).orderBy("split_hash", "file", "pos"))
    by_rank = (F.when(rank <= per_label(lambda e: e["test_end"]), "test")
               .when(rank <= per_label(lambda e: e["validation_end"]), "validation").otherwise("train"))
    ranked = valid.rows.filter(is_boundary).select(*carried, by_rank.alias("split"))
    return plain.unionByName(ranked)


# ---------------------------------------------------------------------- pipeline

def index_col(name: str) -> str:
    return f"{name}__index"


def bucket_col(name: str) -> str:
    return f"{name}__bucket"


def imputed_col(name: str) -> str:
    return f"{name}__imputed"


def onehot_col(name: str) -> str:
    return f"{name}__onehot"


OTHER_SLOT = "(other)"


@dataclass(frozen=True)
class Learned:
    """What the training split taught the preprocess pipeline (the manifest's `learned`)."""

    # learned categorical feature -> (values with a slot of their own, the rarer values sharing "other")
    categories: dict = field(default_factory=dict)
    # numeric feature -> the value a missing cell becomes
    surrogates: dict = field(default_factory=dict)

    def to_json(self, layout: Layout) -> dict:
        out = {}
        for c in layout.features:
            if c.name in self.categories:
                values, other = self.categories[c.name]
                out[c.name] = {"values": list(values), "other": list(other)}
            elif c.name in self.surrogates:
                out[c.name] = {"impute": c.impute, "surrogate": self.surrogates[c.name]}
        return out

    @classmethod
    def from_json(cls, document: dict | None) -> "Learned":
        document = document or {}
        return cls({n: (list(d["values"]), list(d["other"])) for n, d in document.items() if "values" in d},
                   {n: float(d["surrogate"]) for n, d in document.items() if "surrogate" in d})


def indexer_labels(column: ColumnSpec, learned: Learned) -> tuple[list[str], int]:
    """A categorical feature's StringIndexer labels, and how many of them have a slot of their own
    (the rest share the "other" slot)."""
    if column.values is not None:
        return list(column.values), len(column.values)
    values, other = learned.categories[column.name]
    return list(values) + list(other), len(values)


def other_splits(own: int, total: int) -> list[float]:
    """Bucketizer splits over StringIndexer positions: each of the first `own` positions its own
    bucket, positions own..total-1 one "other" bucket, and position `total` (the indexer's "keep"
    index for a value never seen in training) the last bucket, which the encoder drops."""
    return [i - 0.5 for i in range(own + 1)] + [total - 0.5, total + 0.5]


def feature_slots(layout: Layout, learned: Learned) -> list[str]:
    """What each element of the feature vector holds, in order."""
    slots = []
    for c in layout.features:
        if c.type == "numeric":
            slots.append(c.name)
            continue
        labels, own = indexer_labels(c, learned)
        slots.extend(f"{c.name}={v}" for v in labels[:own])
        if own < len(labels):
            slots.append(f"{c.name}={OTHER_SLOT}")
    return slots


def _as_layout(spec) -> Layout:
    return spec if isinstance(spec, Layout) else parse_spec(spec)


def build_preprocess_model(spark, spec, sample=None, learned: Learned | dict | None = None):
    """The serving feature pipeline, from the spec and what the training split taught (`learned`:
    a Learned or the manifest's `learned`; needed when the spec has numeric or learned columns).
    `sample` is not read (kept for callers of the all-categorical version).

    Categorical feature: StringIndexer (labels fixed: the spec's values, or the learned ones with the
    rarer values last), for a capped learned column a Bucketizer folding the rarer positions into one
    "other" bucket, then one-hot. Numeric feature: Imputer (the surrogate from the training split).
    VectorAssembler in the spec's feature order.
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import Bucketizer, Imputer, OneHotEncoder, StringIndexerModel, VectorAssembler
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    layout = _as_layout(spec)
    learned = learned if isinstance(learned, Learned) else Learned.from_json(learned)
    features = layout.features
    stages, encoded, vector_inputs = [], {}, {}
    for c in features:
        if c.type != "categorical":
            continue
        labels, own = indexer_labels(c, learned)
        stages.append(StringIndexerModel.from_labels(labels, inputCol=c.name, outputCol=index_col(c.name),
                                                     handleInvalid="keep"))
        encoded[c.name] = index_col(c.name)
        if own < len(labels):
            stages.append(Bucketizer(splits=other_splits(own, len(labels)), inputCol=index_col(c.name),
                                     outputCol=bucket_col(c.name)))
            encoded[c.name] = bucket_col(c.name)
        vector_inputs[c.name] = onehot_col(c.name)
    numeric = [c for c in features if c.type == "numeric"]
    for strategy in IMPUTE_STRATEGIES:
        group = [c for c in numeric if c.impute == strategy]
        if not group:
            continue
        # Spark's ImputerModel has no constructor from values: fitting it on one row holding the
        # surrogates gives exactly those values (the mean or the median of one number is that number).
        one_row = spark.createDataFrame([tuple(float(learned.surrogates[c.name]) for c in group)],
                                        StructType([StructField(c.name, DoubleType()) for c in group]))
        imputer = Imputer(strategy=strategy, inputCols=[c.name for c in group],
                          outputCols=[imputed_col(c.name) for c in group])
        stages.append(imputer.fit(one_row))
        vector_inputs.update({c.name: imputed_col(c.name) for c in group})
    if encoded:
        names = list(encoded)
        stages.append(OneHotEncoder(inputCols=[encoded[n] for n in names], outputCols=[onehot_col(n) for n in names],
                                    dropLast=True, handleInvalid="error"))
    stages.append(VectorAssembler(inputCols=[vector_inputs[c.name] for c in features], outputCol=FEATURES_COL))
    # OneHotEncoder's fit reads only its input columns' metadata: an empty frame is enough.
    empty = spark.createDataFrame([], StructType([
        StructField(c.name, DoubleType() if c.type == "numeric" else StringType()) for c in features]))
    return Pipeline(stages=stages).fit(empty)


def build_label_indexer(spec, label_values: list[str] | None = None):
    from pyspark.ml.feature import StringIndexerModel

    layout = _as_layout(spec)
    labels = list(label_values if label_values is not None else layout.label.values)
    return StringIndexerModel.from_labels(labels, inputCol=layout.label.name, outputCol=LABEL_INDEX_COL,
                                          handleInvalid="error")


def probability_cut(threshold: float) -> float:
    """The Binarizer threshold for "probability >= threshold is the second class": Spark's and
    MLeap's Binarizer test `value > threshold`, and for doubles `p > nextafter(t, -inf)` is `p >= t`."""
    return math.nextafter(threshold, -math.inf)


def build_postprocess_model(spec, label_values: list[str] | None = None):
    """XGBoost's answer -> the label string; None for regression (the answer is the number).

    multiclass: IndexToString of the class index (multi:softmax). binary: Binarizer at the spec's
    threshold (binary:logistic answers the probability of label_values[1]), then IndexToString."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import Binarizer, IndexToString

    layout = _as_layout(spec)
    if not layout.classification:
        return None
    labels = list(label_values if label_values is not None else layout.label.values)
    if len(labels) == 2:
        return PipelineModel(stages=[
            Binarizer(threshold=probability_cut(layout.binary_threshold), inputCol=POSTPROCESS_INPUT,
                      outputCol=POSTPROCESS_CLASS),
            IndexToString(inputCol=POSTPROCESS_CLASS, outputCol=POSTPROCESS_OUTPUT, labels=labels)])
    return PipelineModel(stages=[IndexToString(inputCol=POSTPROCESS_INPUT, outputCol=POSTPROCESS_OUTPUT, labels=labels)])


def preprocess_schema(feature_names: list[str]) -> dict:
    """The preprocess container's SAGEMAKER_SPARKML_SCHEMA document (see sparkml_schemas)."""
    return {
        "input": [{"name": name, "type": "string"} for name in feature_names],
        "output": {"name": FEATURES_COL, "type": "double", "struct": "vector"},
    }


def environment_value_length(schema: dict) -> int:
    """The schema's length as create_model puts it in the container environment (compact JSON)."""
    return len(json.dumps(schema, separators=(",", ":")))


def sparkml_schemas(spec) -> dict[str, dict | None]:
    """The SAGEMAKER_SPARKML_SCHEMA documents of the serving containers (postprocess: None for regression).

    Every feature is a string field, numbers included: SparkML Serving parses a `double` field with
    `new Double(text)`, which refuses an empty field, while MLeap casts a string field to the
    Imputer's nullable double with "" and "null" as null (Casting.scala), which the Imputer fills in.
    """
    layout = _as_layout(spec)
    schemas = {
        "preprocess": preprocess_schema([c.name for c in layout.features]),
        "postprocess": None,
    }
    if layout.classification:
        schemas["postprocess"] = {
            "input": [{"name": POSTPROCESS_INPUT, "type": "double"}],
            "output": {"name": POSTPROCESS_OUTPUT, "type": "string"},
        }
    return schemas


# ----------------------------------------------------------------- MLeap bundles
#
# The job writes its MLeap bundles itself, as the JSON files MLeap runtime 0.20.0 (SparkML
# Serving 3.3) reads: no MLeap serializer exists for Spark 3.5, and none is needed to write a
# few JSON files. What each op's loader reads is in combust/mleap v0.20.0,
# mleap-runtime/.../bundle/ops/feature/<Op>Op.scala, and bundle-ml's json/JsonSupport.scala.
# The writer lives in this script because `sam package` uploads a Glue job's
# Command.ScriptLocation and nothing else (aws-sam-cli samcli/lib/package/packageable_resources.py,
# GlueJobCommandScriptLocationResource): one file keeps `sam build && sam deploy` the whole deploy.
#
# To support another Spark stage, add a function to BUNDLE_OPS: it gets the fitted stage and the
# shapes of the columns seen so far, and returns the node (op name, attributes, sockets) and the
# shapes of the columns it adds. A stage without an entry fails the job by its class name
# before anything is written (bundle_nodes is called before the first write).

BUNDLE_FORMAT_VERSION = MLEAP_SERVING_RUNTIME


class UnsupportedStage(ValueError):
    """The pipeline holds a Spark stage the bundle writer cannot express for MLeap runtime 0.20.0."""


@dataclass(frozen=True)
class ColumnShape:
    """A column's MLeap data shape: a scalar, or a tensor (a Spark vector) of `size` doubles."""

    size: int | None = None  # None: scalar
    nullable: bool = True

    def to_json(self) -> dict:
        # DataShape and TensorDimension are read with spray's jsonFormat: every field must be present,
        # including isNullable and a dimension's (empty) name.
        if self.size is None:
            return {"base": "scalar", "isNullable": self.nullable}
        return {"base": "tensor", "isNullable": self.nullable,
                "tensorShape": {"dimensions": [{"size": self.size, "name": ""}]}}


SCALAR = ColumnShape()


@dataclass(frozen=True)
class BundleNode:
    name: str
    op: str
    attributes: dict
    inputs: list  # [(port, column)]
    outputs: list


def _value_string(value: str) -> dict:
    return {"string": value}


def _value_int(value: int) -> dict:
    return {"int": int(value)}


def _value_boolean(value: bool) -> dict:
    return {"boolean": bool(value)}


def _value_list(kind: str, values: list) -> dict:
    return {kind: list(values), "type": "list"}


def _input_shape(shapes: dict, stage, column: str) -> ColumnShape:
    if column not in shapes:
        raise UnsupportedStage(f"{type(stage).__name__} {stage.uid} reads column {column!r}, which is neither a "
                               "pipeline input nor written by an earlier stage")
    return shapes[column]


def _string_indexer_node(stage, shapes: dict):
    if stage.isSet(stage.inputCols) or len(stage.labelsArray) != 1:
        # StringIndexerOp 0.20.0 reads labels_length == 1 only: one indexer per column.
        raise UnsupportedStage(f"StringIndexerModel {stage.uid} has several input columns; MLeap runtime "
                               f"{MLEAP_SERVING_RUNTIME} loads single-column StringIndexers only")
    source, target = stage.getInputCol(), stage.getOutputCol()
    _input_shape(shapes, stage, source)
    attributes = {
        "labels_length": _value_int(1),
        "labels_array_0": _value_list("string", stage.labelsArray[0]),
        "handle_invalid": _value_string(stage.getHandleInvalid()),
    }
    return (BundleNode(stage.uid, "string_indexer", attributes, [("input", source)], [("output", target)]),
            {target: SCALAR})


def _one_hot_encoder_node(stage, shapes: dict):
    sources = stage.getInputCols() if stage.isSet(stage.inputCols) else [stage.getInputCol()]
    targets = stage.getOutputCols() if stage.isSet(stage.outputCols) else [stage.getOutputCol()]
    for source in sources:
        _input_shape(shapes, stage, source)
    sizes = [int(n) for n in stage.categorySizes]
    handle_invalid = stage.getHandleInvalid()
    drop_last = stage.getDropLast()
    # Spark's and MLeap's OneHotEncoderModel alike: "keep" adds a slot for invalid values, dropLast removes one.
    widths = [n + (handle_invalid == "keep") - drop_last for n in sizes]
    attributes = {
        "category_sizes": _value_list("int", sizes),
        "drop_last": _value_boolean(drop_last),
        "handle_invalid": _value_string(handle_invalid),
    }
    node = BundleNode(stage.uid, "one_hot_encoder", attributes,
                      [(f"input{i}", c) for i, c in enumerate(sources)], [(f"output{i}", c) for i, c in enumerate(targets)])
    return node, {target: ColumnShape(size=width) for target, width in zip(targets, widths)}


def _vector_assembler_node(stage, shapes: dict):
    if stage.getHandleInvalid() != "error":
        # MLeap's VectorAssembler has no handleInvalid: "skip"/"keep" would serve differently than Spark trains.
        raise UnsupportedStage(f"VectorAssembler {stage.uid} has handleInvalid={stage.getHandleInvalid()!r}; "
                               f"MLeap runtime {MLEAP_SERVING_RUNTIME} only assembles like 'error'")
    sources = stage.getInputCols()
    input_shapes = [_input_shape(shapes, stage, c) for c in sources]
    attributes = {"input_shapes": _value_list("data_shape", [s.to_json() for s in input_shapes])}
    width = sum(1 if s.size is None else s.size for s in input_shapes)
    node = BundleNode(stage.uid, "vector_assembler", attributes,
                      [(f"input{i}", c) for i, c in enumerate(sources)], [("output", stage.getOutputCol())])
    return node, {stage.getOutputCol(): ColumnShape(size=width)}


def _index_to_string_node(stage, shapes: dict):
    source, target = stage.getInputCol(), stage.getOutputCol()
    _input_shape(shapes, stage, source)
    if not stage.isSet(stage.labels) or not stage.getLabels():
        # Spark would read the labels from the input column's metadata, which a serving request has none of.
        raise UnsupportedStage(f"IndexToString {stage.uid} has no explicit labels")
    attributes = {
        "labels": _value_list("string", stage.getLabels()),
        # What mleap-spark wrote for this stage (the 0.16.0 fixture); the serving input is one double per row.
        "input_shape": {"data_shape": ColumnShape(nullable=False).to_json()},
    }
    return (BundleNode(stage.uid, "reverse_string_indexer", attributes, [("input", source)], [("output", target)]),
            {target: SCALAR})


def _value_double(value: float) -> dict:
    # JSON has no NaN or infinity, and spray-json reads none: callers refuse non-finite values.
    return {"double": float(value)}


def _imputer_node(stage, shapes: dict):
    """One `imputer` node per column: MLeap 0.20.0's ImputerOp is single-column (input -> output)."""
    sources = stage.getInputCols() if stage.isSet(stage.inputCols) else [stage.getInputCol()]
    targets = stage.getOutputCols() if stage.isSet(stage.outputCols) else [stage.getOutputCol()]
    for source in sources:
        _input_shape(shapes, stage, source)
    missing = stage.getMissingValue()
    if not math.isnan(missing):
        # Spark then passes NaN through as a value, MLeap's ImputerModel always fills NaN in: they would differ.
        raise UnsupportedStage(f"ImputerModel {stage.uid} has missingValue={missing}; only NaN (the default) "
                               f"serves the same in MLeap runtime {MLEAP_SERVING_RUNTIME}")
    [row] = stage.surrogateDF.collect()
    nodes = []
    for i, (source, target) in enumerate(zip(sources, targets)):
        surrogate = float(row[source])
        if not math.isfinite(surrogate):
            raise UnsupportedStage(f"ImputerModel {stage.uid}: the surrogate of {source!r} is {surrogate}")
        attributes = {
            "surrogate_value": _value_double(surrogate),
            "strategy": _value_string(stage.getStrategy()),
            # The serving field is a nullable string: "" arrives as null, which a nullable input fills in.
            "nullable_input": _value_boolean(True),
        }
        nodes.append(BundleNode(f"{stage.uid}_{i}", "imputer", attributes, [("input", source)], [("output", target)]))
    return nodes, {target: SCALAR for target in targets}


def _bucketizer_node(stage, shapes: dict):
    if stage.isSet(stage.splitsArray) or stage.isSet(stage.inputCols):
        raise UnsupportedStage(f"Bucketizer {stage.uid} has several input columns; MLeap runtime "
                               f"{MLEAP_SERVING_RUNTIME} loads single-column Bucketizers only")
    if stage.getHandleInvalid() == "skip":
        raise UnsupportedStage(f"Bucketizer {stage.uid} skips rows: training rows would differ from the input rows")
    splits = [float(s) for s in stage.getSplits()]
    if not all(math.isfinite(s) for s in splits):
        # A JSON bundle cannot hold infinity (BucketizerOp restores NaN ends, which JSON cannot hold either).
        raise UnsupportedStage(f"Bucketizer {stage.uid} has infinite splits, which a JSON bundle cannot hold")
    source, target = stage.getInputCol(), stage.getOutputCol()
    _input_shape(shapes, stage, source)
    attributes = {"splits": _value_list("double", splits), "handle_invalid": _value_string(stage.getHandleInvalid())}
    return (BundleNode(stage.uid, "bucketizer", attributes, [("input", source)], [("output", target)]),
            {target: SCALAR})


def _binarizer_node(stage, shapes: dict):
    if stage.isSet(stage.inputCols):
        # BinarizerOp 0.20.0: "Multi-column Binarizer not supported yet".
        raise UnsupportedStage(f"Binarizer {stage.uid} has several input columns; MLeap runtime "
                               f"{MLEAP_SERVING_RUNTIME} loads single-column Binarizers only")
    source, target = stage.getInputCol(), stage.getOutputCol()
    shape = _input_shape(shapes, stage, source)
    if shape.size is not None:
        raise UnsupportedStage(f"Binarizer {stage.uid} reads a vector; the bundle writer handles scalars only")
    attributes = {
        "threshold": _value_double(stage.getThreshold()),
        # BinarizerOp reads a single data shape under this (plural) name.
        "input_shapes": {"data_shape": ColumnShape(nullable=False).to_json()},
    }
    return (BundleNode(stage.uid, "binarizer", attributes, [("input", source)], [("output", target)]),
            {target: SCALAR})


# --- the same nodes as Spark SQL column expressions -------------------------------
# The training CSVs are the preprocess bundle applied to the training rows. Computing them from the
# bundle's own nodes keeps training and serving the same by construction, and plain column
# expressions are what Spark optimizes best: a PipelineModel.transform re-runs per write (Spark treats
# StringIndexerModel's UDF as non-deterministic, so nothing is pushed through it), costs a Python
# round trip per stage, and builds a vector per row only to take it apart again. Each column is a
# list of "slots" (a scalar has one, a vector one per element).

def _invalid(node: BundleNode, what):
    from pyspark.sql import functions as F

    return F.raise_error(F.concat(F.lit(f"{node.op} {node.name}: "), what))


def _string_indexer_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    from pyspark.sql import functions as F

    [source] = columns[node.inputs[0][1]]
    labels = node.attributes["labels_array_0"]["string"]
    handle_invalid = node.attributes["handle_invalid"]["string"]
    if handle_invalid == "skip":
        raise UnsupportedStage(f"StringIndexer {node.name} skips rows: training rows would differ from the input rows")
    known = indexed.get(node.inputs[0][1])
    if known is not None and list(known[1]) == list(labels):
        # Validation already found each value's position in this very list (null: not in it).
        index = known[0].cast("int")
        fallback = F.lit(len(labels)) if handle_invalid == "keep" else _invalid(node, F.lit("Unseen label"))
        return {node.outputs[0][1]: [F.coalesce(index, fallback)]}
    source = source.cast("string")
    index = F.when(source == labels[0], F.lit(0))
    for i, label in enumerate(labels[1:], start=1):
        index = index.when(source == label, F.lit(i))
    fallback = F.lit(len(labels)) if handle_invalid == "keep" else _invalid(
        node, F.concat(F.lit("Unseen label: "), F.coalesce(source, F.lit("null"))))
    return {node.outputs[0][1]: [index.otherwise(fallback)]}


def _one_hot_encoder_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    from pyspark.sql import functions as F

    sizes = node.attributes["category_sizes"]["int"]
    keep = node.attributes["handle_invalid"]["string"] == "keep"
    drop_last = node.attributes["drop_last"]["boolean"]
    added = {}
    for (_, source), (_, target), size in zip(node.inputs, node.outputs, sizes):
        [index] = columns[source]
        width = size + keep - drop_last
        if keep:
            index = F.when((index >= 0) & (index < size), index).otherwise(F.lit(size))
        else:
            index = F.when((index >= 0) & (index < size), index).otherwise(
                _invalid(node, F.concat(F.lit("invalid index "), index.cast("string"))))
        added[target] = [(index == j).cast("int") for j in range(width)]
    return added


def _vector_assembler_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    return {node.outputs[0][1]: [slot for _, source in node.inputs for slot in columns[source]]}


def _imputer_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    from pyspark.sql import functions as F

    [source] = columns[node.inputs[0][1]]
    surrogate = node.attributes["surrogate_value"]["double"]
    value = source.cast("double")
    # ImputerModel (Spark and MLeap alike): null and NaN are missing.
    return {node.outputs[0][1]: [F.when(value.isNull() | F.isnan(value), F.lit(surrogate)).otherwise(value)]}


def _bucketizer_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    from pyspark.sql import functions as F

    [source] = columns[node.inputs[0][1]]
    splits = node.attributes["splits"]["double"]
    keep = node.attributes["handle_invalid"]["string"] == "keep"
    value = source.cast("double")
    # Bucketizer.binarySearchForBuckets: [s_i, s_i+1) is bucket i, the last split belongs to the last bucket.
    bucket = F.when(value == splits[-1], F.lit(float(len(splits) - 2)))
    for i in range(len(splits) - 1):
        bucket = bucket.when((value >= splits[i]) & (value < splits[i + 1]), F.lit(float(i)))
    nan = F.lit(float(len(splits) - 1)) if keep else _invalid(node, F.lit("Bucketizer encountered NaN value"))
    bucket = bucket.when(F.isnan(value), nan).otherwise(
        _invalid(node, F.concat(F.lit("Feature value "), value.cast("string"), F.lit(" out of Bucketizer bounds"))))
    return {node.outputs[0][1]: [bucket]}


@dataclass(frozen=True)
class BundleOp:
    name: str  # the MLeap op name its nodes carry
    # (fitted stage, shapes so far) -> (BundleNode or a list of them, shapes of the columns it adds)
    node: object
    # (BundleNode, slots so far, indexed) -> slots of the columns it adds; None: serving only
    columns: object = None


# Spark stage class name -> its op.
BUNDLE_OPS = {
    "StringIndexerModel": BundleOp("string_indexer", _string_indexer_node, _string_indexer_columns),
    "OneHotEncoderModel": BundleOp("one_hot_encoder", _one_hot_encoder_node, _one_hot_encoder_columns),
    "VectorAssembler": BundleOp("vector_assembler", _vector_assembler_node, _vector_assembler_columns),
    "IndexToString": BundleOp("reverse_string_indexer", _index_to_string_node),
    "ImputerModel": BundleOp("imputer", _imputer_node, _imputer_columns),
    "Bucketizer": BundleOp("bucketizer", _bucketizer_node, _bucketizer_columns),
    "Binarizer": BundleOp("binarizer", _binarizer_node),
}


def bundle_columns(nodes: list[BundleNode], inputs: list[str], output: str, indexed: dict | None = None,
                   sources: dict | None = None) -> list:
    """The slots of `output` as Spark column expressions over the input columns. `indexed`: input
    column -> (column of each value's position in `labels`, labels), when that is already known;
    `sources`: input column -> the expression to read it from (default: the column of that name)."""
    from pyspark.sql import functions as F

    ops = {op.name: op for op in BUNDLE_OPS.values()}
    columns = {name: [(sources or {}).get(name, F.col(name))] for name in inputs}
    for node in nodes:
        if ops[node.op].columns is None:
            raise UnsupportedStage(f"{node.op} {node.name} has no Spark expression")
        columns.update(ops[node.op].columns(node, columns, indexed or {}))
    return columns[output]


def _flat_stages(model) -> list:
    stages = []
    for stage in model.stages:
        stages.extend(_flat_stages(stage) if type(stage).__name__ == "PipelineModel" else [stage])
    return stages


def bundle_nodes(model, inputs: list[str]) -> tuple[list[BundleNode], dict[str, ColumnShape]]:
    """The nodes of a fitted PipelineModel whose input columns are the scalars `inputs`, and every column's shape.

    Raises UnsupportedStage naming every stage the writer does not know, before looking at any of them.
    """
    stages = _flat_stages(model)
    unknown = sorted({type(s).__name__ for s in stages if type(s).__name__ not in BUNDLE_OPS})
    if unknown:
        raise UnsupportedStage(f"the MLeap bundle writer has no op for Spark stage(s) {', '.join(unknown)} "
                               f"(supported: {', '.join(sorted(BUNDLE_OPS))}); nothing was written")
    shapes = {name: SCALAR for name in inputs}
    nodes = []
    for stage in stages:
        node, added = BUNDLE_OPS[type(stage).__name__].node(stage, shapes)
        nodes.extend(node if isinstance(node, list) else [node])
        shapes.update(added)
    return nodes, shapes


def write_bundle(name: str, nodes: list[BundleNode], directory: Path) -> None:
    """An unzipped JSON bundle: bundle.json, root/{model,node}.json, root/<node>.node/{model,node}.json."""
    root = directory / "root"
    root.mkdir(parents=True)

    def put(path: Path, document: dict) -> None:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    for node in nodes:
        # GraphSerializer reads each pipeline child from "<name>.node" next to the pipeline's files.
        node_dir = root / f"{node.name}.node"
        node_dir.mkdir()
        put(node_dir / "model.json", {"op": node.op, "attributes": node.attributes})
        put(node_dir / "node.json", {"name": node.name, "shape": {
            "inputs": [{"port": p, "name": c} for p, c in node.inputs],
            "outputs": [{"port": p, "name": c} for p, c in node.outputs]}})
    put(root / "model.json", {"op": "pipeline", "attributes": {"nodes": _value_list("string", [n.name for n in nodes])}})
    put(root / "node.json", {"name": name, "shape": {"inputs": [], "outputs": []}})
    # bundle.json is read with jsonFormat6(Bundle): uid must parse as a UUID, format is "json"; meta is optional.
    put(directory / "bundle.json", {
        "uid": str(uuid.uuid4()),
        "name": name,
        "format": "json",
        "version": BUNDLE_FORMAT_VERSION,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
    })


def bundle_tarball(name: str, nodes: list[BundleNode], workdir: Path) -> Path:
    """model.tar.gz with bundle.json and root/ at the top, as SparkML Serving unpacks it into /opt/ml/model."""
    unpacked = workdir / name
    write_bundle(name, nodes, unpacked)
    tarball = workdir / f"{name}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for entry in sorted(unpacked.iterdir()):
            tar.add(entry, arcname=entry.name)
    return tarball


# --------------------------------------------------------------------------- run

@dataclass(frozen=True)
class BundlePlan:
    """The serving pipelines as bundle nodes, and the training columns computed from the same nodes."""

    preprocess: list[BundleNode]
    postprocess: list[BundleNode] | None  # None: regression (XGBoost's answer is the prediction)
    label_index: list[BundleNode] | None  # None: regression (the label is the number)
    width: int
    slots: list[str]


def plan_bundles(spark, spec, label_values: list[str] | None = None, learned: Learned | None = None) -> BundlePlan:
    """Builds the pipelines (from the spec and what training taught, no data pass) and turns them into
    bundle nodes. `label_values`: the classes in index order (default: the spec's listed values).

    Raises UnsupportedStage for a stage the writer does not know: run() calls this before it writes anything.
    """
    from pyspark.ml import PipelineModel

    layout = _as_layout(spec)
    learned = learned or Learned()
    feature_names = [c.name for c in layout.features]
    preprocess = build_preprocess_model(spark, layout, learned=learned)
    pre_nodes, pre_shapes = bundle_nodes(preprocess, feature_names)
    post_nodes = label_nodes = None
    if layout.classification:
        labels = list(label_values if label_values is not None else layout.label.values)
        post_nodes, _ = bundle_nodes(build_postprocess_model(layout, labels), [POSTPROCESS_INPUT])
        label_nodes, _ = bundle_nodes(PipelineModel(stages=[build_label_indexer(layout, labels)]), [layout.label.name])
    width = pre_shapes[FEATURES_COL].size
    slots = feature_slots(layout, learned)
    # The manifest documents the vector slot by slot (feature_slots).
    if width != len(slots):
        raise RuntimeError(f"feature vector width {width} differs from the {len(slots)} slots the spec describes")
    return BundlePlan(pre_nodes, post_nodes, label_nodes, width, slots)


def natural_order(values) -> list[str]:
    """Learned classes in index order: by value when every class is a number, else by text."""
    values = list(values)
    if all(re.fullmatch(NUMBER_PATTERN, v) for v in values):
        return sorted(values, key=lambda v: (float(v), v))
    return sorted(values)


def resolve_labels(layout: Layout, label_counts: dict[str, int], input_uri: str) -> list[str] | None:
    """The classes in index order (None for regression); refuses data that contradicts the spec."""
    label = layout.label
    if not layout.classification:
        return None
    if label.values is not None:
        return list(label.values)
    values = natural_order(label_counts)

    def refuse(text: str):
        raise InvalidInputData(f"Input data rejected, nothing was trained ({input_uri}): {text}.",
                               [{"kind": "label_classes", "count": len(values), "lines": [], "message": text}])

    if len(values) < 2:
        refuse(f"the {label.name!r} label has a single value ({', '.join(values)}): a classifier needs two or more")
    if len(values) > MAX_LEARNED_CLASSES:
        refuse(f"the {label.name!r} label has {len(values)} distinct values, more than {MAX_LEARNED_CLASSES} "
               "classes: list them in the spec if that many classes are meant, or make the label numeric "
               "(regression)")
    if len(values) != 2 and layout.quality_gate["metric"] == "roc_auc":
        refuse(f"the quality gate's metric roc_auc needs two classes, but the {label.name!r} label has "
               f"{len(values)} ({', '.join(values[:10])}{', ...' if len(values) > 10 else ''})")
    if len(values) != 2 and layout.binary_threshold_given:
        refuse(f"binary_threshold applies to two classes, but the {label.name!r} label has {len(values)}")
    return values


def fit_learned(spark, layout: Layout, train, pool, input_uri: str) -> Learned:
    """Learned categories and imputer surrogates from the training split (`train`: its rows with the
    cached values). One aggregation per kind, run at once; nothing when the spec lists every value
    and has no numeric feature."""
    from pyspark.ml.feature import Imputer
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.utils import IllegalArgumentException

    learned_columns = [c for c in layout.features if c.learned]
    numeric = [c for c in layout.features if c.type == "numeric"]

    def categories():
        if not learned_columns:
            return {}
        pairs = F.array(*[F.struct(F.lit(i).alias("c"), F.col(index_name(c.name)).alias("v"))
                          for i, c in enumerate(learned_columns)])
        counts = (train.select(F.explode(pairs).alias("e")).select("e.c", "e.v").filter(F.col("v").isNotNull())
                  .groupBy("c", "v").agg(F.count(F.lit(1)).alias("n")))
        ranked = counts.select(
            "c", "v", "n", F.count(F.lit(1)).over(Window.partitionBy("c")).alias("distinct"),
            F.row_number().over(Window.partitionBy("c").orderBy(F.desc("n"), "v")).alias("rank"))
        rows = ranked.filter(F.col("rank") <= MAX_LEARNED_VALUES + 1).collect()
        found = {}
        for r in sorted(rows, key=lambda r: (r.c, r.rank)):
            found.setdefault(r.c, []).append((r.v, r.distinct))
        result = {}
        for i, c in enumerate(learned_columns):
            seen = found.get(i, [])
            if not seen:
                raise InvalidInputData(
                    f"Input data rejected, nothing was trained ({input_uri}): column {c.name!r} has no value in the "
                    "training split (every cell is missing): nothing to learn its categories from.",
                    [{"kind": "learned_values", "count": 0, "lines": [], "message": f"{c.name}: no values"}])
            if seen[0][1] > MAX_LEARNED_VALUES:
                raise InvalidInputData(
                    f"Input data rejected, nothing was trained ({input_uri}): column {c.name!r} has {seen[0][1]} "
                    f"distinct values in the training split, more than the {MAX_LEARNED_VALUES} a learned "
                    "categorical column may have (it looks like an identifier or free text): declare it "
                    "\"type\": \"ignore\", or list the values that matter.",
                    [{"kind": "learned_values", "count": seen[0][1], "lines": [], "message": f"{c.name}: too many"}])
            values = [v for v, _ in seen]
            result[c.name] = (values[:c.max_categories], values[c.max_categories:])
        return result

    def surrogates(strategy: str):
        group = [c for c in numeric if c.impute == strategy]
        if not group:
            return {}
        imputer = Imputer(strategy=strategy, inputCols=[index_name(c.name) for c in group],
                          outputCols=[imputed_col(c.name) for c in group])
        try:
            [row] = imputer.fit(train.select(*[index_name(c.name) for c in group])).surrogateDF.collect()
        except IllegalArgumentException as exc:
            raise InvalidInputData(
                f"Input data rejected, nothing was trained ({input_uri}): a numeric column has no number in the "
                f"training split, nothing to impute from ({str(exc).replace('__value', '')}).",
                [{"kind": "impute", "count": 0, "lines": [], "message": str(exc)}]) from None
        return {c.name: float(row[index_name(c.name)]) for c in group}

    from concurrent.futures import wait

    # One Spark job each, at once: on small inputs most of a job's time is the driver planning it.
    jobs = [pool.submit(categories)] + [pool.submit(surrogates, strategy) for strategy in IMPUTE_STRATEGIES]
    wait(jobs)
    found = {}
    for job in jobs[1:]:
        found.update(job.result())
    return Learned(jobs[0].result(), found)


def run(spark, options: JobOptions) -> dict:
    """Validate, split, fit, write. Returns the manifest (already written last under the run prefix).

    Spark runs jobs submitted from several threads at once. Building the pipelines (Python and
    py4j calls, no Spark job) overlaps the validation pass when the spec alone defines them, and the
    three split writes run together: on small inputs most of a Spark job's time is the driver
    planning it, which then overlaps another job's tasks. Nothing is written before both the
    validation and the bundle plan succeeded, and a failure waits for every write to stop before the
    run's files are removed.
    """
    started = time.monotonic()
    layout = parse_spec(options.spec)
    store = make_store(options.output)
    # HotSpot does not compile a method over 8000 bytes of bytecode (DontCompileHugeMethods), and the
    # whole-stage code parsing a wide file (many columns) grows past that and then runs interpreted.
    # At this limit Spark compiles such a stage per expression instead, in smaller methods, as its
    # docs suggest for HotSpot (spark.sql.codegen.hugeMethodLimit). Measured: validating 1M rows of
    # 13 columns (datasets/diabetes.json) took 66 s interpreted and 41-47 s this way; car's stage
    # (7,786 bytes) is below the limit and unaffected.
    previous_limit = spark.conf.get(HUGE_METHOD_LIMIT, None) if spark is not None else None
    if spark is not None:
        spark.conf.set(HUGE_METHOD_LIMIT, "8000")
    try:
        return _run(spark, options, layout, store, started)
    finally:
        if spark is not None:
            if previous_limit is None:
                spark.conf.unset(HUGE_METHOD_LIMIT)
            else:
                spark.conf.set(HUGE_METHOD_LIMIT, previous_limit)


HUGE_METHOD_LIMIT = "spark.sql.codegen.hugeMethodLimit"


def _run(spark, options: JobOptions, layout: Layout, store, started: float) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="preprocess") as pool:
        early = None
        if not layout.data_dependent and (layout.label.values is not None or not layout.classification):
            early = pool.submit(plan_bundles, spark, layout)
        store.begin()
        try:
            manifest = _build(spark, options, layout, store, early, pool, started)
            store.commit(manifest)
        except BaseException:
            store.abort()
            raise
    LOG.info("run %s: wrote %s", options.run_id, store.uri("manifest.json"))
    return manifest


# Up to this many learned values, a learned column's position is a chain of comparisons like a
# listed column's (value_index); beyond it a broadcast hash join, whose cost does not grow with the list.
JOIN_ABOVE_VALUES = 64


def _learned_positions(spark, frame, layout: Layout, learned: Learned):
    """`frame` with the StringIndexer position (null: never seen in training) of each learned
    categorical feature with more than JOIN_ABOVE_VALUES values as `<name>__position`, by a
    broadcast join with the (value, position) list."""
    from pyspark.sql import functions as F

    for c in layout.features:
        if not c.learned or len(indexer_labels(c, learned)[0]) <= JOIN_ABOVE_VALUES:
            continue
        labels, _ = indexer_labels(c, learned)
        key = f"{c.name}__key"
        lookup = spark.createDataFrame([(v, i) for i, v in enumerate(labels)], f"`{key}` string, `{c.name}__position` int")
        frame = frame.join(F.broadcast(lookup), F.col(index_name(c.name)) == F.col(key), "left").drop(key)
    return frame


def _build(spark, options: JobOptions, layout: Layout, store, early, pool, started: float) -> dict:
    """`early`: the future of plan_bundles when the spec alone defines the pipelines, else None;
    `pool`: where the statistics and the split writes run."""
    from concurrent.futures import wait
    from pyspark.sql import functions as F

    label = layout.label
    features = layout.features
    feature_names = [c.name for c in features]
    # The manifest is the only success marker: no _SUCCESS files next to the data.
    spark.conf.set("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")

    try:
        valid = validate(spark, layout, options.input, options.seed)
    finally:
        if early is not None:
            wait([early])  # no Spark call of this run may outlive it
    try:
        label_counts = valid.label_counts
        label_values = resolve_labels(layout, label_counts, options.input)
        problem_type = layout.problem_type(label_values)
        LOG.info("validated %d rows in %.1fs: %s", sum(label_counts.values()), time.monotonic() - started,
                 label_counts if layout.classification else "regression")
        sizes = split_counts(label_counts)
        # Cheap to recompute for each use: it reads the cached lines and ranks only boundary buckets.
        split_rows = assign_split(valid, layout, sizes)
        learned = Learned()
        if early is not None:
            plan = early.result()  # UnsupportedStage surfaces here, before anything is written
        else:
            if layout.data_dependent:
                learned = fit_learned(spark, layout, split_rows.filter(F.col("split") == "train"), pool, options.input)
            plan = plan_bundles(spark, layout, label_values, learned)
        LOG.info("pipelines planned in %.1fs", time.monotonic() - started)

        rows = _learned_positions(spark, split_rows, layout, learned)
        indexed = {}
        sources = {}
        for c in layout.used:
            if c.type == "numeric":
                sources[c.name] = F.col(index_name(c.name))
            elif c.values is not None:
                indexed[c.name] = (F.col(index_name(c.name)), list(c.values))
            elif c is not label:
                labels = indexer_labels(c, learned)[0]
                position = (value_index(F.col(index_name(c.name)), labels) if len(labels) <= JOIN_ABOVE_VALUES
                            else F.col(f"{c.name}__position"))
                indexed[c.name] = (position, labels)
        if layout.classification:
            if label.values is None:
                indexed[label.name] = (value_index(F.col(index_name(label.name)), label_values), label_values)
            [label_column] = bundle_columns(plan.label_index, [label.name], LABEL_INDEX_COL, indexed)
        else:
            label_column = F.col(index_name(label.name))
        slots = bundle_columns(plan.preprocess, feature_names, FEATURES_COL, indexed, sources)
        # One-hot values are exactly 0 or 1: written as integers, which XGBoost reads as the same
        # floats the SparkML container sends ("1.0"), in half the bytes and a quarter less time.
        training_columns = [label_column, *slots]
        outputs = {"train": training_columns, "validation": training_columns,
                   "test": [F.col(n) for n in feature_names] + [F.col(label.name)]}
        writes = [pool.submit(rows.filter(F.col("split") == name).select(*selected).write.mode("overwrite").csv,
                              store.spark_uri(f"data/{name}/")) for name, selected in outputs.items()]
        wait(writes)
        for write in writes:
            write.result()
        LOG.info("wrote splits in %.1fs", time.monotonic() - started)

        schemas = sparkml_schemas(layout)
        with tempfile.TemporaryDirectory(prefix="mleap-bundles-") as tmp:
            workdir = Path(tmp)
            store.put_file("model/preprocess/model.tar.gz", str(bundle_tarball("preprocess", plan.preprocess, workdir)))
            if plan.postprocess is not None:
                store.put_file("model/postprocess/model.tar.gz",
                               str(bundle_tarball("postprocess", plan.postprocess, workdir)))
        store.put_json("model/preprocess/schema.json", schemas["preprocess"])
        if schemas["postprocess"] is not None:
            store.put_json("model/postprocess/schema.json", schemas["postprocess"])
    finally:
        valid.release()

    split_sizes = {name: sum(s[name] for s in sizes.values()) for name in SPLIT_FRACTIONS}
    classification = layout.classification
    return {
        "run_id": options.run_id,
        "dataset": layout.name,
        "input_uri": options.input,
        "spec_uri": options.spec_source or None,
        "spec": layout.spec,
        "problem_type": problem_type,
        "label_name": label.name,
        "label_values": label_values,
        "num_class": len(label_values) if classification else None,
        "binary_threshold": layout.binary_threshold if problem_type == "binary" else None,
        "feature_names": feature_names,
        "feature_types": {c.name: c.type for c in features},
        "feature_width": plan.width,
        "feature_slots": plan.slots,
        "learned": learned.to_json(layout),
        "missing_cells": valid.missing_cells,
        "quality_gate": dict(layout.quality_gate),
        "rows": {"total": sum(label_counts.values()), **split_sizes},
        "rows_by_label": ({value: {"total": label_counts[value], **sizes[value]} for value in label_values}
                          if classification else None),
        "uris": {
            "train": store.uri("data/train/"),
            "validation": store.uri("data/validation/"),
            "test": store.uri("data/test/"),
            "preprocess_model": store.uri("model/preprocess/model.tar.gz"),
            "preprocess_schema": store.uri("model/preprocess/schema.json"),
            "postprocess_model": store.uri("model/postprocess/model.tar.gz") if classification else None,
            "postprocess_schema": store.uri("model/postprocess/schema.json") if classification else None,
            "training_output": store.uri("training/"),
            "manifest": store.uri("manifest.json"),
        },
        "schemas": schemas,
        "versions": {
            "spark": spark.version,
            # The bundle format written (what MLeap runtime 0.20.0 reads), by this script's own writer.
            "mleap": BUNDLE_FORMAT_VERSION,
            "mleap_serving_runtime": MLEAP_SERVING_RUNTIME,
            "python": platform.python_version(),
        },
        "seed": options.seed,
        "split": dict(SPLIT_FRACTIONS),
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_options(list(sys.argv[1:] if argv is None else argv))
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(f"preprocess-{options.run_id}").getOrCreate()
    manifest = run(spark, options)
    print(json.dumps({"manifest": manifest["uris"]["manifest"], "rows": manifest["rows"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
