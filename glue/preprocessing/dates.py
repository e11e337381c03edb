"""A date feature's parts inside the bundle: year, month, day of the week and day of the year, from
the date's text, with the two MLeap ops that compute them, regex_indexer and math_binary (both in
MLeap runtime 0.20.0: combust/mleap v0.20.0 RegexIndexerOp.scala and MathBinaryOp.scala), and each
op's Spark twin next to its JSON.

regex_indexer gives a field's value as the index of the first pattern the text matches
(dataset_spec.dates.part_patterns: the century, the year in the century, the month, the day) and a
default of 0; math_binary is arithmetic on two columns or a column and a constant. Day of the week
is Sakamoto's method (with floor division as (a - a % b) / b), day of the year the days before the
month plus the day plus one in a leap year from March. A text that is not a date in the column's
form (an empty field included) makes every part NaN (0 / 0), which the Imputer after them fills
in, as it fills a missing number; Spark's twin reads null there (Spark divides by zero to null),
which its Imputer twin fills in too.
"""
from __future__ import annotations

from dataset_spec.dates import DATE_PARTS, full_pattern, part_patterns
from preprocessing.mleap import SCALAR, BundleNode, value_double, value_int, value_list, value_string

# Sakamoto's month offsets, and the days of a common year before each month.
_SAKAMOTO = (0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4)
_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def part_col(column: str, part: str) -> str:
    return f"{column}__{part}"


def part_cols(column: str) -> list[str]:
    return [part_col(column, part) for part in DATE_PARTS]


class _Nodes:
    def __init__(self, column: str):
        self.column = column
        self.nodes: list[BundleNode] = []

    def _name(self, what: str) -> str:
        return f"{self.column}__d_{what}"

    def regex(self, what: str, lookup: list[tuple[str, int]]) -> str:
        out = self._name(what)
        attributes = {"regexes": value_list("string", [p for p, _ in lookup]),
                      "indices": value_list("int", [i for _, i in lookup]),
                      "default_value": value_int(0)}
        self.nodes.append(BundleNode(out, "regex_indexer", attributes, [("input", self.column)], [("output", out)]))
        return out

    def math(self, what: str, operation: str, a: str | float, b: str | float, out: str | None = None) -> str:
        out = out or self._name(what)
        attributes = {"operation": value_string(operation)}
        inputs = []
        if isinstance(a, str):
            inputs.append(("input_a", a))
        else:
            attributes["da"] = value_double(a)
        if isinstance(b, str):
            inputs.append(("input_b", b))
        else:
            attributes["db"] = value_double(b)
        self.nodes.append(BundleNode(out, "math_binary", attributes, inputs, [("output", out)]))
        return out


def date_nodes(column: str, date_format: str) -> list[BundleNode]:
    """The nodes that turn the text column `column` into its parts, `<column>__year` ... (part_cols)."""
    fields = part_patterns(date_format)
    n = _Nodes(column)
    valid = n.regex("valid", [(full_pattern(date_format), 1)])
    century = n.regex("century", fields["century"])
    in_century = n.regex("year_in_century", fields["year_in_century"])
    month = n.regex("month", fields["month"])
    day = n.regex("day", fields["day"])
    early = n.regex("jan_feb", [(p, 1) for p, m in fields["month"] if m <= 2])
    offset = n.regex("sakamoto", [(p, _SAKAMOTO[m - 1]) for p, m in fields["month"]])
    before = n.regex("days_before", [(p, _DAYS_BEFORE[m - 1]) for p, m in fields["month"]])

    # 1 for a date, 0 / 0 = NaN otherwise. A node may not read one column twice (its input schema would
    # hold the field twice: StructType.withField), hence the copy.
    one_or_nan = n.math("one_or_nan", "div", valid, n.math("valid_copy", "mul", valid, 1.0))
    year = n.math("year", "add", n.math("hundreds", "mul", century, 100.0), in_century)

    # Day of the week: the year counted from March, then Sakamoto's sum, mod 7, 1 = Sunday.
    shifted = n.math("shifted_year", "sub", year, early)

    def floor_div(value: str, by: float, what: str) -> str:
        rest = n.math(f"{what}_rem", "rem", value, by)
        return n.math(f"{what}_div", "div", n.math(f"{what}_whole", "sub", value, rest), by)

    total = n.math("sum1", "add", shifted, floor_div(shifted, 4.0, "q4"))
    total = n.math("sum2", "sub", total, floor_div(shifted, 100.0, "q100"))
    total = n.math("sum3", "add", total, floor_div(shifted, 400.0, "q400"))
    total = n.math("sum4", "add", total, offset)
    total = n.math("sum5", "add", total, day)
    weekday = n.math("weekday", "add", n.math("weekday0", "rem", total, 7.0), 1.0)

    # Day of the year: leap = [y % 4 == 0] - [y % 100 == 0] + [y % 400 == 0], with [x == 0] = 1 - min(x, 1).
    def divides(by: float, what: str) -> str:
        return n.math(f"{what}_zero", "sub", 1.0, n.math(f"{what}_min", "min", n.math(f"{what}_r", "rem", year, by), 1.0))

    leap = n.math("leap", "add", n.math("leap1", "sub", divides(4.0, "l4"), divides(100.0, "l100")), divides(400.0, "l400"))
    from_march = n.math("from_march", "sub", 1.0, early)
    day_of_year = n.math("doy", "add", n.math("doy1", "add", before, day), n.math("leap_day", "mul", leap, from_march))

    for part, value in zip(DATE_PARTS, (year, month, weekday, day_of_year)):
        n.math(part, "mul", value, one_or_nan, out=part_col(column, part))
    return n.nodes


def date_shapes(column: str) -> dict:
    return {c: SCALAR for c in part_cols(column)}


def regex_indexer_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    """RegexIndexerModel.apply: the index of the first pattern found in the text, else the default."""
    from pyspark.sql import functions as F

    [source] = columns[node.inputs[0][1]]
    text = source.cast("string")
    patterns = node.attributes["regexes"]["string"]
    indices = node.attributes["indices"]["int"]
    value = F.when(text.rlike(patterns[0]), F.lit(int(indices[0])))
    for pattern, index in zip(patterns[1:], indices[1:]):
        value = value.when(text.rlike(pattern), F.lit(int(index)))
    return {node.outputs[0][1]: [value.otherwise(F.lit(int(node.attributes["default_value"]["int"])))]}


def math_binary_columns(node: BundleNode, columns: dict, indexed: dict) -> dict:
    """MathBinaryModel.apply on doubles (Java's % for rem); a division by zero is null in Spark."""
    from pyspark.sql import functions as F

    ports = dict(node.inputs)
    a = columns[ports["input_a"]][0] if "input_a" in ports else F.lit(node.attributes["da"]["double"])
    b = columns[ports["input_b"]][0] if "input_b" in ports else F.lit(node.attributes["db"]["double"])
    a, b = a.cast("double"), b.cast("double")
    operation = node.attributes["operation"]["string"]
    value = {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / b,
             "rem": lambda: a % b, "min": lambda: F.least(a, b), "max": lambda: F.greatest(a, b)}[operation]()
    return {node.outputs[0][1]: [value]}


# MLeap op name -> its Spark twin, for the nodes this module writes itself (Spark has no stage for them).
WRITTEN_OPS = {"regex_indexer": regex_indexer_columns, "math_binary": math_binary_columns}


def spark_parts(text, date_format: str) -> list:
    """The parts by Spark's own date functions (not the bundle's arithmetic): the reference the
    bundle is checked against. Null for a text that is not a date in that form."""
    from pyspark.sql import functions as F

    valid = text.rlike(full_pattern(date_format))
    if date_format == "iso":
        pieces = F.split(F.substring(text, 1, 10), "[-/]")
        year, month, day = pieces[0], pieces[1], pieces[2]
    else:
        pieces = F.split(F.split(text, "[T ]")[0], "[./-]")
        first, second, year = pieces[0], pieces[1], F.substring(pieces[2], 1, 4)
        month, day = (first, second) if date_format == "us" else (second, first)
    date = F.make_date(year.cast("int"), month.cast("int"), day.cast("int"))
    parts = [F.year(date), F.month(date), F.dayofweek(date), F.dayofyear(date)]
    return [F.when(valid, p.cast("double")) for p in parts]


def twin_parts(column: str, date_format: str, text) -> list:
    """The parts of the text expression `text` as the bundle computes them (its nodes' Spark twins)."""
    columns = {column: [text]}
    for node in date_nodes(column, date_format):
        columns.update(WRITTEN_OPS[node.op](node, columns, {}))
    return [columns[c][0] for c in part_cols(column)]
