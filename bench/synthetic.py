"""Synthetic training data drawn from a dataset spec: every feature value and the
label picked uniformly from the spec's own value lists, so the Glue job accepts
every row and nothing here names the car columns."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def synthetic_columns(spec: dict, rows: int, seed: int = 7) -> list[np.ndarray]:
    """One array of strings per spec column (features in order, then the label)."""
    rng = np.random.default_rng(seed)
    value_lists = [f["values"] for f in spec["features"]] + [spec["label"]["values"]]
    return [np.asarray(values, dtype=object)[rng.integers(0, len(values), size=rows)] for values in value_lists]


def write_synthetic_csv(spec: dict, rows: int, path: Path, seed: int = 7, chunk_rows: int = 250_000) -> Path:
    """`rows` lines in the input format of the Glue job (no header, comma-separated)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as out:
        for start in range(0, rows, chunk_rows):
            count = min(chunk_rows, rows - start)
            columns = synthetic_columns(spec, count, seed + start)
            lines = columns[0]
            for column in columns[1:]:
                lines = lines + "," + column
            out.write("\n".join(lines.tolist()))
            out.write("\n")
    return path
