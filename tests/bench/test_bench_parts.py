"""Pure helpers of the benchmark: synthetic data, event-log accounting, report parsing."""
from __future__ import annotations

import shlex
from pathlib import Path

from bench.glue import by_label, findings, spark_jobs, submit_args_with_event_log
from bench import report
from bench.local import summarize_local_report
from bench.machine import cpu_model_from, memory_bytes_from
from bench.suite import parse_pytest_summary
from bench.synthetic import synthetic_columns, write_synthetic_csv
from localmode.serving.latency import summarize

TINY_SPEC = {"columns": [{"name": "colour", "type": "categorical", "values": ["red", "blue"]},
                         {"name": "size", "type": "categorical", "values": ["s", "m", "l"]},
                         {"name": "verdict", "type": "categorical", "values": ["yes", "no"]}],
             "label": "verdict"}


def test_synthetic_rows_use_only_the_specs_values(tmp_path):
    path = write_synthetic_csv(TINY_SPEC, 1_003, tmp_path / "rows.csv", chunk_rows=400)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1_003
    fields = [line.split(",") for line in lines]
    assert {f[0] for f in fields} == {"red", "blue"}
    assert {f[1] for f in fields} == {"s", "m", "l"}
    assert {f[2] for f in fields} == {"yes", "no"}


def test_synthetic_rows_are_reproducible_and_seed_dependent():
    first, again, other = (synthetic_columns(TINY_SPEC, 50, seed) for seed in (3, 3, 4))
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first, other))


def test_percentiles_are_nearest_rank_in_microseconds():
    summary = summarize([n * 1000 for n in range(100, 0, -1)])  # 1..100 us, unsorted
    assert summary == {"p50_us": 51.0, "p99_us": 100.0, "calls": 100}


def test_event_log_is_kept_before_pyspark_shell():
    args = shlex.split(submit_args_with_event_log("--driver-memory 3g pyspark-shell", Path("/tmp/events")))
    assert args[-1] == "pyspark-shell" and args[:2] == ["--driver-memory", "3g"]
    assert "spark.eventLog.enabled=true" in args and "spark.eventLog.dir=file:///tmp/events" in args
    assert shlex.split(submit_args_with_event_log(None, Path("/tmp/events")))[-1] == "pyspark-shell"


def _job(job_id, submitted, completed, label_props, stage_id):
    return [
        {"Event": "SparkListenerJobStart", "Job ID": job_id, "Submission Time": submitted, "Properties": label_props,
         "Stage Infos": [{"Stage ID": stage_id}]},
        {"Event": "SparkListenerTaskEnd", "Stage ID": stage_id,
         "Task Metrics": {"Executor Run Time": 1500, "Executor CPU Time": 500_000_000, "JVM GC Time": 100}},
        {"Event": "SparkListenerTaskEnd", "Stage ID": stage_id,
         "Task Metrics": {"Executor Run Time": 500, "Executor CPU Time": 250_000_000, "JVM GC Time": 0}},
        {"Event": "SparkListenerJobEnd", "Job ID": job_id, "Completion Time": completed},
    ]


def test_spark_jobs_are_attributed_and_windowed():
    events = (_job(1, 1_000, 3_000, {"callSite.short": "collect at preprocess.py:509"}, 10)
              + _job(2, 4_000, 5_000, {"callSite.short": "csv at x", "spark.job.description": "write data/train/"}, 11)
              + _job(3, 6_000, 9_000, {"spark.job.description": "write data/train/"}, 12)
              + _job(4, 99_000, 99_500, {}, 13))
    jobs = spark_jobs(events, since_ms=1_000, until_ms=10_000)
    assert [j["label"] for j in jobs] == ["collect at preprocess.py:509", "write data/train/", "write data/train/"]
    assert jobs[0] == {"job": 1, "submitted_ms": 1_000, "label": "collect at preprocess.py:509", "wall_s": 2.0,
                       "tasks": 2, "run_s": 2.0, "cpu_s": 0.75, "gc_s": 0.1}
    grouped = by_label(jobs)
    assert [g["call_site"] for g in grouped] == ["collect at preprocess.py:509", "write data/train/"]
    assert grouped[1]["jobs"] == 2 and grouped[1]["wall_s"] == 4.0 and grouped[1]["tasks"] == 4


def test_findings_compare_task_cpu_with_the_wall_time():
    profile = {"spark_jobs_by_call_site": [
        {"call_site": "collect at /x/preprocessing/validate.py:509", "jobs": 2, "wall_s": 30.0, "tasks": 4, "run_s": 60.0,
         "cpu_s": 10.0, "gc_s": 1.0},
        {"call_site": "write data/train/", "jobs": 2, "wall_s": 25.0, "tasks": 4, "run_s": 50.0, "cpu_s": 12.0, "gc_s": 0},
        {"call_site": "write data/validation/", "jobs": 2, "wall_s": 20.0, "tasks": 4, "run_s": 40.0, "cpu_s": 8.0,
         "gc_s": 0},
        {"call_site": "write data/test/", "jobs": 2, "wall_s": 3.0, "tasks": 4, "run_s": 5.0, "cpu_s": 2.0, "gc_s": 0}]}
    run = {"rows": 1_000_000, "seconds": 90.0, "rows_per_s": 11_111.0, "load_average": [6.0, 6.0, 6.0]}
    text = "\n".join(findings(profile, run, cores=2))
    assert "validation (read, parse" in text and "writing train + validation 45.0 s" in text
    assert "on a CPU for only 32.0 s (21%)" in text and "32 us per row (validation 10, train + validation writes 20)" in text
    assert "at most 62,500 rows/s: 100,000 rows/s needs less work per row" in text
    busy_cpu = {**profile, "spark_jobs_by_call_site": [{**j, "run_s": j["cpu_s"] * 1.1}
                                                       for j in profile["spark_jobs_by_call_site"]]}
    assert "the cores were mostly the job's" in "\n".join(findings(busy_cpu, run, cores=2))


def test_pytest_summary_counts():
    output = "....F\nFAILED tests/a.py::t - AssertionError: 1 passed in\n3 failed, 120 passed, 2 skipped, 1 error in 61.23s (0:01:01)\n"
    parsed = parse_pytest_summary(output)
    assert parsed["counts"] == {"failed": 3, "passed": 120, "skipped": 2, "errors": 1}
    assert parse_pytest_summary("collecting ...\n")["line"] is None


def test_local_report_summary_keeps_the_breakdown():
    report = {"outcome": "deployed", "status": "SUCCEEDED", "seconds": 55.1,
              "state_seconds": {"PreprocessWithGlue": 44.812, "TrainXGBoost": 3.4},
              "timings": {"setup_seconds": 4.0, "glue_job_seconds": None}, "qa": {"accuracy": 0.97}}
    summary = summarize_local_report(report)
    assert summary["seconds_by_state"] == {"PreprocessWithGlue": 44.81, "TrainXGBoost": 3.4}
    assert summary["timings"] == {"setup_seconds": 4.0}
    assert summary["qa_accuracy"] == 0.97


def test_machine_facts_are_read_from_proc_files():
    assert cpu_model_from("processor\t: 0\nmodel name\t: AMD EPYC 7R13\n") == "AMD EPYC 7R13"
    assert cpu_model_from("Hardware\t: BCM2835\n") == "BCM2835"
    assert cpu_model_from("") is None
    assert memory_bytes_from("MemTotal:       24576000 kB\nMemFree: 1 kB\n") == 24576000 * 1024


def test_a_missed_glue_target_says_whether_cpu_or_waiting_bounds_it():
    glue = {
        "rows_per_s_1m": 40_000, "rows_per_s_idle_bound_1m": 80_000, "cpu_us_per_row_1m": 25.0, "task_cpu_us_per_row_1m": 12.0,
        "rows_per_s_10m": 60_000, "rows_per_s_idle_bound_10m": 180_000, "cpu_us_per_row_10m": 11.0, "task_cpu_us_per_row_10m": 9.0,
        "runs": [{"name": "car.data", "seconds": 22.0, "cpu_s": 24.0}, {"name": "car.data (warm JVM)", "seconds": 5.0, "cpu_s": 6.0}],
    }
    one_m, ten_m, car = report.glue_cpu_bounds(glue, cores=2)
    assert "at most 80,000 rows/s" in one_m and "even idle cores would miss" in one_m
    assert "at most 180,000 rows/s" in ten_m and "waiting for a core" in ten_m
    assert "18.0 CPU-s are the JVM warming up" in car and "at least 12.0 s" in car and "a warm one does." in car
    met = dict(glue, rows_per_s_1m=120_000, runs=[{"name": "car.data", "seconds": 7.0, "cpu_s": 9.0},
                                                  {"name": "car.data (warm JVM)", "seconds": 5.0, "cpu_s": 6.0}])
    assert [line[:4] for line in report.glue_cpu_bounds(met, cores=2)] == ["10M "]
