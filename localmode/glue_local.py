"""`python -m localmode glue --data CSV --out DIR`: the Glue job (glue/preprocessing, whose
entry script on AWS is glue/preprocess.py) on local PySpark, the same Spark as Glue 5.1 and nothing
added to it (the job writes its MLeap bundles itself). It runs the job's run() in-process, with the
package on sys.path as the job's --extra-py-files zip puts it on Glue's (localmode/__init__.py)."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from localmode import data
from preprocessing.errors import InvalidInputData
from preprocessing.job import run
from preprocessing.options import JobOptions, load_spec


# Below this input size the local JVM compiles with C1 only (-XX:TieredStopAtLevel=1). Measured on
# car.data (1,728 rows) in a fresh JVM: the job's JVM CPU fell from 25 s to 13.5 s, of which C2's
# compiler threads had been 13 s; Spark's generated code never runs long enough to repay C2 there.
# At 1,000,000 rows C1-only code costs about 2.5x the task CPU, so large inputs keep the default.
C1_ONLY_BELOW_BYTES = 64 * 1024 * 1024
C1_ONLY = "-XX:TieredStopAtLevel=1"


def jit_options(input_bytes: int | None) -> str:
    """Extra driver JVM options for a session that will mostly process `input_bytes` (None: unknown)."""
    return C1_ONLY if input_bytes is not None and input_bytes < C1_ONLY_BELOW_BYTES else ""


def input_size(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def build_spark_session(app_name: str = "glue-local", cores: int = 2, shuffle_partitions: int = 4,
                        input_bytes: int | None = None):
    """A small local SparkSession like Glue's. Reused if one is already running (its settings
    cannot change after start: whoever starts first should start it through here). `input_bytes`
    picks the JIT settings (jit_options) when this call starts the JVM."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    if jit_options(input_bytes):
        builder = builder.config("spark.driver.extraJavaOptions", jit_options(input_bytes))
    spark = (
        builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.driver.memory", "2g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmode glue", description=__doc__)
    parser.add_argument("--data", help="input CSV file or directory (default: $CAR_DATA, else the verified download)")
    parser.add_argument("--out", required=True, help="run directory to create (the layout of s3://.../runs/<id>/)")
    parser.add_argument("--spec", default=str(data.DEFAULT_SPEC), help="dataset spec (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--run-id", help="run id recorded in the manifest (default: local-<UTC time>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    spec = load_spec(args.spec)
    try:
        input_path = data.resolve(args.data, spec) if not (args.data and Path(args.data).is_dir()) else Path(args.data)
    except data.DataUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_id = args.run_id or "local-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    options = JobOptions(input=str(input_path), output=args.out, run_id=run_id, spec=spec,
                         seed=args.seed, spec_source=args.spec)
    started = time.monotonic()
    spark = build_spark_session(input_bytes=input_size(input_path))
    try:
        manifest = run(spark, options)
    except InvalidInputData as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    print(f"rows {manifest['rows']} in {time.monotonic() - started:.1f}s (job {manifest['seconds']}s)", file=sys.stderr)
    print(manifest["uris"]["manifest"])
    return 0
