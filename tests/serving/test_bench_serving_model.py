"""`make bench` serves the model the way the pipeline configures it.

The benchmark builds its inference pipeline from `create_model`'s own container
definitions; when that function's signature moved, every inference benchmark
went missing from RESULTS.md without a failing test. This runs the benchmark's
preparation on the session's real Glue run and checks the pipeline it yields.
"""
from __future__ import annotations

from bench.inference import predict_all, prepare_serving_model


def test_the_benchmarks_pipeline_is_the_one_create_model_configures(serving_artifacts, tmp_path):
    model = prepare_serving_model(serving_artifacts.run_dir, serving_artifacts.manifest, tmp_path)
    images = [definition["Image"] for definition in model.definitions]
    assert len(images) == 3 and images[0] == images[2] != images[1]
    assert all(directory.is_dir() for directory in model.model_dirs)
    answered = predict_all(model, model.pipeline())
    label_values = set(serving_artifacts.manifest["label_values"])
    assert set(answered["labels"]) <= label_values
    assert answered["accuracy"] >= 0.9
