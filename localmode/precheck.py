"""What `make local` can refuse about a data file before Spark starts, in the user's own path: an
empty file, a file that is not text (the type it looks like), text that is not UTF-8, a file that
holds only its header row, and first lines whose field count is not the spec's. The Glue job
checks every line again (its messages are the same words); this only saves the wait for a file
that cannot train, and names the user's file rather than its copy in the local bucket.

A gzip file is read through gzip, as Spark reads a .gz file.
"""
from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

from dataset_spec import Layout

HEAD_BYTES = 256 * 1024
FIRST_LINES = 20
GZIP_MAGIC = b"\x1f\x8b"

# Leading bytes of files people upload by mistake, and what to call them.
_MAGIC = [
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one: save the sheet as CSV)"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls: save the sheet as CSV)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"PAR1", "a Parquet file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
]


class DataRefused(ValueError):
    """The data file cannot train: the message names the file and why."""


def _head(path: Path) -> tuple[bytes, bool, bool]:
    """(the first bytes of the text, whether that is all of it, whether the file is gzip)."""
    with open(path, "rb") as handle:
        raw = handle.read(HEAD_BYTES)
        complete = len(raw) < HEAD_BYTES
    if not raw.startswith(GZIP_MAGIC):
        return raw, complete, False
    try:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        text = decompressor.decompress(raw, HEAD_BYTES)
    except zlib.error as exc:
        raise DataRefused(f"{path} starts as a gzip file but cannot be read as one ({exc})") from None
    if complete:
        # The whole file was read: what it unpacks to is all of the text.
        with gzip.open(path, "rb") as handle:
            text = handle.read(HEAD_BYTES)
        complete = len(text) < HEAD_BYTES
    else:
        complete = False
    return text, complete, True


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def binary_kind(head: bytes) -> str | None:
    """What a file that starts with `head` looks like, when it is a known kind of file that is not text."""
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def open_text(path: Path):
    """The file as UTF-8 text (a BOM dropped), through gzip when it is gzip whatever its name, as the
    Glue job reads a .gz file; a known kind of binary file is refused by name."""
    path = Path(path)
    with open(path, "rb") as handle:
        start = handle.read(16)
    if start.startswith(GZIP_MAGIC):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    kind = binary_kind(start)
    if kind is not None:
        raise DataRefused(f"{path} is not a text file: it looks like {kind}")
    return open(path, newline="", encoding="utf-8-sig")


def first_undecodable_line(path: Path) -> int | None:
    """The number of the first line that is not UTF-8 (through gzip when the file is gzip)."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def check_data_file(path: Path, layout: Layout) -> bool:
    """Raises DataRefused for what the first bytes already show; returns whether the file is gzip."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise DataRefused(f"{path} is empty: there are no rows to train on")
    head, complete, compressed = _head(path)
    where = f"{path}" + (" (gzip)" if compressed else "")
    kind = binary_kind(head)
    if kind is not None:
        raise DataRefused(f"{where} is not a text file: it looks like {kind}")
    if b"\x00" in head[:4096]:
        raise DataRefused(f"{where} is not a text file: it holds NUL bytes (binary data, or UTF-16 text: save it as "
                          "UTF-8 CSV)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(head) - 4:
            line = head[:exc.start].count(b"\n") + 1
            raise DataRefused(f"{where}: line {line} is not valid UTF-8 text (save the file as UTF-8)") from None
        text = head[:exc.start].decode("utf-8")  # a character cut at the end of the head
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    if not complete and lines:
        lines = lines[:-1]  # the last line may be cut
    numbered = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise DataRefused(f"{where} holds only blank lines: there are no rows to train on")
    names = [c.name for c in layout.columns]
    first_fields = next(csv.reader([numbered[0][1]]), [])
    is_header = [f.strip().lower() for f in first_fields] == [n.lower() for n in names] or (
        layout.columns[0].type == "ignore" and [f.strip().lower() for f in first_fields[1:]] == [n.lower() for n in names[1:]])
    data_lines = numbered[1:] if layout.header == "yes" or (layout.header == "auto" and is_header) else numbered
    if not data_lines and complete:
        raise DataRefused(f"{where} holds only its header row (line {numbered[0][0]}): there are no rows to train on")
    wrong = []
    for number, line in data_lines[:FIRST_LINES]:
        if line.count('"') % 2:
            break  # a quoted field across lines: the job's own reading decides
        fields = next(csv.reader(io.StringIO(line), skipinitialspace=True), [])
        if len(fields) != len(names):
            wrong.append((number, len(fields)))
    checked = min(FIRST_LINES, len(data_lines))
    if wrong:
        shown = ", ".join(f"line {n} ({k} fields)" for n, k in wrong[:5])
        raise DataRefused(f"{where}: {len(wrong)} of its first {checked} line(s) do not have {len(names)} "
                          f"comma-separated fields ({', '.join(names)}): {shown}. Is this the file for the spec "
                          f"{layout.name!r}?")
    return compressed
