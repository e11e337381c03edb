"""Reading a run's local artifacts (the layout in docs/architecture.md): the
split CSVs Spark writes as part files, and the model archives."""
from __future__ import annotations

import csv
import tarfile
from pathlib import Path


def read_csv_parts(directory: Path) -> list[list[str]]:
    """Every non-blank row of a Spark CSV output directory's part files, in part order."""
    rows = []
    for part in sorted(Path(directory).glob("part-*.csv")):
        with open(part, newline="", encoding="utf-8") as handle:
            rows.extend(row for row in csv.reader(handle) if row)
    return rows


def unpack(tarball: Path, target: Path) -> Path:
    """Extracts a model.tar.gz into `target` (refusing members outside it) and returns `target`."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(target, filter="data")
    return target
