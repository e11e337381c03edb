"""Fixtures for the local serving tests: ONE run of the real Glue job on the real car
data (its MLeap bundles and schemas), an XGBoost model trained on that run's
train/validation split the way the built-in algorithm is configured, the three
containers built from them exactly as CreateModel would describe them, and the
MLeap runtime 0.20.0 CLI (tests/jvm) as the reference engine."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from localmode.run_artifacts import read_csv_parts, unpack
from localmode.serving.containers import InferencePipeline, SparkMLServingContainer, XGBoostContainer
from localmode.serving.jvm_runtime import JvmRuntimeUnavailable, MleapJvmRuntime
from preprocessing.job import run
from preprocessing.options import JobOptions

# What prepare_training asks the built-in algorithm for (its defaults).
HYPERPARAMETERS = {"objective": "multi:softmax", "num_round": "200", "early_stopping_rounds": "10",
                   "eval_metric": "merror", "eta": "0.2", "max_depth": "6"}


@dataclass
class ServingArtifacts:
    """One Glue run plus a trained model: everything the three containers need."""

    run_dir: Path
    manifest: dict
    preprocess_dir: Path
    postprocess_dir: Path
    xgboost_dir: Path
    preprocess_schema: dict
    postprocess_schema: dict
    test_rows: list[list[str]]  # feature strings in spec order, then the true label

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    @property
    def test_lines(self) -> list[str]:
        return [",".join(row[:-1]) for row in self.test_rows]

    def environments(self) -> list[dict]:
        """Containers[i].Environment as the create_model Lambda writes it."""
        return [
            {"SAGEMAKER_SPARKML_SCHEMA": json.dumps(self.preprocess_schema, separators=(",", ":")),
             "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"},
            {},
            {"SAGEMAKER_SPARKML_SCHEMA": json.dumps(self.postprocess_schema, separators=(",", ":"))},
        ]


def _train(run_dir: Path, manifest: dict, target: Path) -> Path:
    """The built-in algorithm's training, as localmode's training worker does it (same functions)."""
    from localmode.workers.training import plan_training, train_on_channels

    hyperparameters = {**HYPERPARAMETERS, "num_class": str(manifest["num_class"])}
    booster, _ = train_on_channels(plan_training(hyperparameters),
                                   {name: run_dir / "data" / name for name in ("train", "validation")}, nthread=1)
    target.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(target / "xgboost-model"))
    return target


@pytest.fixture(scope="session")
def serving_artifacts(spark, car_data, dataset_spec, tmp_path_factory) -> ServingArtifacts:
    """The real Glue job on the real car data, once per session, and a model trained on its split."""
    root = tmp_path_factory.mktemp("serving")
    run_dir = root / "run"
    options = JobOptions(input=str(car_data), output=str(run_dir), run_id="serving-tests",
                         spec=dataset_spec, seed=42)
    manifest = run(spark, options)
    return ServingArtifacts(
        run_dir=run_dir,
        manifest=manifest,
        preprocess_dir=unpack(run_dir / "model" / "preprocess" / "model.tar.gz", root / "preprocess"),
        postprocess_dir=unpack(run_dir / "model" / "postprocess" / "model.tar.gz", root / "postprocess"),
        xgboost_dir=_train(run_dir, manifest, root / "xgboost"),
        preprocess_schema=json.loads((run_dir / "model" / "preprocess" / "schema.json").read_text()),
        postprocess_schema=json.loads((run_dir / "model" / "postprocess" / "schema.json").read_text()),
        test_rows=read_csv_parts(run_dir / "data" / "test"),
    )


@pytest.fixture(scope="session")
def containers(serving_artifacts):
    pre_env, xgb_env, post_env = serving_artifacts.environments()
    return (
        SparkMLServingContainer(serving_artifacts.preprocess_dir, pre_env),
        XGBoostContainer(serving_artifacts.xgboost_dir, xgb_env),
        SparkMLServingContainer(serving_artifacts.postprocess_dir, post_env),
    )


@pytest.fixture(scope="session")
def pipeline(containers) -> InferencePipeline:
    return InferencePipeline(list(containers))


@pytest.fixture(scope="session")
def jvm_runtime() -> MleapJvmRuntime:
    try:
        return MleapJvmRuntime()
    except JvmRuntimeUnavailable as exc:
        pytest.fail(f"{exc} (the parity tests need the MLeap 0.20.0 runtime CLI)")


@pytest.fixture(scope="session")
def schema_files(serving_artifacts) -> dict[str, Path]:
    return {name: serving_artifacts.run_dir / "model" / name / "schema.json" for name in ("preprocess", "postprocess")}
