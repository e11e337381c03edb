"""The Glue job (glue/preprocessing) on local Spark at three data sizes, and what bounds it.

The session is the one `python -m localmode glue` uses (glue_local.build_spark_session),
with Spark's event log switched on so every Spark job of a run can be attributed to the
line of the job's code that started it, with its tasks' run, CPU and GC time.
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import time
from pathlib import Path
from typing import Iterator

from bench.report import TARGETS
from bench.synthetic import write_synthetic_csv

# The job's modules whose lines Spark names as call sites: validation's `collect`s, and the run's _build.
VALIDATION_MODULE = "preprocessing/validate.py"
JOB_MODULE = "preprocessing/job.py"
TARGET_ROWS_PER_S = next(bound for target_id, *_, bound, _unit in TARGETS if target_id == "glue_1m")


def submit_args_with_event_log(existing: str | None, log_dir: Path) -> str:
    """PYSPARK_SUBMIT_ARGS that also turn on Spark's event log into `log_dir` (must be set before the JVM starts)."""
    words = shlex.split(existing or "")
    if not words or words[-1] != "pyspark-shell":
        words.append("pyspark-shell")
    extra = ["--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir={log_dir.resolve().as_uri()}"]
    return shlex.join(words[:-1] + extra + words[-1:])


def start_spark(event_log_dir: Path):
    """(session, seconds to start it): the Glue job's local session, with the event log on."""
    from localmode import glue_local

    event_log_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PYSPARK_SUBMIT_ARGS"] = submit_args_with_event_log(os.environ.get("PYSPARK_SUBMIT_ARGS"), event_log_dir)
    started = time.monotonic()
    spark = glue_local.build_spark_session(app_name="bench")
    return spark, time.monotonic() - started


@contextlib.contextmanager
def labelled_writes(spark, timings: list[dict]) -> Iterator[None]:
    """Name each DataFrameWriter.csv call's Spark jobs after its output directory, and time it.
    PySpark labels collect() with its call site but not writes; the job script stays untouched."""
    from pyspark.sql.readwriter import DataFrameWriter

    original = DataFrameWriter.csv
    context = spark.sparkContext

    def dataframe_writer_csv(self, path, *args, **kwargs):
        label = "write " + "/".join(str(path).rstrip("/").split("/")[-2:]) + "/"
        context.setJobDescription(label)
        started = time.monotonic()
        try:
            return original(self, path, *args, **kwargs)
        finally:
            timings.append({"write": label, "seconds": round(time.monotonic() - started, 2)})
            context.setJobDescription(None)

    DataFrameWriter.csv = dataframe_writer_csv
    try:
        yield
    finally:
        DataFrameWriter.csv = original


def read_event_log(log_dir: Path, app_id: str) -> list[dict]:
    for name in (app_id, app_id + ".inprogress"):
        path = log_dir / name
        if path.is_file():
            with open(path, encoding="utf-8") as handle:
                return [json.loads(line) for line in handle if line.strip()]
    return []


def spark_jobs(events: list[dict], since_ms: float, until_ms: float) -> list[dict]:
    """Spark jobs submitted in [since_ms, until_ms]: label (job description, else call site), wall,
    task count and the tasks' summed run, CPU and GC seconds."""
    stage_totals: dict[int, dict] = {}
    jobs: dict[int, dict] = {}
    for event in events:
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            properties = event.get("Properties") or {}
            jobs[event["Job ID"]] = {
                "job": event["Job ID"], "submitted_ms": event.get("Submission Time"),
                "label": properties.get("spark.job.description") or properties.get("callSite.short") or "other",
                "stages": [s["Stage ID"] for s in event.get("Stage Infos", [])],
            }
        elif kind == "SparkListenerJobEnd" and event.get("Job ID") in jobs:
            jobs[event["Job ID"]]["completed_ms"] = event.get("Completion Time")
        elif kind == "SparkListenerTaskEnd":
            metrics = event.get("Task Metrics") or {}
            totals = stage_totals.setdefault(event["Stage ID"], {"tasks": 0, "run_ms": 0, "cpu_ns": 0, "gc_ms": 0})
            totals["tasks"] += 1
            totals["run_ms"] += metrics.get("Executor Run Time", 0)
            totals["cpu_ns"] += metrics.get("Executor CPU Time", 0)
            totals["gc_ms"] += metrics.get("JVM GC Time", 0)
    found = []
    for job in sorted(jobs.values(), key=lambda j: j["job"]):
        if job["submitted_ms"] is None or not since_ms <= job["submitted_ms"] <= until_ms:
            continue
        stages = [stage_totals.get(s, {"tasks": 0, "run_ms": 0, "cpu_ns": 0, "gc_ms": 0}) for s in job.pop("stages")]
        completed = job.pop("completed_ms", None)
        job.update(
            wall_s=(completed - job["submitted_ms"]) / 1000 if completed else None,
            tasks=sum(s["tasks"] for s in stages),
            run_s=sum(s["run_ms"] for s in stages) / 1000,
            cpu_s=sum(s["cpu_ns"] for s in stages) / 1e9,
            gc_s=sum(s["gc_ms"] for s in stages) / 1000,
        )
        found.append(job)
    return found


def by_label(jobs: list[dict]) -> list[dict]:
    """Jobs summed per label, in order of first appearance."""
    grouped: dict[str, dict] = {}
    for job in jobs:
        entry = grouped.setdefault(job["label"], {"call_site": job["label"], "jobs": 0, "wall_s": 0.0, "tasks": 0,
                                                  "run_s": 0.0, "cpu_s": 0.0, "gc_s": 0.0})
        entry["jobs"] += 1
        entry["wall_s"] += job["wall_s"] or 0.0
        for key in ("tasks", "run_s", "cpu_s", "gc_s"):
            entry[key] += job[key]
    return [{k: round(v, 2) if isinstance(v, float) else v for k, v in e.items()} for e in grouped.values()]


def _wait_for_event_log(log_dir: Path, app_id: str, timeout: float = 15.0) -> list[dict]:
    """The event log once every job it records has ended (the listener bus writes asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        events = read_event_log(log_dir, app_id)
        started = sum(e.get("Event") == "SparkListenerJobStart" for e in events)
        ended = sum(e.get("Event") == "SparkListenerJobEnd" for e in events)
        if (started and started == ended) or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def driver_functions(profiler_session, job_file: str, min_share: float = 0.02) -> list[dict]:
    """What the job's `_build` (preprocessing.job) spends its driver-side time in: its callees summed by function
    (inclusive seconds, number of calls), largest first."""
    root = profiler_session.root_frame()
    stack, build = ([root] if root is not None else []), None
    while stack and build is None:
        frame = stack.pop()
        if frame.function == "_build" and frame.file_path and frame.file_path.endswith(job_file):
            build = frame
        stack.extend(frame.children)
    if build is None:
        return []
    totals: dict[str, dict] = {}
    for child in build.children:
        name = f"{child.function} ({Path(child.file_path or '?').name})"
        entry = totals.setdefault(name, {"function": name, "seconds": 0.0, "calls": 0})
        entry["seconds"] += child.time
        entry["calls"] += 1
    return sorted(({**e, "seconds": round(e["seconds"], 2)} for e in totals.values()
                   if e["seconds"] >= min_share * build.time), key=lambda e: -e["seconds"])


def process_cpu_seconds(spark) -> float:
    """CPU time so far of this Python process and of Spark's JVM (every thread: tasks, the driver's
    planning, JIT compilers, GC): what a run costs whatever else the machine is doing."""
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    jvm = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return jvm + sum(os.times()[:2])


def run_job(spark, spec: dict, input_path: Path, out_dir: Path, name: str) -> dict:
    from preprocessing.job import run
    from preprocessing.options import JobOptions

    cpu_before = process_cpu_seconds(spark)
    started = time.monotonic()
    manifest = run(spark, JobOptions(input=str(input_path), output=str(out_dir), run_id=f"bench-{name}", spec=spec, seed=42))
    seconds = time.monotonic() - started
    cpu = process_cpu_seconds(spark) - cpu_before
    rows = manifest["rows"]["total"]
    cores = os.cpu_count() or 1
    return {"name": name, "rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1),
            "cpu_s": round(cpu, 2),
            # All of the run's CPU spread over every core: what the cores would give if they were the job's alone.
            "rows_per_s_idle_bound": round(rows / max(cpu / cores, 1e-9), 1),
            "load_average": [round(v, 2) for v in os.getloadavg()], "manifest": manifest}


def findings(profile: dict, run: dict, cores: int) -> list[str]:
    """Plain statements of what the measurements of the largest run show. Wall times on a shared
    machine swing with its load; the tasks' CPU seconds are the job's own cost, so comparisons use them."""
    jobs = profile.get("spark_jobs_by_call_site") or []

    def total(predicate, key):
        return sum(j[key] for j in jobs if predicate(j["call_site"]))

    def is_validation(label):
        return label.startswith("collect") and VALIDATION_MODULE in label

    def is_training_write(label):
        return label in ("write data/train/", "write data/validation/")

    rows, seconds = run["rows"], run["seconds"]
    cpu, task_run = total(lambda _: True, "cpu_s"), total(lambda _: True, "run_s")
    share = cpu / task_run if task_run else 0.0
    bound = rows / (cpu / cores) if cpu else 0.0
    lines = [
        f"{rows:,} rows in {seconds:.1f} s = {run['rows_per_s']:,.0f} rows/s. Spark jobs' wall times (the three "
        f"split writes run at once, so theirs overlap): {total(lambda _: True, 'wall_s'):.1f} s in all: validation (read, parse, classify, hash, cache, count: the "
        f"`collect`s in {Path(VALIDATION_MODULE).name}) {total(is_validation, 'wall_s'):.1f} s, writing train + validation "
        f"{total(is_training_write, 'wall_s'):.1f} s, writing test {total(lambda l: l == 'write data/test/', 'wall_s'):.1f} s.",
        (f"The tasks ran {task_run:.1f} s but were on a CPU for only {cpu:.1f} s ({100 * share:.0f}%): at a load "
         f"average of {run['load_average'][0]:.1f} on {cores} cores they often waited for a core, so the wall times "
         "above are inflated by the machine's other work."
         if share < 0.7 else
         f"The tasks were on a CPU for {cpu:.1f} s of their {task_run:.1f} s ({100 * share:.0f}%): the cores were "
         "mostly the job's, so the wall times above are close to what this machine can do.")
        + f" The CPU seconds are the job's own cost: {1e6 * cpu / rows:.0f} us per row (validation "
        f"{1e6 * total(is_validation, 'cpu_s') / rows:.0f}, train + validation writes "
        f"{1e6 * total(is_training_write, 'cpu_s') / rows:.0f}), so {cores} idle cores would give at most "
        f"{bound:,.0f} rows/s"
        + (f": {TARGET_ROWS_PER_S:,.0f} rows/s needs less work per row, not only a quieter machine."
           if bound < TARGET_ROWS_PER_S else "."),
    ]
    return lines


def bench_glue(spark, spec: dict, car_path: Path, workdir: Path, event_log_dir: Path,
               sizes: dict[str, int], profile: bool = True) -> dict:
    """Runs: car.data cold (first job in this JVM) and warm, then each synthetic size; the largest profiled."""
    runs = []
    results: dict = {}
    car_cold = run_job(spark, spec, car_path, workdir / "car", "car.data")
    car_warm = run_job(spark, spec, car_path, workdir / "car-warm", "car.data (warm JVM)")
    runs += [car_cold, car_warm]
    results["car_run_dir"] = str(workdir / "car")
    results["car_manifest"] = car_cold.pop("manifest")
    car_warm.pop("manifest")
    largest = max(sizes, key=sizes.get)
    for label, rows in sizes.items():
        data_path = write_synthetic_csv(spec, rows, workdir / "data" / f"synthetic-{label}.csv")
        out = workdir / f"synthetic-{label}"
        if label == largest and profile:
            from pyinstrument import Profiler

            writes: list[dict] = []
            profiler = Profiler(interval=0.01)
            since = time.time() * 1000
            with labelled_writes(spark, writes):
                profiler.start()
                try:
                    run = run_job(spark, spec, data_path, out, f"synthetic {label}")
                finally:
                    session = profiler.stop()
            until = time.time() * 1000
            events = _wait_for_event_log(event_log_dir, spark.sparkContext.applicationId)
            jobs = spark_jobs(events, since, until)
            text_path = workdir / f"glue-{label}-profile.txt"
            text_path.write_text(profiler.output_text(unicode=True, color=False, show_all=False), encoding="utf-8")
            results[f"profile_{label}"] = {
                "spark_jobs_by_call_site": by_label(jobs), "writes": writes,
                "driver_functions": driver_functions(session, JOB_MODULE), "pyinstrument_text": str(text_path),
            }
        else:
            since = time.time() * 1000
            run = run_job(spark, spec, data_path, out, f"synthetic {label}")
            until = time.time() * 1000
            jobs = spark_jobs(_wait_for_event_log(event_log_dir, spark.sparkContext.applicationId), since, until)
        results[f"task_cpu_us_per_row_{label}"] = round(1e6 * sum(j["cpu_s"] for j in jobs) / rows, 2)
        run.pop("manifest")
        runs.append(run)
        results[f"seconds_{label}"] = run["seconds"]
        results[f"rows_per_s_{label}"] = run["rows_per_s"]
        results[f"cpu_us_per_row_{label}"] = round(1e6 * run["cpu_s"] / rows, 2)
        results[f"rows_per_s_idle_bound_{label}"] = run["rows_per_s_idle_bound"]
        if label != largest:
            shutil.rmtree(out, ignore_errors=True)
    results["runs"] = runs
    results["seconds_car"] = car_cold["seconds"]
    results["rows_per_s_car"] = car_cold["rows_per_s"]
    results["seconds_car_warm"] = car_warm["seconds"]
    profile_key = f"profile_{largest}"
    if profile_key in results:
        run = next(r for r in runs if r["name"] == f"synthetic {largest}")
        results[profile_key]["findings"] = findings(results[profile_key], run, os.cpu_count() or 1)
    return results
