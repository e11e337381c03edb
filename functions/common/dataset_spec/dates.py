"""A date column's text forms, as regular expressions every reader of them shares: the spec draft
(which form a column uses), the Glue job's check (which cells are dates) and the bundle (which
turns a date into its parts with MLeap's regex_indexer, whose patterns are Java regexes matched
anywhere in the text: each here is anchored with ^ and uses only syntax Java, Python and Spark
read alike).

Forms (the spec's "format"):
- iso: year first, 2012-01-31 or 2012/01/31, two-digit month and day; a time may follow after
  "T" or a space (2012-01-31T08:00:00, 2012-01-31 08:00);
- us: month first, 1/31/2012 or 01/31/2012;
- eu: day first, 31/1/2012, 31.01.2012 or 31-01-2012.
The year has four digits. A date's parts are its year, month (1-12), day of the week (1 = Sunday
... 7 = Saturday, as Spark's dayofweek) and day of the year (1-366).
"""
from __future__ import annotations

DATE_PARTS = ("year", "month", "day_of_week", "day_of_year")

_MONTH2 = "(0[1-9]|1[0-2])"
_DAY2 = "(0[1-9]|[12][0-9]|3[01])"
_MONTH1 = "(0?[1-9]|1[0-2])"
_DAY1 = "(0?[1-9]|[12][0-9]|3[01])"
_END = "($|[T ])"


def full_pattern(date_format: str) -> str:
    """The whole date (a time may follow): what the Glue job accepts as a date in that form."""
    if date_format == "iso":
        return f"^[0-9]{{4}}[-/]{_MONTH2}[-/]{_DAY2}{_END}"
    if date_format == "us":
        return f"^{_MONTH1}/{_DAY1}/[0-9]{{4}}{_END}"
    if date_format == "eu":
        return f"^{_DAY1}[./-]{_MONTH1}[./-][0-9]{{4}}{_END}"
    raise ValueError(f"unknown date format {date_format!r}")


def _one_or_two(value: int) -> str:
    """A month or day of one or two digits, the leading zero optional (us and eu forms)."""
    return f"0?{value}" if value < 10 else str(value)


def part_patterns(date_format: str) -> dict[str, list[tuple[str, int]]]:
    """For each field of the date, (pattern, value) pairs: the first pattern a text matches gives the
    field's value. century: the year's first two digits; year_in_century: its last two."""
    two = [f"{v:02d}" for v in range(100)]
    if date_format == "iso":
        year = "^"
        month = [(f"^[0-9]{{4}}[-/]{m:02d}", m) for m in range(1, 13)]
        day = [(f"^[0-9]{{4}}[-/][0-9]{{2}}[-/]{d:02d}", d) for d in range(1, 32)]
    elif date_format == "us":
        year = "^[0-9]{1,2}/[0-9]{1,2}/"
        month = [(f"^{_one_or_two(m)}/", m) for m in range(1, 13)]
        day = [(f"^[0-9]{{1,2}}/{_one_or_two(d)}/", d) for d in range(1, 32)]
    elif date_format == "eu":
        year = "^[0-9]{1,2}[./-][0-9]{1,2}[./-]"
        day = [(f"^{_one_or_two(d)}[./-]", d) for d in range(1, 32)]
        month = [(f"^[0-9]{{1,2}}[./-]{_one_or_two(m)}[./-]", m) for m in range(1, 13)]
    else:
        raise ValueError(f"unknown date format {date_format!r}")
    return {
        "century": [(f"{year}{c}", i) for i, c in enumerate(two)],
        "year_in_century": [(f"{year}[0-9]{{2}}{y}", i) for i, y in enumerate(two)],
        "month": month,
        "day": day,
    }


def draft_format(values: list[str]) -> str | None:
    """The form every value of a column is written in, or None when none fits all of them or two do
    and nothing tells them apart (every day and month 12 or less in a day/month/year column)."""
    import re

    fits = [f for f in ("iso", "us", "eu") if values and all(re.search(full_pattern(f), v) for v in values)]
    if fits == ["iso"] or fits == ["us"] or fits == ["eu"]:
        return fits[0]
    if set(fits) == {"us", "eu"}:
        # Both read d/m/yyyy: a first field over 12 is a day, a second over 12 is a day too.
        firsts = {int(re.split(r"[./-]", v)[0]) for v in values}
        seconds = {int(re.split(r"[./-]", v)[1]) for v in values}
        if max(firsts) > 12 >= max(seconds):
            return "eu"
        if max(seconds) > 12 >= max(firsts):
            return "us"
    return None


def is_ambiguous_date(values: list[str]) -> bool:
    """Every value is a date both month first and day first, and none has a part over 12."""
    import re

    return bool(values) and draft_format(values) is None and all(
        re.search(full_pattern("us"), v) and re.search(full_pattern("eu"), v) for v in values)


def python_parts(text: str, date_format: str) -> tuple[float, float, float, float] | None:
    """The parts by Python's calendar (datetime), None for a text that is not a date in that form or
    not a day of the calendar: what spec draft's quick model reads."""
    import datetime
    import re

    if not re.search(full_pattern(date_format), text):
        return None
    head = re.split("[T ]", text)[0]
    numbers = [int(v) for v in re.split("[-/.]", head)]
    year, month, day = (numbers if date_format == "iso" else
                        (numbers[2], numbers[0], numbers[1]) if date_format == "us" else (numbers[2], numbers[1], numbers[0]))
    try:
        date = datetime.date(year, month, day)
    except ValueError:
        return None
    return (float(date.year), float(date.month), float(date.isoweekday() % 7 + 1), float(date.timetuple().tm_yday))
