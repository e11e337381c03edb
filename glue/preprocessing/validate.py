"""Validation: the input checked against the spec, whole, before anything is fitted or written.

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
class (preprocessing.labels), a learned categorical with more than MAX_LEARNED_VALUES
values (preprocessing.features). The message is the `InvalidInputData` text, which on
Glue becomes the job run's ErrorMessage and so the cause shown by Step Functions.

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
"""
from __future__ import annotations

import csv
import urllib.parse
from dataclasses import dataclass

from dataset_spec import ColumnSpec, Layout
from preprocessing.dates import spark_parts
from preprocessing.errors import InvalidInputData
from preprocessing.lines import (KINDS, allows_missing, classify, index_name, is_missing, is_number, parse_number,
                                 read_lines)
from preprocessing.split import SPLIT_BUCKETS

EXAMPLES_PER_PROBLEM = 5


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
                           for c in layout.used if not allows_missing(c, layout)], F.lit(""))
    listed = [c for c in layout.features if c.type == "categorical" and c.values is not None]
    numeric = [c for c in layout.features if c.type == "numeric"]
    bad_feature = F.coalesce(*[
        F.when(~F.col(c.name).isin(list(c.values)) & ~is_missing(F.col(c.name), c), _shown(c.name, F.col(c.name)))
        for c in listed], F.lit(""))
    bad_number = F.coalesce(*[
        F.when(~is_number(parse_number(F.col(c.name))) & ~is_missing(F.col(c.name), c), _shown(c.name, F.col(c.name)))
        for c in numeric], F.lit(""))
    dates = [c for c in layout.features if c.type == "date"]
    bad_date = F.coalesce(*[
        F.when(spark_parts(F.col(c.name), c.date_format)[0].isNull() & ~is_missing(F.col(c.name), c),
               _shown(c.name, F.col(c.name)))
        for c in dates], F.lit("")) if dates else F.lit("")
    return (F.when(kind == "field_count", F.concat(F.col("n_fields").cast("string"), F.lit(" fields")))
            .when(kind == "missing_value", missing)
            .when(kind.isin("label_value", "label_number"), F.concat(F.lit("'"), F.col(label.name), F.lit("'")))
            .when(kind == "feature_value", bad_feature)
            .when(kind == "numeric_value", bad_number)
            .when(kind == "date_value", bad_date))


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
    "date_value": lambda layout, n: (f"{n} line(s) have a value that is not a date in a date column's form "
                                     "(format iso: 2012-01-31 or 2012/01/31, a time may follow; us: 1/31/2012; "
                                     "eu: 31/1/2012 or 31.01.2012; a day the calendar has; missing: empty or the "
                                     "column's missing_values)"),
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
    keyed = classified.select(
        "file", "part", "pos", "kind", *[index_name(c.name) for c in used],
    ).persist(StorageLevel.MEMORY_AND_DISK)
    may_be_missing = [c for c in layout.features if allows_missing(c, layout)]
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
        # A row's place in the split's random order hashes the seed and its line's index in its file
        # (never its content: identical rows, or equal features with different labels, must not move
        # between splits as a block). The index comes from the per-partition counts just collected, so
        # it does not depend on how Spark cut the file into partitions.
        keyed = keyed.withColumn("split_hash", F.when(is_row, F.xxhash64(F.lit(seed), line_index(summary))))
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
        return cached if c.type in ("categorical", "date") else number_text(cached)

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


def line_index(summary: list[dict]):
    """Each line's 0-based index in its file after any header, from `pos` (Spark's id: contiguous within a partition's
    part of a file) and the summary's line counts and first ids per (file, partition)."""
    from pyspark.sql import functions as F

    lines: dict[tuple[str, int], list[int]] = {}
    # A header is a file's first line: rows are counted after it, so adding or removing one keeps the split.
    headed = {row["file"] for row in summary if row["kind"] == "header"}
    for row in summary:
        entry = lines.setdefault((row["file"], row["part"]), [0, row["min_pos"]])
        entry[0] += row["n"]
        entry[1] = min(entry[1], row["min_pos"])
    base = None
    seen_in_file: dict[str, int] = {}
    for (file, part), (n, first_pos) in sorted(lines.items()):
        offset = seen_in_file.get(file, 0) - first_pos - (1 if file in headed else 0)
        seen_in_file[file] = seen_in_file.get(file, 0) + n
        here = (F.col("file") == file) & (F.col("part") == part)
        base = F.when(here, F.lit(offset)) if base is None else base.when(here, F.lit(offset))
    return F.col("pos") + (base if base is not None else F.lit(0))


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


def _gzip_hint(locator, first_line_kind: dict, lines) -> str:
    """Spark reads a file through gzip by its .gz name only: gzip content under another name reads as
    bytes that are not UTF-8. Names the files whose first line starts like gzip (1f 8b)."""
    from pyspark.sql import functions as F

    suspects = [f for f in locator.files if first_line_kind.get(f) == "undecodable"]
    if not suspects:
        return ""
    wanted = F.lit(False)
    for file in suspects:
        wanted = wanted | ((F.col("file") == file) & (F.col("pos") == locator.file_first_pos[file]))
    packed = [locator.file_name(r.file) for r in lines().filter(wanted).select("file", "line").collect()
              if r.line.startswith("\x1f\ufffd")]
    if not packed:
        return ""
    return (f". {', '.join(packed)} {'is' if len(packed) == 1 else 'are'} gzip-compressed: Spark reads a gzip file "
            "through gzip only when its name ends in .gz, so upload it as <name>.gz")


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
                 "label_number", "feature_value", "numeric_value", "date_value"):
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
        message = f"{_PROBLEM_TEXT[kind](layout, count)}: {', '.join(examples)}{more}"
        if kind == "undecodable":
            message += _gzip_hint(locator, first_line_kind, lines)
        problems.append({"kind": kind, "count": count, "lines": examples, "message": message})
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
