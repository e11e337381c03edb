"""How the JVM pieces (SparkML Serving on Java 8, MLeap, Jackson) turn values
into text and text into values, so the local containers answer byte for byte
what the real ones would: `Double.toString`, `Float.toString`,
`Double.parseDouble`, `Integer.parseInt` and their exception messages."""
from __future__ import annotations

import math
import re
import struct

_INT_RANGES = {
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}

# Java's FloatingDecimal grammar: optional sign, NaN/Infinity, decimal with optional
# exponent and an optional float/double suffix, or a hexadecimal significand with a
# binary exponent. Python's float() differs (accepts "inf", "1_0", rejects "1d").
_JAVA_DECIMAL = re.compile(r"[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fFdD]?)\Z")
_JAVA_HEX = re.compile(r"([+-]?)0[xX]((?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+)[fFdD]?\Z")

_DOUBLE_TEXT_CACHE: dict[float, str] = {}
_DOUBLE_TEXT_CACHE_LIMIT = 4096


class JavaNumberFormatException(ValueError):
    """What `java.lang.NumberFormatException` would carry as its message."""


def _decimal_digits(magnitude: float) -> tuple[str, int]:
    """Shortest round-trip digits d1d2... and the exponent p with value 0.d1d2... x 10^p."""
    text = repr(magnitude)
    mantissa, _, exponent = text.partition("e")
    integer_part, _, fraction_part = mantissa.partition(".")
    digits = integer_part + fraction_part
    point = len(integer_part) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return (stripped.rstrip("0") or "0"), point


def _java_text(value: float, digits_point: tuple[str, int]) -> str:
    digits, point = digits_point
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        if point <= 0:
            body = "0." + "0" * (-point) + digits
        elif point >= len(digits):
            body = digits + "0" * (point - len(digits)) + ".0"
        else:
            body = digits[:point] + "." + digits[point:]
    else:
        body = digits[0] + "." + (digits[1:] or "0") + "E" + str(point - 1)
    return sign + body


def java_double_str(value: float) -> str:
    """`Double.toString(value)`: what Java prints for a double (e.g. 1.0, 1.0E-5, NaN).

    Java 8's algorithm is shortest-digits like Python's repr for all but rare
    values; the layout (plain between 1e-3 and 1e7, else d.dddE<n>) is Java's."""
    if value == 0.0:  # before the cache: 0.0 and -0.0 are one dict key
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    cached = _DOUBLE_TEXT_CACHE.get(value)
    if cached is not None:
        return cached
    if value != value:
        text = "NaN"
    elif value in (math.inf, -math.inf):
        text = "Infinity" if value > 0 else "-Infinity"
    else:
        text = _java_text(value, _decimal_digits(abs(value)))
    if len(_DOUBLE_TEXT_CACHE) < _DOUBLE_TEXT_CACHE_LIMIT:
        _DOUBLE_TEXT_CACHE[value] = text
    return text


class _DoubleTextTable(dict):
    """value -> Double.toString(value), filled on first use: `map(table.__getitem__, values)`
    formats a vector without a Python call per element. 0.0 and -0.0 are one key, so use
    it only for values without negative zeros (what the MLeap ops here produce)."""

    def __missing__(self, value: float) -> str:
        text = java_double_str(value)
        if len(self) < _DOUBLE_TEXT_CACHE_LIMIT and value == value:
            self[value] = text
        return text


DOUBLE_TEXT = _DoubleTextTable()


def to_float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def java_float_str(value: float) -> str:
    """`Float.toString(value)` for a value already rounded to float32."""
    if value != value or value in (math.inf, -math.inf) or value == 0.0:
        return java_double_str(value)
    import numpy  # float32 shortest digits; only needed on this rare path

    shortest = numpy.format_float_positional(numpy.float32(abs(value)), unique=True, trim="-")
    digits = shortest.replace(".", "")
    integer_part = shortest.split(".")[0]
    stripped = digits.lstrip("0")
    point = len(integer_part) - (len(digits) - len(stripped))
    return _java_text(value, ((stripped.rstrip("0") or "0"), point))


_PLAIN_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?\Z")


def parse_java_double(text: str) -> float:
    """`Double.parseDouble(text)` / `new Double(text)`, including its error messages."""
    if _PLAIN_DECIMAL.match(text):  # the common case; Java and Python agree on it
        return float(text)
    trimmed = text.strip(" \t\n\r\x0b\x0c\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f"
                         "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f")
    if not trimmed:
        raise JavaNumberFormatException("empty String")
    if _JAVA_DECIMAL.match(trimmed):
        core = trimmed.rstrip("fFdD") if trimmed[-1] in "fFdD" and "Infinity" not in trimmed else trimmed
        if core.lstrip("+-") == "NaN":
            return math.nan
        if core.lstrip("+-") == "Infinity":
            return -math.inf if core.startswith("-") else math.inf
        return float(core)
    hex_match = _JAVA_HEX.match(trimmed)
    if hex_match:
        value = float.fromhex("0x" + hex_match.group(2))
        return -value if hex_match.group(1) == "-" else value
    raise JavaNumberFormatException(f'For input string: "{trimmed}"')


def parse_java_float(text: str) -> float:
    return to_float32(parse_java_double(text))


def parse_java_integer(text: str, type_name: str) -> int:
    """`Integer.parseInt`/`Long.parseLong`/`Short.parseShort`/`Byte.parseByte` (radix 10)."""
    low, high = _INT_RANGES[type_name]
    if re.fullmatch(r"[+-]?\d+", text or "") is None:
        raise JavaNumberFormatException(f'For input string: "{text}"' if text else "For input string: \"\"")
    value = int(text)
    if not low <= value <= high:
        if type_name in ("byte", "short"):
            raise JavaNumberFormatException(f'Value out of range. Value:"{text}" Radix:10')
        raise JavaNumberFormatException(f'For input string: "{text}"')
    return value


def java_object_str(value) -> str:
    """`String.valueOf(obj)` for what Jackson parses out of JSON (Integer, Double, Boolean, String)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double_str(value)
    if value is None:
        return "null"
    return str(value)


def java_int32(value: float) -> int:
    """Scala's `Double.toInt`: truncation toward zero, NaN to 0, saturating at the int range."""
    if value != value:
        return 0
    if value >= 2**31 - 1:
        return 2**31 - 1
    if value <= -(2**31):
        return -(2**31)
    return int(value)
