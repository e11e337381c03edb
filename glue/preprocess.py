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

Input contract. Columns are the dataset spec's features in order, then its
label (datasets/<name>.json, passed with --spec). Accepted: the UCI file as
published (no header) or one whose first line is the column names (any
letter case); LF, CRLF or
CR line endings; a UTF-8 byte-order mark; fields in double quotes; spaces
around fields; blank lines anywhere (ignored); gzip-compressed files. Refused,
before anything is fitted or written, with the number of offending lines and
the first few line numbers: bytes that are not UTF-8, unbalanced quotes, a
wrong field count, empty fields, a feature or label value the spec does not
list, the column-names line anywhere but line 1, no data rows at all (empty
file, blank lines or a header only). The message is the `InvalidInputData`
text, which on Glue becomes the job run's ErrorMessage and so the cause shown
by Step Functions.

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
per-label counts. The car data's rare classes (good: 69, vgood: 65 rows) still
get about 10 rows each in validation (early stopping) and in the QA test set,
which 80/10/10 would halve. Within each label, rows are ranked by
xxhash64(seed, the row's parsed fields), with the line position breaking ties
between identical rows only. So which rows go where depends on the seed and
the data alone (not on file paths, line endings, quoting or partitioning), and
identical rows land together, keeping duplicates from leaking between train
and test. Ranking does not sort the data: rows are
hashed into 1024 buckets per label, counted, and only the few buckets where a
cut falls are ranked (assign_split).

Feature pipeline (what the SparkML Serving container runs): one StringIndexer
per feature (MLeap 0.20.0 refuses multi-column indexers) with labels fixed to
the spec's value order, so the vector layout is documented by the spec itself;
OneHotEncoder; VectorAssembler -> `features`. Unseen values: the indexers use
handleInvalid="keep", which maps any value not in the spec to one extra index;
the encoder has dropLast=True, and since "keep" makes that extra index the
last category, it is the one dropped: a known value is one 1 in its feature's
block and an unseen value is an all-zero block. The vector width stays the
sum of the spec's value counts, a serving request with a new value gets a
valid vector (XGBoost reads it as "none of the known values") instead of an
HTTP 4xx, and no training column is always zero. Training data itself may not
contain unknown values: they are refused above.

Label: a StringIndexerModel built from the spec's label values (index = the
spec's order; not fitted, so not frequency-dependent); postprocess: an
IndexToString with the same explicit labels, input `label` (double, what
XGBoost multi:softmax returns) -> output `predicted_label` (string).

Outputs, written so that nothing half-written looks like success: locally,
into a temporary sibling directory renamed into place at the end; on S3, Spark
writes the data, boto3 the model files built in a local temp dir, and
manifest.json is written last; a failed run deletes what it wrote under its
run prefix. Spark's _SUCCESS markers are disabled: the manifest is the only
success marker.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

LOG = logging.getLogger("preprocess")

SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
DEFAULT_SEED = 42
# What SageMaker SparkML Serving 3.3 runs; the bundles are checked against it by tests/jvm.
MLEAP_SERVING_RUNTIME = "0.20.0"
FEATURES_COL = "features"
POSTPROCESS_INPUT = "label"
POSTPROCESS_OUTPUT = "predicted_label"
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

def validate_spec(spec: dict) -> None:
    try:
        features = spec["features"]
        label = spec["label"]
        columns = [f["name"] for f in features] + [label["name"]]
        value_lists = [f["values"] for f in features] + [label["values"]]
    except (KeyError, TypeError) as exc:
        raise InvalidSpec(f"dataset spec needs features[].name/values and label.name/values ({exc!r} missing)") from exc
    if not features:
        raise InvalidSpec("dataset spec lists no features")
    # Spark resolves column names case-insensitively.
    if len({c.lower() for c in columns}) != len(columns):
        raise InvalidSpec(f"dataset spec column names are not unique (ignoring case): {columns}")
    clashes = _RESERVED_COLUMNS.intersection(columns) | {c for c in columns if "__" in c}
    if clashes:
        raise InvalidSpec(f"dataset spec column names {sorted(clashes)} clash with the job's own columns")
    for name, values in zip(columns, value_lists):
        if not values or len(set(values)) != len(values):
            raise InvalidSpec(f"column {name!r}: values must be a non-empty list without duplicates")
        bad = [v for v in values if not isinstance(v, str) or not v.strip() or v != v.strip() or any(ch in v for ch in ',"\r\n')]
        if bad:
            raise InvalidSpec(f"column {name!r}: values {bad} must be non-empty strings without commas, quotes, line breaks or outer spaces")


def spec_columns(spec: dict) -> list[str]:
    return [f["name"] for f in spec["features"]] + [spec["label"]["name"]]


def load_spec(source: str) -> dict:
    if source.startswith("s3://"):
        bucket, key = _split_s3(source)
        body = _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        spec = json.loads(body.decode("utf-8"))
    else:
        with open(source, encoding="utf-8") as fh:
            spec = json.load(fh)
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
KINDS = ("row", "blank", "header", "undecodable", "quotes", "field_count", "empty_field", "label_value", "feature_value")


def index_name(column: str) -> str:
    return f"{column}__value"


def value_index(col, values: list[str]):
    """The position of the column's value in the spec's list (tinyint), null for any other value."""
    from pyspark.sql import functions as F

    index = F.when(col == values[0], F.lit(0))
    for i, value in enumerate(values[1:], start=1):
        index = index.when(col == value, F.lit(i))
    return index.cast("tinyint" if len(values) <= 127 else "int")


def classify(lines, spec: dict):
    """One row per input line: file, part, pos, `kind` (the KINDS code of the line's first problem,
    or of "row", "blank", "header"), `n_fields`, the spec's columns (parsed, unquoted, trimmed) and
    each column's value index in the spec (index_name; null when the spec does not list the value)."""
    from pyspark.sql import functions as F

    columns = spec_columns(spec)
    value_lists = [f["values"] for f in spec["features"]] + [spec["label"]["values"]]
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

    cols = [F.col(name) for name in columns]
    is_header = F.lit(True)
    for col, name in zip(cols, columns):
        is_header = is_header & (F.lower(col) == name.lower())
    has_empty = F.lit(False)
    for col in cols:
        has_empty = has_empty | (col == "")
    parsed = parsed.select("*", *[value_index(col, values).alias(index_name(name))
                                  for col, name, values in zip(cols, columns, value_lists)])
    features_ok = F.lit(True)
    for name in columns[:-1]:
        features_ok = features_ok & F.col(index_name(name)).isNotNull()
    kind = (F.when(F.col("length") == 0, KINDS.index("blank"))
            .when(F.col("undecodable"), KINDS.index("undecodable"))
            .when(F.col("odd_quotes"), KINDS.index("quotes"))
            .when(F.col("n_fields") != len(columns), KINDS.index("field_count"))
            .when(is_header, KINDS.index("header"))
            .when(has_empty, KINDS.index("empty_field"))
            .when(F.col(index_name(columns[-1])).isNull(), KINDS.index("label_value"))
            .when(~features_ok, KINDS.index("feature_value"))
            .otherwise(KINDS.index("row")))
    return parsed.select("file", "part", "pos", kind.cast("tinyint").alias("kind"), "n_fields", *columns,
                         *[index_name(name) for name in columns])


def problem_detail(spec: dict):
    """What to show next to an offending line number; computed only for the few lines shown."""
    from pyspark.sql import functions as F

    columns = spec_columns(spec)
    features = spec["features"]
    kind = F.col("kind_name")
    empty = F.concat_ws(", ", *[F.when(F.col(name) == "", F.lit(name)) for name in columns])
    bad_feature = F.coalesce(*[
        F.when(~F.col(f["name"]).isin(f["values"]), F.concat(F.lit(f"{f['name']}='"), F.col(f["name"]), F.lit("'")))
        for f in features
    ])
    return (F.when(kind == "field_count", F.concat(F.col("n_fields").cast("string"), F.lit(" fields")))
            .when(kind == "empty_field", F.concat(F.lit("empty: "), empty))
            .when(kind == "label_value", F.concat(F.lit("'"), F.col(columns[-1]), F.lit("'")))
            .when(kind == "feature_value", bad_feature))


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
            text = f"{urllib.parse.unquote(file.rsplit('/', 1)[-1])}:{text}"
        return text


_PROBLEM_TEXT = {
    "undecodable": lambda spec, n: f"{n} line(s) are not valid UTF-8 text (save the file as UTF-8)",
    "quotes": lambda spec, n: f"{n} line(s) have an unbalanced double quote",
    "field_count": lambda spec, n: (f"{n} line(s) do not have {len(spec_columns(spec))} comma-separated fields "
                                   f"({', '.join(spec_columns(spec))})"),
    "header_misplaced": lambda spec, n: f"{n} line(s) repeat the column names after line 1",
    "empty_field": lambda spec, n: f"{n} line(s) have empty fields",
    "label_value": lambda spec, n: (f"{n} line(s) have a {spec['label']['name']!r} label outside the spec's values "
                                   f"({', '.join(spec['label']['values'])})"),
    "feature_value": lambda spec, n: f"{n} line(s) have feature values the spec does not list",
}


@dataclass
class ValidInput:
    rows: object  # DataFrame: file, pos, split_hash, bucket, value indices (index_name), the spec's columns as strings
    label_counts: dict[str, int]
    bucket_counts: dict[tuple[str, int], int]
    release: object  # drops the cached lines


def validate(spark, spec: dict, input_uri: str, seed: int) -> ValidInput:
    """Raises InvalidInputData before anything is fitted. The input is read and parsed once: what
    the later steps need of each line is cached on the way through (caller: `valid.release()`).

    The cache holds numbers only (position, kind code, split hash, each value's index in the spec):
    building Spark's columnar cache of the parsed strings cost more CPU than parsing them. The
    valid rows' strings are the spec's own values, so `rows` maps the indices back to them; the
    examples of a refused input are found by reading the input again, only on that path.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    columns = spec_columns(spec)
    value_lists = [f["values"] for f in spec["features"]] + [spec["label"]["values"]]
    classified = classify(read_lines(spark, input_uri), spec)
    is_row = F.col("kind") == KINDS.index("row")
    split_hash = F.xxhash64(F.lit(seed), *columns)
    keyed = classified.select(
        "file", "part", "pos", "kind", *[index_name(name) for name in columns],
        F.when(is_row, split_hash).alias("split_hash"),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        bucket = (F.col("split_hash") % SPLIT_BUCKETS + SPLIT_BUCKETS) % SPLIT_BUCKETS
        label = F.col(index_name(columns[-1]))
        # Small whatever the input size: files x partitions x kinds groups.
        summary = [row.asDict() for row in keyed.groupBy("file", "part", "kind")
                   .agg(F.count(F.lit(1)).alias("n"), F.min("pos").alias("min_pos")).collect()]
        for row in summary:
            row["kind"] = KINDS[row["kind"]]
        _raise_for_problems(spec, input_uri, lambda: classify(read_lines(spark, input_uri), spec), summary)
        labels = spec["label"]["values"]
        bucket_counts = {(labels[r.label], r.bucket): r.n for r in keyed.filter(is_row).groupBy(label.alias("label"), bucket.alias("bucket"))
                         .agg(F.count(F.lit(1)).alias("n")).collect()}
    except BaseException:
        keyed.unpersist()
        raise
    label_counts = {value: 0 for value in spec["label"]["values"]}
    for (value, _), n in bucket_counts.items():
        label_counts[value] += n
    rows = keyed.filter(is_row).select(
        "file", "pos", "split_hash", bucket.alias("bucket"), *[index_name(name) for name in columns],
        *[F.element_at(F.array(*[F.lit(v) for v in values]), F.col(index_name(name)).cast("int") + 1).alias(name)
          for name, values in zip(columns, value_lists)])
    return ValidInput(rows, label_counts, bucket_counts, release=keyed.unpersist)


def _raise_for_problems(spec: dict, input_uri: str, classified, summary: list[dict]) -> None:
    """`summary`: line counts per (file, part, kind name, label); `classified()`: the input's lines
    as classify() sees them, to find the first few offending lines when there are any."""
    from pyspark.sql import functions as F

    chunk_counts: dict[tuple[str, int], list[int]] = {}
    kind_counts: dict[str, int] = {}
    header_first_pos: dict[str, int] = {}
    for row in summary:
        chunk = chunk_counts.setdefault((row["file"], row["part"]), [0, row["min_pos"]])
        chunk[0] += row["n"]
        chunk[1] = min(chunk[1], row["min_pos"])
        kind_counts[row["kind"]] = kind_counts.get(row["kind"], 0) + row["n"]
        if row["kind"] == "header":
            header_first_pos[row["file"]] = min(row["min_pos"], header_first_pos.get(row["file"], row["min_pos"]))
    locator = LineLocator([(f, p, c[0], c[1]) for (f, p), c in chunk_counts.items()], input_uri)

    def first_lines(kind: str, limit: int = EXAMPLES_PER_PROBLEM):
        rows = (classified().filter(F.col("kind") == KINDS.index(kind)).orderBy("file", "pos").limit(limit)
                .select("file", "part", "pos", F.lit(kind).alias("kind_name"), "n_fields", *spec_columns(spec))
                .select("file", "part", "pos", problem_detail(spec).alias("detail")).collect())
        return [(r, locator.where(r.file, r.part, r.pos) + (f" ({r.detail})" if r.detail else "")) for r in rows]

    problems = []
    for kind in ("undecodable", "quotes", "field_count", "header_misplaced", "empty_field", "label_value", "feature_value"):
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
                         "message": f"{_PROBLEM_TEXT[kind](spec, count)}: {', '.join(examples)}{more}"})
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


def assign_split(valid: ValidInput, spec: dict, sizes: dict[str, dict[str, int]]):
    """The spec's columns (strings and their value indices) plus `split`.

    Rank order within a label is (bucket, split_hash, file, pos), bucket = split_hash mod
    SPLIT_BUCKETS. A row's split follows from its bucket alone, except in the few boundary
    buckets where a cut falls: only those rows are ranked, so no shuffle of the whole data
    set and no task holding a whole label (a window over each label would be both).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    columns = spec_columns(spec)
    label, bucket = F.col(columns[-1]), F.col("bucket")
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
    carried = [*columns, *[index_name(name) for name in columns]]
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


def onehot_col(name: str) -> str:
    return f"{name}__onehot"


def build_preprocess_model(spark, spec: dict, sample):
    """The serving feature pipeline. `sample`: any DataFrame with the feature columns as strings.

    Every stage is defined by the spec; the OneHotEncoder "fit" only reads the
    indexers' column metadata, so the model does not depend on which rows it sees.
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexerModel, VectorAssembler

    names = [f["name"] for f in spec["features"]]
    indexers = [StringIndexerModel.from_labels(f["values"], inputCol=f["name"], outputCol=index_col(f["name"]),
                                               handleInvalid="keep") for f in spec["features"]]
    encoder = OneHotEncoder(inputCols=[index_col(n) for n in names], outputCols=[onehot_col(n) for n in names],
                            dropLast=True, handleInvalid="error")
    assembler = VectorAssembler(inputCols=[onehot_col(n) for n in names], outputCol=FEATURES_COL)
    return Pipeline(stages=[*indexers, encoder, assembler]).fit(sample)


def build_label_indexer(spec: dict):
    from pyspark.ml.feature import StringIndexerModel

    return StringIndexerModel.from_labels(spec["label"]["values"], inputCol=spec["label"]["name"],
                                          outputCol=LABEL_INDEX_COL, handleInvalid="error")


def build_postprocess_model(spec: dict):
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import IndexToString

    return PipelineModel(stages=[IndexToString(inputCol=POSTPROCESS_INPUT, outputCol=POSTPROCESS_OUTPUT,
                                               labels=list(spec["label"]["values"]))])


def sparkml_schemas(spec: dict) -> dict[str, dict]:
    """The SAGEMAKER_SPARKML_SCHEMA documents of the two serving containers."""
    return {
        "preprocess": {
            "input": [{"name": f["name"], "type": "string"} for f in spec["features"]],
            "output": {"name": FEATURES_COL, "type": "double", "struct": "vector"},
        },
        "postprocess": {
            "input": [{"name": POSTPROCESS_INPUT, "type": "double"}],
            "output": {"name": POSTPROCESS_OUTPUT, "type": "string"},
        },
    }


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


@dataclass(frozen=True)
class BundleOp:
    name: str  # the MLeap op name its nodes carry
    node: object  # (fitted stage, shapes so far) -> (BundleNode, shapes of the columns it adds)
    # (BundleNode, slots so far, indexed) -> slots of the columns it adds; None: serving only
    columns: object = None


# Spark stage class name -> its op.
BUNDLE_OPS = {
    "StringIndexerModel": BundleOp("string_indexer", _string_indexer_node, _string_indexer_columns),
    "OneHotEncoderModel": BundleOp("one_hot_encoder", _one_hot_encoder_node, _one_hot_encoder_columns),
    "VectorAssembler": BundleOp("vector_assembler", _vector_assembler_node, _vector_assembler_columns),
    "IndexToString": BundleOp("reverse_string_indexer", _index_to_string_node),
}


def bundle_columns(nodes: list[BundleNode], inputs: list[str], output: str, indexed: dict | None = None) -> list:
    """The slots of `output` as Spark column expressions over the input columns. `indexed`: input
    column -> (column of each value's position in `labels`, labels), when that is already known."""
    from pyspark.sql import functions as F

    ops = {op.name: op for op in BUNDLE_OPS.values()}
    columns = {name: [F.col(name)] for name in inputs}
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
        nodes.append(node)
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
    """Both serving pipelines as bundle nodes, and the training columns computed from the same nodes."""

    preprocess: list[BundleNode]
    postprocess: list[BundleNode]
    label_index: list[BundleNode]
    width: int


def plan_bundles(spark, spec: dict) -> BundlePlan:
    """Fits the pipelines (from the spec alone, no data pass) and turns them into bundle nodes.

    Raises UnsupportedStage for a stage the writer does not know: run() calls this before it writes anything.
    """
    from pyspark.ml import PipelineModel
    from pyspark.sql.types import StringType, StructField, StructType

    feature_names = [f["name"] for f in spec["features"]]
    # OneHotEncoder's fit reads only the indexers' column metadata: an empty frame is enough.
    empty = spark.createDataFrame([], StructType([StructField(n, StringType()) for n in feature_names]))
    preprocess = build_preprocess_model(spark, spec, empty)
    pre_nodes, pre_shapes = bundle_nodes(preprocess, feature_names)
    post_nodes, _ = bundle_nodes(build_postprocess_model(spec), [POSTPROCESS_INPUT])
    label_nodes, _ = bundle_nodes(PipelineModel(stages=[build_label_indexer(spec)]), [spec["label"]["name"]])
    width = pre_shapes[FEATURES_COL].size
    # The manifest documents the vector as the spec's feature=value slots (feature_slots).
    if width != sum(len(f["values"]) for f in spec["features"]):
        raise RuntimeError(f"feature vector width {width} differs from the spec's {sum(len(f['values']) for f in spec['features'])} values")
    return BundlePlan(pre_nodes, post_nodes, label_nodes, width)


def run(spark, options: JobOptions) -> dict:
    """Validate, split, fit, write. Returns the manifest (already written last under the run prefix).

    Spark runs jobs submitted from several threads at once. Building the pipelines (Python and
    py4j calls, no Spark job) overlaps the validation pass, and the three split writes run
    together: on small inputs most of a Spark job's time is the driver planning it, which then
    overlaps another job's tasks. Nothing is written before both the validation and the bundle
    plan succeeded, and a failure waits for every write to stop before the run's files are removed.
    """
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    validate_spec(options.spec)
    store = make_store(options.output)
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="preprocess") as pool:
        plan = pool.submit(plan_bundles, spark, options.spec)
        store.begin()
        try:
            manifest = _build(spark, options, store, plan, pool, started)
            store.commit(manifest)
        except BaseException:
            store.abort()
            raise
    LOG.info("run %s: wrote %s", options.run_id, store.uri("manifest.json"))
    return manifest


def _build(spark, options: JobOptions, store, planned, pool, started: float) -> dict:
    """`planned`: the future of plan_bundles; `pool`: where the split writes run."""
    from concurrent.futures import wait
    from pyspark.sql import functions as F

    spec = options.spec
    columns = spec_columns(spec)
    feature_names, label_name = columns[:-1], columns[-1]
    # The manifest is the only success marker: no _SUCCESS files next to the data.
    spark.conf.set("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")

    try:
        valid = validate(spark, spec, options.input, options.seed)
    finally:
        wait([planned])  # no Spark call of this run may outlive it
    plan = planned.result()  # UnsupportedStage surfaces here, before anything is written
    label_counts = valid.label_counts
    LOG.info("validated %d rows in %.1fs: %s", sum(label_counts.values()), time.monotonic() - started, label_counts)
    sizes = split_counts(label_counts)
    # Cheap to recompute for each write: it reads the cached lines and ranks only boundary buckets.
    split_rows = assign_split(valid, spec, sizes)
    try:
        indexed = {name: (F.col(index_name(name)), values) for name, values in
                   zip(columns, [f["values"] for f in spec["features"]] + [spec["label"]["values"]])}
        [label_index] = bundle_columns(plan.label_index, [label_name], LABEL_INDEX_COL, indexed)
        features = bundle_columns(plan.preprocess, feature_names, FEATURES_COL, indexed)
        # One-hot values are exactly 0 or 1: written as integers, which XGBoost reads as the same
        # floats the SparkML container sends ("1.0"), in half the bytes and a quarter less time.
        training_columns = [label_index, *features]
        outputs = {"train": training_columns, "validation": training_columns, "test": [F.col(c) for c in columns]}
        writes = [pool.submit(split_rows.filter(F.col("split") == name).select(*selected).write.mode("overwrite").csv,
                              store.spark_uri(f"data/{name}/")) for name, selected in outputs.items()]
        wait(writes)
        for write in writes:
            write.result()
        LOG.info("wrote splits in %.1fs", time.monotonic() - started)

        schemas = sparkml_schemas(spec)
        with tempfile.TemporaryDirectory(prefix="mleap-bundles-") as tmp:
            workdir = Path(tmp)
            store.put_file("model/preprocess/model.tar.gz", str(bundle_tarball("preprocess", plan.preprocess, workdir)))
            store.put_file("model/postprocess/model.tar.gz", str(bundle_tarball("postprocess", plan.postprocess, workdir)))
        store.put_json("model/preprocess/schema.json", schemas["preprocess"])
        store.put_json("model/postprocess/schema.json", schemas["postprocess"])
    finally:
        valid.release()
    width = plan.width

    split_sizes = {name: sum(s[name] for s in sizes.values()) for name in SPLIT_FRACTIONS}
    return {
        "run_id": options.run_id,
        "input_uri": options.input,
        "spec_uri": options.spec_source or None,
        "spec": spec,
        "label_name": label_name,
        "label_values": list(spec["label"]["values"]),
        "feature_names": feature_names,
        "feature_width": width,
        "feature_slots": [f"{f['name']}={v}" for f in spec["features"] for v in f["values"]],
        "num_class": len(spec["label"]["values"]),
        "rows": {"total": sum(label_counts.values()), **split_sizes},
        "rows_by_label": {label: {"total": label_counts[label], **s} for label, s in sizes.items()},
        "uris": {
            "train": store.uri("data/train/"),
            "validation": store.uri("data/validation/"),
            "test": store.uri("data/test/"),
            "preprocess_model": store.uri("model/preprocess/model.tar.gz"),
            "preprocess_schema": store.uri("model/preprocess/schema.json"),
            "postprocess_model": store.uri("model/postprocess/model.tar.gz"),
            "postprocess_schema": store.uri("model/postprocess/schema.json"),
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
