"""Values shown to a person (an email line, a page) as one visible line.

Data such as an S3 key may hold any character: a newline or carriage return
would start a line of its own in a plain-text email (a fake "Approve:" link),
and bidi overrides or zero-width characters change what a reader sees. Those
characters become visible escapes (`\\x0a`, `\\u202e`), so the value stays
recognisable and can never fake the text around it.
"""
from __future__ import annotations

import unicodedata

# Control (Cc: C0, DEL, C1 incl. NEL), format (Cf: bidi controls, zero-width
# characters), line and paragraph separators (Zl, Zp), lone surrogates (Cs,
# which UTF-8 cannot even encode).
_NEUTRALISED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value) -> str:
    """`value` as text in which every control, format or line-separator
    character is replaced by a visible escape."""
    text = "" if value is None else str(value)
    return "".join(_escape(c) if unicodedata.category(c) in _NEUTRALISED_CATEGORIES else c for c in text)


def printable_tree(value):
    """`printable` applied to every string (and dict key) in a JSON-like value;
    numbers, booleans and None stay as they are."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(key): printable_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable_tree(item) for item in value]
    return value
