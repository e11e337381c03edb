"""`make bench` (`python -m bench`): inference one record at a time (in-process Python,
the MLeap 0.20.0 JVM runtime, Spark's PipelineModel.transform, the local HTTP endpoint),
the Glue job at three data sizes, the local pipeline and the test suite, measured in one
run on one machine. Writes bench/results.json and bench/RESULTS.md."""
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
