"""docs/real-tables.md is `make real-tables`' output for the tables scripts/real_tables.py builds:
every table is there with the outcome it must have, and QA is within the stated margin of the
baseline. The baseline trains on exactly the input rows outside the run's test split."""
from __future__ import annotations

import re
import sys

import pytest

from localmode import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import real_tables  # noqa: E402


def rows_of_the_results_table() -> dict[str, list[str]]:
    text = (REPO_ROOT / "docs" / "real-tables.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0] in {t.name for t in real_tables.TABLES}:
            rows[cells[0]] = cells
    return rows


def test_every_table_was_run_and_ended_as_it_must():
    rows = rows_of_the_results_table()
    assert list(rows) == [t.name for t in real_tables.TABLES]
    for table in real_tables.TABLES:
        assert rows[table.name][7] == table.expect, rows[table.name]
        if table.expect == "deployed":
            qa, baseline = float(rows[table.name][4].split()[0]), float(rows[table.name][5])
            assert abs(qa - baseline) <= real_tables.MARGIN, rows[table.name]


def test_the_baseline_refuses_a_test_split_that_is_not_the_inputs():
    spec = {"name": "t", "header": "no", "label": "y",
            "columns": [{"name": "x", "type": "numeric"}, {"name": "y", "type": "categorical", "values": ["a", "b"]}]}
    rows = [[str(i), "ab"[i % 2]] for i in range(40)]
    gate = {"metric": "accuracy"}
    assert 0 <= real_tables.baseline(spec, rows, rows[:10], gate, ["a", "b"]) <= 1
    with pytest.raises(AssertionError, match="1 test rows are not in the input file"):
        real_tables.baseline(spec, rows, rows[:9] + [["99", "a"]], gate, ["a", "b"])
    assert re.search(r"\| digits-wide \| 100 \| \d{4} \| JSON", (REPO_ROOT / "docs" / "real-tables.md").read_text())
