"""The benchmark's pure parts: the results.json contract, the targets, the Markdown table, and
the checked-in results staying consistent with both. No timing is asserted here."""
from __future__ import annotations

import json

import pytest

from bench import BENCH_DIR
from bench.report import (
    REQUIRED_KEYS,
    baseline_of,
    evaluate_targets,
    fmt,
    get_path,
    missing_keys,
    render_markdown,
    with_required_keys,
)


def complete_results(**overrides) -> dict:
    results = with_required_keys({})
    values = {
        "inference.python_p50_us": 60.0, "inference.python_p99_us": 110.0, "inference.jvm_p50_us": 40.0,
        "inference.spark_p50_us": 500_000.0, "inference.speedup_vs_spark": 8333.3, "inference.http_p50_ms": 0.6,
        "inference.http_rps": 1600.0, "glue.rows_per_s_1m": 20_000.0, "glue.rows_per_s_10m": 20_000.0,
        "glue.seconds_car": 30.0,
        "local.seconds_total": 75.0, "local.seconds_by_state": {"PreprocessWithGlue": 40.0}, "tests.seconds": 900.0,
        "machine.cores": 2, "machine.memory_gib": 23.5, "machine.cpu_model": "AMD EPYC",
        "timestamp": "2026-01-01T00:00:00+00:00",
    }
    values.update(overrides)
    for key, value in values.items():
        node = results
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return results


def test_every_required_key_is_present_even_when_a_section_failed():
    results = with_required_keys({"inference": {"python_p50_us": 50.0}, "errors": {"glue": "boom"}})
    assert missing_keys(results) == []
    assert get_path(results, "inference.python_p50_us") == 50.0
    assert get_path(results, "glue.rows_per_s_1m") is None


def test_the_issue_keys_are_all_required():
    issue_keys = {"inference.python_p50_us", "inference.python_p99_us", "inference.jvm_p50_us",
                  "inference.spark_p50_us", "inference.http_p50_ms", "inference.http_rps", "glue.rows_per_s_1m",
                  "glue.rows_per_s_10m",
                  "glue.seconds_car", "local.seconds_total", "local.seconds_by_state", "tests.seconds",
                  "machine.cores", "machine.memory_gib", "machine.cpu_model", "timestamp"}
    assert issue_keys <= set(REQUIRED_KEYS)


def test_targets_are_met_missed_or_not_measured():
    targets = {t["id"]: t for t in evaluate_targets(complete_results(**{"tests.seconds": None,
                                                                        "local.seconds_total": None}))}
    assert targets["python_p50"]["met"] is True
    assert targets["vs_spark"]["met"] is True
    assert targets["http_p50"]["met"] is True
    assert targets["glue_1m"]["met"] is False and targets["glue_1m"]["value"] == 20_000.0
    assert targets["local_total"]["met"] is None


@pytest.mark.parametrize(("key", "value", "met"), [
    ("inference.python_p50_us", 100.0, True), ("inference.python_p50_us", 100.01, False),
    ("inference.speedup_vs_spark", 99.9, False), ("local.seconds_total", 20.0, False),
    ("glue.rows_per_s_1m", 100_000, True), ("glue.rows_per_s_10m", 99_999, False),
    ("local.timings.glue_job_seconds", 7.9, True), ("local.timings.glue_job_seconds", 8.0, False),
])
def test_target_bounds_are_inclusive_where_the_issue_says_at_most_or_at_least(key, value, met):
    target = next(t for t in evaluate_targets(complete_results(**{key: value})) if t["key"] == key)
    assert target["met"] is met


def test_the_markdown_names_the_machine_and_each_target_status():
    results = complete_results()
    results["machine"].update(load_average_at_start=[5.2, 5.0, 4.9], load_average_at_end=[6.0, 5.5, 5.0])
    results["targets"] = evaluate_targets(results)
    markdown = render_markdown(results)
    assert "2 cores (AMD EPYC), 23.5 GiB memory" in markdown
    assert "5.20, 5.00, 4.90" in markdown and "shared with other work" in markdown
    results["machine"].update(load_average_at_start=[0.3, 1.0, 1.0], load_average_at_end=[1.0, 1.0, 1.0])
    assert "otherwise quiet" in render_markdown(results)
    results["load_by_section"] = {"glue": [0.4, 1.0, 1.0], "spark transform": [3.1, 2.0, 1.5]}
    assert "shared with other work" in render_markdown(results)
    assert "| Glue job at 1,000,000 rows | >= 100,000 rows/s | 20,000 rows/s | **missed** |" in markdown
    assert "| In-process pipeline p50 per record | <= 100 us | 60.0 us | **met** |" in markdown


def test_numbers_are_formatted_for_reading():
    assert fmt(None) == "n/a"
    assert fmt(1234567.891, 0) == "1,234,568"
    assert fmt(0.5594, 2, "ms") == "0.56 ms"
    assert fmt(True) == "yes"


def test_the_checked_in_results_have_every_key_and_match_their_markdown():
    path = BENCH_DIR / "results.json"
    if not path.is_file():
        pytest.fail("bench/results.json is missing: run `make bench`")
    results = json.loads(path.read_text(encoding="utf-8"))
    assert missing_keys(results) == []
    assert results["targets"] == evaluate_targets(results)
    assert (BENCH_DIR / "RESULTS.md").read_text(encoding="utf-8") == render_markdown(results), \
        "bench/RESULTS.md is not what bench/report.py makes of bench/results.json: " \
        "run `.venv/bin/python -m bench --render-only` (or `make bench`)"


def test_before_and_after_table_shows_the_baseline_next_to_this_run():
    earlier = complete_results(**{"glue.rows_per_s_1m": 32_841.0, "local.seconds_total": 39.0})
    results = complete_results(**{"glue.rows_per_s_1m": 120_000.0})
    results["baseline"] = baseline_of(earlier, "the old job")
    markdown = render_markdown(results)
    assert "## Before and after" in markdown and "the old job" in markdown
    assert "| Glue job at 1,000,000 rows | 32,841 rows/s | 120,000 rows/s |" in markdown
    assert "## Before and after" not in render_markdown(complete_results())
