"""The input as Spark reads it: every line tagged where it came from, split into fields, and
classified (a good row, a blank line, the header, or its first problem), with each used column's
value parsed once and cached in the smallest form (index_name). JVM DataFrame expressions only, no
Python UDFs (see preprocessing.validate, "How validation scales")."""
from __future__ import annotations

from pathlib import Path

from dataset_spec import NUMBER_PATTERN, ColumnSpec, Layout
from preprocessing.dates import spark_parts
from preprocessing.errors import InvalidInputData

# A comma followed by an even number of double quotes up to the end of the line
# is outside any quoted field.
_QUOTE_AWARE_COMMA = ',(?=(?:[^"]*"[^"]*")*[^"]*$)'
# Malformed UTF-8 bytes become U+FFFD when the JVM decodes the line for a regex.
_UNDECODABLE = "\ufffd"


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
         "label_number", "feature_value", "numeric_value", "date_value")


def index_name(column: str) -> str:
    """The cached form of a column's value: its position in the listed values (categorical with
    values), the text (learned categorical or date), the number (numeric); null when the cell is missing."""
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
    if column.type == "date":
        # The text, when it is a day of the calendar in the column's form (the bundle reads the same
        # text; 2013-02-30 has the form but no day, and is refused like a word in a numeric column).
        return F.when(~missing & spark_parts(col, column.date_format)[0].isNotNull(), col)
    return F.when(~missing, parse_number(col))


def allows_missing(column: ColumnSpec, layout: Layout) -> bool:
    return column is not layout.label and (column.type in ("numeric", "date") or column.allow_missing)


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
    for position, name in enumerate(columns):
        matches = F.lower(F.col(name)) == name.lower()
        if position == 0 and layout.columns[0].type == "ignore":
            # R's write.csv and pandas' to_csv write row names under an empty first header cell.
            matches = matches | (F.trim(F.col(name)) == "")
        is_header = is_header & matches
    parsed = parsed.select("*", *[cached_value(F.col(c.name), c).alias(index_name(c.name)) for c in used])
    value = {c.name: F.col(index_name(c.name)) for c in used}
    label = layout.label

    # A missing cell has a null cached value (listed values exclude the markers: parse_spec), so the
    # marker comparisons run only for the rare cells without a value: And/Or short-circuit.
    missing_refused = F.lit(False)
    for c in used:
        if not allows_missing(c, layout):
            missing_refused = missing_refused | (value[c.name].isNull() & is_missing(F.col(c.name), c))
    listed_ok = F.lit(True)
    numbers_ok = F.lit(True)
    dates_ok = F.lit(True)
    for c in layout.features:
        if c.type == "categorical" and c.values is not None:
            listed_ok = listed_ok & (value[c.name].isNotNull() | is_missing(F.col(c.name), c))
        elif c.type == "numeric":
            numbers_ok = numbers_ok & (is_number(value[c.name]) | is_missing(F.col(c.name), c))
        elif c.type == "date":
            dates_ok = dates_ok & (value[c.name].isNotNull() | is_missing(F.col(c.name), c))
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
            .when(~dates_ok, KINDS.index("date_value"))
            .otherwise(KINDS.index("row")))
    return parsed.select("file", "part", "pos", kind.cast("tinyint").alias("kind"), "n_fields", *columns,
                         *[index_name(c.name) for c in used])
