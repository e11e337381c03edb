"""`python -m bench`: every measurement in one run; results.json and RESULTS.md at the end.

A section that fails is recorded under `errors` (its keys stay null) and the others still
run; the exit status is 1 when any section failed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

from bench import BENCH_DIR
from bench.machine import load_average, machine_info
from bench.report import baseline_of, evaluate_targets, ratio, render_markdown, with_required_keys
from localmode import REPO_ROOT

DEFAULT_WORKDIR = REPO_ROOT / "build" / "bench"
GLUE_SIZES = {"1m": 1_000_000, "10m": 10_000_000}
QUICK_GLUE_SIZES = {"10k": 10_000, "100k": 100_000}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="car.data (default: $CAR_DATA, else the verified download)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where results.json and RESULTS.md go (default: bench/, or the workdir with --quick)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="scratch space (default: %(default)s)")
    parser.add_argument("--skip-tests", action="store_true", help="do not time the test suite")
    parser.add_argument("--tests-seconds", type=float, help="use this earlier measurement of the test suite instead")
    parser.add_argument("--tests-from", type=Path, metavar="RESULTS_JSON",
                        help="reuse the test-suite measurement of an earlier results.json (e.g. bench/results.json)")
    parser.add_argument("--skip-local", action="store_true", help="do not time the local pipeline")
    parser.add_argument("--quick", action="store_true",
                        help="smaller everything (Glue at 10k/100k rows, fewer calls), for checking the benchmark itself")
    parser.add_argument("--repeat", type=int, default=5, help="in-process passes over the held-out rows")
    parser.add_argument("--jvm-iterations", type=int, default=20, help="JVM transforms of each held-out row")
    parser.add_argument("--spark-calls", type=int, default=200, help="one-row Spark pipeline calls")
    parser.add_argument("--http-clients", type=int, default=4, help="concurrent clients for requests/s")
    parser.add_argument("--http-rounds", type=int, default=3, help="passes over the held-out rows per HTTP client")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: rewrite RESULTS.md from the results.json in --out-dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.jvm_iterations, args.spark_calls, args.http_rounds = 1, 5, 30, 1
    if args.out_dir is None:
        args.out_dir = args.workdir if args.quick else BENCH_DIR
    return args


class Sections:
    """Runs each section, records its failure instead of stopping the benchmark."""

    def __init__(self, results: dict):
        self.results = results
        self.failed = False

    def run(self, name: str, function, *args, **kwargs):
        load = load_average()
        self.results.setdefault("load_by_section", {})[name] = load
        print(f"[bench] {name} (load average {', '.join(map(str, load))})", flush=True)
        started = time.monotonic()
        try:
            value = function(*args, **kwargs)
        except Exception as exc:  # one broken section must not hide the others' numbers
            traceback.print_exc()
            self.results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {str(exc)[:500]}"
            self.failed = True
            value = None
        print(f"[bench] {name} done in {time.monotonic() - started:.1f}s", flush=True)
        return value


def _relative(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def spark_sections(sections: Sections, args, data_path: Path, spec: dict):
    """Glue runs and the Spark transform benchmark share one Spark session, stopped before the
    in-process timings. Returns (the car run's serving model, its predictions), or Nones."""
    from bench import glue, inference

    results = sections.results
    started = sections.run("spark session", glue.start_spark, args.workdir / "spark-events")
    if started is None:
        return None, None
    spark, start_seconds = started
    model = predictions = None
    try:
        sizes = QUICK_GLUE_SIZES if args.quick else GLUE_SIZES
        found = sections.run("glue", glue.bench_glue, spark, spec, data_path, args.workdir / "glue",
                             args.workdir / "spark-events", sizes)
        if found is not None:
            car_dir, manifest = Path(found.pop("car_run_dir")), found.pop("car_manifest")
            results["glue"].update(found, spark_start_seconds=round(start_seconds, 1))
            model = sections.run("training (local mode's worker)", inference.prepare_serving_model, car_dir, manifest,
                                 args.workdir / "serving")
        if model is not None:
            predictions = sections.run("predictions", inference.predict_all, model, model.pipeline())
            if predictions is not None:
                results["inference"]["python_accuracy"] = predictions["accuracy"]
                spark_numbers = sections.run("spark transform", inference.bench_spark, spark, model,
                                             predictions["labels"], args.spark_calls)
                results["inference"].update(spark_numbers or {})
    finally:
        spark.stop()
    return model, predictions


# The run the "before and after" table compares with (a results.json of an earlier version).
BASELINE = Path(__file__).resolve().parent / "baseline.json"
BASELINE_NOTE = ("Glue 4.0 setup: PySpark 3.3.4, bundles by the mleap-spark 0.16.0 jar, training CSVs from "
                 "PipelineModel.transform, default JIT")


def write_results(results: dict, out_dir: Path) -> None:
    with_required_keys(results)
    if BASELINE.is_file() and "baseline" not in results:
        results["baseline"] = baseline_of(json.loads(BASELINE.read_text(encoding="utf-8")), BASELINE_NOTE)
    results["targets"] = evaluate_targets(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    (out_dir / "RESULTS.md").write_text(render_markdown(results), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.render_only:
        results = json.loads((args.out_dir / "results.json").read_text(encoding="utf-8"))
        (args.out_dir / "RESULTS.md").write_text(render_markdown(results), encoding="utf-8")
        print(f"[bench] wrote {args.out_dir / 'RESULTS.md'} from {args.out_dir / 'results.json'}")
        return 0
    from localmode import data
    from localmode.aws import isolate_environment

    isolate_environment()  # nothing here may reach AWS: fake credentials, no endpoint overrides
    spec = data.load_spec()
    try:
        data_path = data.resolve(args.data, spec)
    except data.DataUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    earlier_tests = None
    if args.tests_from is not None:  # read now: --tests-from bench/results.json is about to be rewritten
        earlier = json.loads(args.tests_from.read_text(encoding="utf-8"))
        if (earlier.get("tests") or {}).get("seconds") is None:
            print(f"error: {args.tests_from} holds no test-suite measurement", file=sys.stderr)
            return 2
        kept = {k: v for k, v in earlier["tests"].items() if k != "log"}  # that run's log is in a wiped workdir
        earlier_tests = {**kept, "source": f"measured by the run of {earlier.get('timestamp')} (reused with --tests-from)"}
    args.workdir = args.workdir.resolve()
    marker = args.workdir / ".bench-workdir"
    if args.workdir.exists() and any(args.workdir.iterdir()) and not marker.exists():
        print(f"error: {args.workdir} is not empty and was not made by the benchmark; choose another --workdir",
              file=sys.stderr)
        return 2
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    marker.touch()
    results: dict = {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "data": {"path": str(data_path), "sha256_ok": None},
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "inference": {}, "glue": {}, "local": {}, "tests": {},
    }
    results["data"]["sha256_ok"] = data.sha256_of(data_path) == spec["source"]["sha256"]
    sections = Sections(results)

    model, predictions = spark_sections(sections, args, data_path, spec)
    inference_results = results["inference"]
    if model is not None:
        from bench import inference

        inference_results.update(test_rows=len(model.test_rows), training=model.training)
        pipeline = model.pipeline()
        inference_results.update(sections.run("python in-process", inference.bench_python, model, pipeline,
                                              args.repeat) or {})
        if predictions is not None:
            inference_results.update(sections.run("jvm (MLeap runtime 0.20.0)", inference.bench_jvm, model,
                                                  predictions["labels"], args.jvm_iterations) or {})
        inference_results.update(sections.run("http endpoint", inference.bench_http, pipeline, model.test_lines,
                                              args.http_clients, args.http_rounds) or {})
    speedup = ratio(inference_results.get("spark_p50_us"), inference_results.get("python_p50_us"))
    inference_results["speedup_vs_spark"] = round(speedup, 1) if speedup is not None else None

    if not args.skip_local:
        from bench.local import run_local_pipeline

        local = sections.run("local pipeline", run_local_pipeline, args.workdir / "local", data_path)
        if local is not None:
            results["local"].update(local, log=_relative(local["log"]), report=_relative(local.get("report", "")))

    if args.tests_from is not None:
        results["tests"].update(earlier_tests)
    elif args.tests_seconds is not None:
        results["tests"].update(seconds=args.tests_seconds, source="given with --tests-seconds")
    elif args.skip_tests:
        results["tests"].update(seconds=None, source="skipped (--skip-tests)")
    else:
        from bench.suite import run_test_suite

        # Written first without the suite's time: the suite checks these files, and a suite that
        # hangs or is interrupted must not cost the numbers already measured.
        results["tests"].update(seconds=None, source="running")
        write_results(results, args.out_dir)
        suite = sections.run("test suite", run_test_suite, args.workdir / "pytest.log")
        if suite is not None:
            results["tests"].update(suite, log=_relative(suite["log"]))
        else:
            results["tests"]["source"] = "failed to run"

    results["machine"]["load_average_at_end"] = load_average()
    write_results(results, args.out_dir)
    print(f"[bench] wrote {args.out_dir / 'results.json'} and {args.out_dir / 'RESULTS.md'}", flush=True)
    for target in results["targets"]:
        status = "not measured" if target["met"] is None else "met" if target["met"] else "MISSED"
        print(f"[bench]   {target['description']}: {target['value']} ({target['target']}) {status}")
    return 1 if sections.failed else 0
