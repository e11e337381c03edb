"""In-process latency, one record at a time: printed for the report, not asserted
(the machine is shared; `make bench` is where the numbers are recorded)."""
from __future__ import annotations

import numpy as np
import pytest
import xgboost

from localmode.serving.latency import pipeline_latency, time_calls

pytestmark = pytest.mark.spark


def test_pipeline_and_stage_latency_is_printed(pipeline, serving_artifacts, capsys):
    results = pipeline_latency(pipeline, serving_artifacts.test_lines, repeat=5)
    with capsys.disabled():
        print("\n[serving] in-process latency per record (p50 / p99 us):")
        for stage, numbers in results.items():
            print(f"[serving]   {stage:32s} {numbers['p50_us']:8.1f} / {numbers['p99_us']:8.1f}  ({numbers['calls']} calls)")
    assert set(results) == {"pipeline", "container-1 (sparkml-serving)", "container-2 (xgboost)",
                            "container-3 (sparkml-serving)"}
    assert all(numbers["calls"] == 5 * len(serving_artifacts.test_lines) for numbers in results.values())


def test_xgboost_prediction_options_are_printed(containers, serving_artifacts, capsys):
    """What one row costs with xgboost's own entry points versus the compiled trees."""
    preprocess, xgboost_container, _ = containers
    rows = [[float(v) for v in preprocess.invoke(line.encode(), "text/csv", None).body.split(b",")]
            for line in serving_artifacts.test_lines]
    booster = xgboost_container.booster
    limit = (0, booster.best_iteration + 1)
    arrays = [np.asarray([row], dtype=np.float32) for row in rows]
    options = {
        "Booster.predict(DMatrix)": time_calls(lambda a: booster.predict(xgboost.DMatrix(a), iteration_range=limit),
                                               arrays, repeat=1),
        "Booster.inplace_predict, nthread=1": time_calls(
            lambda a: booster.inplace_predict(a, iteration_range=limit), arrays, repeat=1),
        "compiled trees (localmode)": time_calls(xgboost_container.forest.predict_row, rows, repeat=5),
    }
    with capsys.disabled():
        print(f"\n[serving] one XGBoost row, {xgboost_container.forest._forest.n_trees} trees (p50 / p99 us):")
        for name, numbers in options.items():
            print(f"[serving]   {name:36s} {numbers['p50_us']:8.1f} / {numbers['p99_us']:8.1f}")
    assert [xgboost_container.forest.predict_row(r) for r in rows[:20]] == \
        booster.inplace_predict(np.asarray(rows[:20], dtype=np.float32), iteration_range=limit).tolist()
