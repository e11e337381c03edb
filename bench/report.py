"""results.json: its required keys, the targets, and the Markdown table made from it."""
from __future__ import annotations

import math
from typing import Any

# Keys every results.json carries (dotted paths into the nested document), so runs compare.
REQUIRED_KEYS = (
    "inference.python_p50_us",
    "inference.python_p99_us",
    "inference.jvm_p50_us",
    "inference.spark_p50_us",
    "inference.http_p50_ms",
    "inference.http_rps",
    "glue.rows_per_s_1m",
    "glue.rows_per_s_10m",
    "glue.seconds_car",
    "local.seconds_total",
    "local.seconds_by_state",
    "tests.seconds",
    "machine.cores",
    "machine.memory_gib",
    "machine.cpu_model",
    "timestamp",
)

_MISSING = object()


def get_path(document: dict, dotted: str, default: Any = None) -> Any:
    node: Any = document
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_path(document: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def missing_keys(document: dict) -> list[str]:
    """Required keys absent from `document` (a key present with null means: not measured, see `errors`)."""
    return [key for key in REQUIRED_KEYS if get_path(document, key, _MISSING) is _MISSING]


def with_required_keys(document: dict) -> dict:
    """Every required key present: a measurement that did not happen is null."""
    for key in missing_keys(document):
        set_path(document, key, None)
    return document


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator


# (id, description, how the value is read from results.json, comparison, bound)
TARGETS = (
    ("python_p50", "In-process pipeline p50 per record", "inference.python_p50_us", "<=", 100.0, "us"),
    ("vs_spark", "In-process vs Spark PipelineModel.transform (p50 ratio)", "inference.speedup_vs_spark", ">=", 100.0, "x"),
    ("http_p50", "Local HTTP endpoint p50 (one client)", "inference.http_p50_ms", "<=", 2.0, "ms"),
    ("glue_1m", "Glue job at 1,000,000 rows", "glue.rows_per_s_1m", ">=", 100_000.0, "rows/s"),
    ("glue_10m", "Glue job at 10,000,000 rows", "glue.rows_per_s_10m", ">=", 100_000.0, "rows/s"),
    ("glue_car_local", "Glue job on car.data in make local, after the Spark session is up",
     "local.timings.glue_job_seconds", "<", 8.0, "s"),
    ("local_total", "make local AUTO_APPROVE=1 end to end", "local.seconds_total", "<", 20.0, "s"),
)


# What "before and after" compares: (description, dotted key, unit, decimals).
BASELINE_KEYS = (
    ("Glue job at 1,000,000 rows", "glue.rows_per_s_1m", "rows/s", 0),
    ("Glue job at 10,000,000 rows", "glue.rows_per_s_10m", "rows/s", 0),
    ("Glue job at 1,000,000 rows: Spark tasks' CPU per row (event log)", "glue.task_cpu_us_per_row_1m", "us", 1),
    ("Glue job at 10,000,000 rows: Spark tasks' CPU per row (event log)", "glue.task_cpu_us_per_row_10m", "us", 1),
    ("Glue job on car.data, first run in the benchmark's JVM", "glue.seconds_car", "s", 1),
    ("Glue job on car.data, warm JVM", "glue.seconds_car_warm", "s", 1),
    ("Spark session start (benchmark)", "glue.spark_start_seconds", "s", 1),
    ("make local AUTO_APPROVE=1, wall", "local.seconds_total", "s", 1),
    ("make local: PreprocessWithGlue state", "local.seconds_by_state.PreprocessWithGlue", "s", 1),
    ("make local: Glue job after the session is up", "local.timings.glue_job_seconds", "s", 1),
    ("make local: Spark session start", "local.timings.spark_start_seconds", "s", 1),
)


def baseline_of(earlier: dict, note: str) -> dict:
    """The BASELINE_KEYS values of an earlier results.json, kept in the new one as `baseline`."""
    return {"timestamp": earlier.get("timestamp"), "note": note,
            "load_average_at_start": (earlier.get("machine") or {}).get("load_average_at_start"),
            "values": {key: get_path(earlier, key) if get_path(earlier, key) is not None else task_cpu_per_row(earlier, key)
                       for _, key, _, _ in BASELINE_KEYS}}


def task_cpu_per_row(results: dict, key: str) -> float | None:
    """glue.task_cpu_us_per_row_<size> from the profile of that size's run, when it was the profiled one."""
    prefix = "glue.task_cpu_us_per_row_"
    if not key.startswith(prefix):
        return None
    label = key[len(prefix):]
    glue = results.get("glue") or {}
    jobs = (glue.get(f"profile_{label}") or {}).get("spark_jobs_by_call_site")
    run = next((r for r in glue.get("runs") or [] if r.get("name") == f"synthetic {label}"), None)
    if not jobs or not run or not run.get("rows"):
        return None
    return round(1e6 * sum(j["cpu_s"] for j in jobs) / run["rows"], 2)


def evaluate_targets(results: dict) -> list[dict]:
    """One entry per target: its value from `results` and met (true/false), or null when not measured."""
    checks = {"<=": lambda v, b: v <= b, ">=": lambda v, b: v >= b, "<": lambda v, b: v < b}
    evaluated = []
    for target_id, description, key, comparison, bound, unit in TARGETS:
        value = get_path(results, key)
        measured = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        evaluated.append({
            "id": target_id, "description": description, "key": key, "target": f"{comparison} {bound:,g} {unit}",
            "value": value if measured else None, "met": checks[comparison](value, bound) if measured else None,
        })
    return evaluated


def fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    """A number for a table cell: thousands separators, `digits` decimals below 1,000, 'n/a' for null."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or digits == 0 or abs(value) >= 1000:
        text = f"{value:,.0f}"
    else:
        text = f"{value:,.{digits}f}"
    return f"{text} {unit}".rstrip()


def _status(met: bool | None) -> str:
    return "not measured" if met is None else "**met**" if met else "**missed**"


def render_markdown(results: dict) -> str:
    machine = results.get("machine") or {}
    inference = results.get("inference") or {}
    glue = results.get("glue") or {}
    local = results.get("local") or {}
    tests = results.get("tests") or {}
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` (`python -m bench`) on {results.get('timestamp', 'n/a')}, in one run on one machine:",
        f"{machine.get('cores', 'n/a')} cores ({machine.get('cpu_model') or 'unknown CPU'}), "
        f"{fmt(machine.get('memory_gib'), 1)} GiB memory, {machine.get('os', '')}, Python {machine.get('python', '')}, "
        f"{machine.get('java') or 'no java'}.",
        f"Load average (1, 5, 15 min) at the start: {_load(machine.get('load_average_at_start'))}; "
        f"at the end: {_load(machine.get('load_average_at_end'))}. "
        + ("The machine was shared with other work while this ran (load above the core count): "
           "absolute numbers are pessimistic; re-run `make bench` on a quiet machine to compare."
           if _busy(results) else "The machine was otherwise quiet."),
        "Load average when each part started: " + ("; ".join(
            f"{name} {values[0]:.2f}" for name, values in (results.get("load_by_section") or {}).items()) or "n/a") + ".",
        "Raw numbers: [results.json](results.json).",
        "",
        "## Targets",
        "",
        "| target | goal | measured | status |",
        "|---|---|---|---|",
    ]
    for target in results.get("targets") or evaluate_targets(results):
        unit = target["target"].split()[-1]
        lines.append(f"| {target['description']} | {target['target']} | {fmt(target['value'], 1, unit)} | "
                     f"{_status(target['met'])} |")
    baseline = results.get("baseline")
    if baseline:
        lines += ["", "## Before and after", "",
                  f"Before: {baseline.get('note') or 'an earlier run'} (measured {baseline.get('timestamp') or 'n/a'}, load "
                  f"average at its start {_load(baseline.get('load_average_at_start'))}). After: this run.", "",
                  "| measure | before | after |", "|---|---|---|"]
        for description, key, unit, digits in BASELINE_KEYS:
            lines.append(f"| {description} | {fmt((baseline.get('values') or {}).get(key), digits, unit)} | "
                         f"{fmt(get_path(results, key), digits, unit)} |")
    lines += [
        "",
        f"## Inference, one record at a time ({fmt(inference.get('test_rows'), 0)} held-out car rows)",
        "",
        "| runtime | p50 | p99 | calls | what one call includes |",
        "|---|---|---|---|---|",
        f"| Python, in-process (`InferencePipeline.predict_csv_line`) | {fmt(inference.get('python_p50_us'), 1, 'us')} | "
        f"{fmt(inference.get('python_p99_us'), 1, 'us')} | {fmt(inference.get('python_calls'), 0)} | "
        "CSV line in, label out: SparkML Serving preprocess (CSV parsing, MLeap, vector to CSV) -> XGBoost "
        "(compiled trees) -> SparkML Serving postprocess |",
        f"| Python, preprocess + postprocess containers only | {fmt(inference.get('python_mleap_p50_us'), 1, 'us')} | "
        f"{fmt(inference.get('python_mleap_p99_us'), 1, 'us')} | | the two SparkML Serving stages above (sum of "
        "their p50s / p99s), to compare with the JVM row |",
        f"| MLeap 0.20.0 runtime on the JVM (`MleapRuntimeCli --bench`) | {fmt(inference.get('jvm_p50_us'), 1, 'us')} | "
        f"{fmt(inference.get('jvm_p99_us'), 1, 'us')} | {fmt(inference.get('jvm_calls'), 0)} | preprocess + postprocess "
        "bundle transforms only (sum of the two stages' p50s / p99s) on ready-made one-row LeapFrames: **no XGBoost** "
        "(the MLeap runtime has none; SparkML Serving calls it in another container), no CSV/JSON parsing, no HTTP |",
        f"| Spark 3.5 `PipelineModel.transform` | {fmt(inference.get('spark_p50_us'), 0, 'us')} | "
        f"{fmt(inference.get('spark_p99_us'), 0, 'us')} | {fmt(inference.get('spark_calls'), 0)} | "
        "createDataFrame(one-row pandas, Arrow) -> preprocess transform -> collect -> XGBoost `inplace_predict` -> "
        "createDataFrame -> postprocess transform -> collect |",
        "",
        f"In-process vs Spark: **{fmt(inference.get('speedup_vs_spark'), 0)}x** faster at p50. "
        f"Spark's answers agree with the in-process pipeline on {fmt(_pct(inference.get('spark_agreement')), 1)}% "
        f"of the rows; the in-process pipeline's accuracy on the held-out rows is "
        f"{fmt(_pct(inference.get('python_accuracy')), 1)}%.",
    ]
    stages = inference.get("python_stages") or {}
    if stages:
        lines += ["", "In-process stages (p50 / p99 us): " + "; ".join(
            f"{name} {fmt(s.get('p50_us'), 1)} / {fmt(s.get('p99_us'), 1)}" for name, s in stages.items()) + "."]
    spark_phases = inference.get("spark_phases_p50_us") or {}
    if spark_phases:
        lines += ["", "Spark call phases (p50 us): " + "; ".join(
            f"{name} {fmt(v, 0)}" for name, v in spark_phases.items()) + "."]
    lines += [
        "",
        "### Local HTTP endpoint on loopback",
        "",
        "The local sagemaker-runtime server (`localmode.serving.server`) serving the same three containers; "
        "keep-alive connections; each client sends every held-out row in turn.",
        "",
        "| client | clients | p50 | p99 | requests/s | requests |",
        "|---|---|---|---|---|---|",
    ]
    for label, prefix in (("`http.client`", "http"), ("boto3 `invoke_endpoint`", "boto3_http")):
        for runs in inference.get(f"{prefix}_runs") or []:
            lines.append(f"| {label} | {runs['clients']} | {fmt(runs.get('p50_ms'), 2, 'ms')} | "
                         f"{fmt(runs.get('p99_ms'), 2, 'ms')} | {fmt(runs.get('rps'), 0)} | {fmt(runs.get('requests'), 0)} |")
    lines += [
        "",
        f"`inference.http_p50_ms` is the one-client p50; `inference.http_rps` is the throughput with "
        f"{inference.get('http_clients', 'several')} concurrent clients (the server answers in Python threads, "
        "so more clients than cores queue behind each other).",
        "",
        "## Glue job on local Spark (`glue/`, local[2])",
        "",
        "| input | rows | seconds | rows/s | CPU s (JVM + Python) | rows/s if the cores were the job's | load average after |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in glue.get("runs") or []:
        lines.append(f"| {run['name']} | {fmt(run.get('rows'), 0)} | {fmt(run.get('seconds'), 1)} | "
                     f"{fmt(run.get('rows_per_s'), 0)} | {fmt(run.get('cpu_s'), 1)} | "
                     f"{fmt(run.get('rows_per_s_idle_bound'), 0)} | {_load(run.get('load_average'))} |")
    lines += ["", f"Spark session start (JVM): {fmt(glue.get('spark_start_seconds'), 1)} s, not included above. "
              "This session is the default JVM (C1 and C2), as for large inputs; `make local` on car.data starts "
              "its JVM with C1 only (localmode/glue_local.py jit_options): see the local pipeline below. "
              "Synthetic rows draw every feature and the label uniformly from `datasets/car.json`'s values."]
    bounds = glue_cpu_bounds(glue, machine.get("cores") or 1)
    if bounds:
        lines += ["", "### What bounds the job where it misses its target", ""]
        lines += [f"- {bound}" for bound in bounds]
    profile = next((value for key, value in glue.items() if key.startswith("profile_")), None) or {}
    if profile:
        lines += ["", "### What bounds the job at the largest size", ""]
        lines += [f"- {finding}" for finding in profile.get("findings") or []]
        jobs = profile.get("spark_jobs_by_call_site") or []
        if jobs:
            lines += ["", "Spark jobs of that run, by the line of the job's code that started them "
                          "(from Spark's event log):", "",
                      "| call site | jobs | wall s | tasks | task run s | task CPU s | GC s |", "|---|---|---|---|---|---|---|"]
            for job in jobs:
                lines.append(f"| `{job['call_site']}` | {job['jobs']} | {fmt(job['wall_s'], 1)} | {job['tasks']} | "
                             f"{fmt(job['run_s'], 1)} | {fmt(job['cpu_s'], 1)} | {fmt(job['gc_s'], 1)} |")
        driver = profile.get("driver_functions") or []
        if driver:
            lines += ["", "Driver-side profile (pyinstrument) of the job's `_build`, by callee: " + "; ".join(
                f"`{d['function']}` {fmt(d['seconds'], 1)} s ({d['calls']} call{'s' if d['calls'] > 1 else ''})"
                for d in driver) + ". The driver mostly waits for Spark, so this mirrors the jobs above."]
    lines += [
        "",
        "## Local pipeline (`python -m localmode run --auto-approve`, what `make local AUTO_APPROVE=1` runs)",
        "",
        f"Wall time {fmt(local.get('seconds_total'), 1)} s (process start to exit), outcome "
        f"{local.get('outcome') or 'n/a'} (exit status {local.get('exit_code', 'n/a')}).",
        "",
        "| state | seconds |",
        "|---|---|",
    ]
    for state, seconds in (local.get("seconds_by_state") or {}).items():
        lines.append(f"| {state} | {fmt(seconds, 2)} |")
    timings = local.get("timings") or {}
    if timings:
        lines += ["", "Other timings from its report.json: " + "; ".join(
            f"{k} {fmt(v, 1) if isinstance(v, (int, float)) else v}" for k, v in timings.items()) + "."]
    lines += [
        "",
        "## Test suite",
        "",
        f"`{tests.get('command', 'pytest')}`: {fmt(tests.get('seconds'), 0)} s wall "
        f"({tests.get('source', 'n/a')}); {tests.get('summary') or 'no summary'}.",
    ]
    errors = results.get("errors") or {}
    if errors:
        lines += ["", "## Not measured in this run", ""]
        lines += [f"- {section}: {message}" for section, message in errors.items()]
    return "\n".join(lines) + "\n"


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


def _load(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values) if values else "n/a"


def _busy(results: dict) -> bool:
    """Whether the 1-minute load went above the core count at any point the run sampled it."""
    machine = results.get("machine") or {}
    cores = machine.get("cores") or 1
    samples = [machine.get("load_average_at_start"), machine.get("load_average_at_end"),
               *(results.get("load_by_section") or {}).values(),
               *(run.get("load_average") for run in (results.get("glue") or {}).get("runs") or [])]
    return any(values[0] > cores for values in samples if values)


GLUE_ROWS_PER_S_TARGET = 100_000
CAR_SECONDS_TARGET = 8.0


def glue_cpu_bounds(glue: dict, cores: int) -> list[str]:
    """What the measured CPU time allows on idle cores, for each Glue target the run missed.

    Wall time on a shared machine mixes the job's cost with waiting for a core; CPU
    seconds do not, so they give the best the job could do if the cores were its own.
    """
    found = []
    for size in ("1m", "10m"):
        rate, bound = glue.get(f"rows_per_s_{size}"), glue.get(f"rows_per_s_idle_bound_{size}")
        cpu, task = glue.get(f"cpu_us_per_row_{size}"), glue.get(f"task_cpu_us_per_row_{size}")
        if None in (rate, bound, cpu, task) or rate >= GLUE_ROWS_PER_S_TARGET:
            continue
        verdict = ("the rest is waiting for a core the machine's other work held" if bound >= GLUE_ROWS_PER_S_TARGET
                   else "so even idle cores would miss the target: the job's CPU per row bounds it")
        found.append(
            f"{size.upper()} rows: {rate:,.0f} rows/s measured; {cpu:.1f} us of CPU per row "
            f"(JVM + Python), of which Spark's tasks {task:.1f} us and the rest JVM and driver work outside "
            f"Spark's tasks; {cores} idle cores would give at most "
            f"{bound:,.0f} rows/s, {verdict}.")
    runs = {run["name"]: run for run in glue.get("runs") or []}
    cold, warm = runs.get("car.data"), runs.get("car.data (warm JVM)")
    if cold and warm and None not in (cold.get("cpu_s"), warm.get("cpu_s"), cold.get("seconds"), warm.get("seconds")) \
            and cold["seconds"] >= CAR_SECONDS_TARGET:
        warm_up = cold["cpu_s"] - warm["cpu_s"]
        found.append(
            f"car.data: {cold['seconds']:.1f} s in a fresh JVM against {warm['seconds']:.1f} s when the same JVM "
            f"runs it again. The fresh run used {cold['cpu_s']:.1f} CPU-s, the repeat {warm['cpu_s']:.1f}: "
            f"{warm_up:.1f} CPU-s are the JVM warming up (class loading, JIT compiling, Spark's first query "
            f"planning), not the 1,728 rows. On {cores} idle cores a fresh JVM needs at least "
            f"{cold['cpu_s'] / cores:.1f} s, so the first run in a new JVM cannot reach "
            f"{CAR_SECONDS_TARGET:.0f} s; a warm one "
            + ("does." if warm["seconds"] < CAR_SECONDS_TARGET else "does not either.")
            + " `make local` always starts a new JVM.")
    return found
