"""Synthetic training data drawn from a dataset spec, so the Glue job accepts every row and
nothing here names a column: a listed categorical takes its spec's values uniformly; a learned
one a made-up vocabulary with skewed frequencies (some values rare enough for "other"); a numeric
column normal numbers; features that may be missing are empty in about 5% of the rows."""
from __future__ import annotations

from pathlib import Path

import numpy as np

MISSING_SHARE = 0.05
LEARNED_CLASSES = ("class_a", "class_b", "class_c")


def _column(rng, column: dict, is_label: bool, rows: int) -> np.ndarray:
    kind = column["type"]
    if kind == "categorical" and "values" in column:
        values = np.asarray(column["values"], dtype=object)[rng.integers(0, len(column["values"]), size=rows)]
    elif kind == "categorical":
        vocabulary = (list(LEARNED_CLASSES) if is_label else
                      [f"{column['name']}_{k}" for k in range(2 * column.get("max_categories", 20) + 4)])
        weights = 1.0 / np.arange(1, len(vocabulary) + 1)
        values = np.asarray(vocabulary, dtype=object)[rng.choice(len(vocabulary), size=rows, p=weights / weights.sum())]
    elif kind == "numeric":
        values = np.round(rng.normal(50.0, 15.0, size=rows), 3).astype(str).astype(object)
    else:
        values = np.char.add("id", np.arange(rows).astype(str)).astype(object)
    if not is_label and (kind == "numeric" or column.get("allow_missing")):
        values[rng.random(rows) < MISSING_SHARE] = ""
    return values


def synthetic_columns(spec: dict, rows: int, seed: int = 7) -> list[np.ndarray]:
    """One array of strings per column of the file, in the spec's order."""
    rng = np.random.default_rng(seed)
    return [_column(rng, column, column["name"] == spec["label"], rows) for column in spec["columns"]]


def write_synthetic_csv(spec: dict, rows: int, path: Path, seed: int = 7, chunk_rows: int = 250_000) -> Path:
    """`rows` lines in the input format of the Glue job (comma-separated; the column names first
    when the spec says the file has a header)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as out:
        if spec.get("header") == "yes":
            out.write(",".join(c["name"] for c in spec["columns"]) + "\n")
        for start in range(0, rows, chunk_rows):
            count = min(chunk_rows, rows - start)
            columns = synthetic_columns(spec, count, seed + start)
            lines = columns[0]
            for column in columns[1:]:
                lines = lines + "," + column
            out.write("\n".join(lines.tolist()))
            out.write("\n")
    return path
