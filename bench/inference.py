"""Inference one record at a time on the held-out rows of a real Glue run.

The model is what local mode would serve: the run's two MLeap bundles, and an XGBoost
model trained by local mode's own training worker on the run's train/validation CSVs
from the CreateTrainingJob request the real prepare_training Lambda builds; the three
containers are configured by the real create_model Lambda's container definitions.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from localmode.run_artifacts import read_csv_parts, unpack
from localmode.serving.containers import TEXT_CSV, InferencePipeline, pipeline_from_definitions
from localmode.serving.latency import http_load, pipeline_latency, run_clients, summarize
from localmode.serving.server import EndpointNotFound, ResolvedEndpoint, start_server

REGION = "us-east-1"
ENDPOINT_NAME = "bench-endpoint"
BENCH_BUCKET = "bench-artifacts"


@dataclass
class ServingModel:
    run_dir: Path
    manifest: dict
    definitions: list[dict]  # CreateModel's Containers, as the create_model Lambda writes them
    model_dirs: list[Path]  # each container's extracted model.tar.gz, in the same order
    schema_paths: dict[str, Path]
    test_rows: list[list[str]]  # feature strings in spec order, then the true label
    training: dict = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    @property
    def test_lines(self) -> list[str]:
        return [",".join(row[:-1]) for row in self.test_rows]

    def pipeline(self) -> InferencePipeline:
        return pipeline_from_definitions(self.definitions, self.model_dirs)


def s3_manifest(manifest: dict, run_dir: Path, run_prefix: str) -> dict:
    """The manifest of a local run with its `uris` as they would read under an S3 run prefix."""
    uris = {}
    for name, uri in manifest["uris"].items():
        relative = os.path.relpath(uri, run_dir).replace(os.sep, "/")
        uris[name] = run_prefix + relative + ("/" if uri.endswith("/") else "")
    return {**manifest, "uris": uris}


def prepare_serving_model(run_dir: Path, manifest: dict, workdir: Path) -> ServingModel:
    """Train like local mode and configure the containers like the pipeline, on moto's S3."""
    from moto import mock_aws

    from localmode.aws import isolate_environment
    from localmode.lambdas import LocalLambdas
    from localmode.sfn import TaskRequest
    from localmode.stack import LocalStack
    from localmode.workers import s3util
    from localmode.workers.training import TrainingWorker

    import boto3

    stack = LocalStack.from_file(region=REGION)
    environments = {folder: stack.function_environment(logical_id)
                    for logical_id, folder in stack.functions().items() if folder in ("prepare_training", "create_model")}
    lambdas = LocalLambdas(region=REGION, environments=environments)
    prepare_training, create_model = lambdas.module("prepare_training"), lambdas.module("create_model")
    run_id = manifest["run_id"]
    run_prefix = f"s3://{BENCH_BUCKET}/runs/{run_id}/"
    isolate_environment(REGION)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BENCH_BUCKET)
        s3util.upload_tree(s3, run_dir, run_prefix)
        remote = s3_manifest(manifest, run_dir, run_prefix)
        with mock.patch.dict(os.environ, environments["prepare_training"]):
            settings = prepare_training.training_settings_from_env()
        request = prepare_training.training_request(f"{run_id}-train", remote, settings)
        worker = TrainingWorker(workdir / "training", REGION, stack.account,
                                role_arn=stack.role_assumable_by("sagemaker.amazonaws.com"))
        started = time.monotonic()
        job = worker(TaskRequest(state_name="TrainXGBoost", resource="arn:aws:states:::sagemaker:createTrainingJob.sync",
                                 parameters=request, execution_arn=f"arn:aws:states:{REGION}:{stack.account}:execution:bench:{run_id}",
                                 execution_name=run_id, state_machine_arn=f"arn:aws:states:{REGION}:{stack.account}:stateMachine:bench"))
        training_seconds = time.monotonic() - started
        artifacts = job["ModelArtifacts"]["S3ModelArtifacts"]
        [tarball] = s3util.download(s3, artifacts, workdir / "xgboost-archive")
        env = environments["create_model"]
        # The local copies stand in for the models/<run id>/ copies create_model makes on AWS.
        model_files = {"preprocess": remote["uris"]["preprocess_model"], "xgboost": artifacts,
                       "postprocess": remote["uris"]["postprocess_model"]}
        definitions = create_model.pipeline_containers(
            model_files,
            create_model.schema_env_value(s3, remote["uris"]["preprocess_schema"]),
            create_model.schema_env_value(s3, remote["uris"]["postprocess_schema"]),
            env["SPARKML_IMAGE_URI"], env["XGBOOST_IMAGE_URI"])
    local_dirs = {
        remote["uris"]["preprocess_model"]: unpack(run_dir / "model" / "preprocess" / "model.tar.gz", workdir / "preprocess"),
        artifacts: unpack(tarball, workdir / "xgboost"),
        remote["uris"]["postprocess_model"]: unpack(run_dir / "model" / "postprocess" / "model.tar.gz", workdir / "postprocess"),
    }
    return ServingModel(
        run_dir=run_dir, manifest=manifest, definitions=definitions,
        model_dirs=[local_dirs[d["ModelDataUrl"]] for d in definitions],
        schema_paths={name: run_dir / "model" / name / "schema.json" for name in ("preprocess", "postprocess")},
        test_rows=read_csv_parts(run_dir / "data" / "test"),
        training={"seconds": round(training_seconds, 2), "hyperparameters": request["HyperParameters"],
                  "metrics": {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}},
    )


# --- (a) in-process --------------------------------------------------------------------

def predict_all(model: ServingModel, pipeline: InferencePipeline) -> dict:
    """The pipeline's label for every held-out row, and its accuracy against the true labels."""
    labels = [pipeline.predict_csv_line(line).strip() for line in model.test_lines]
    correct = sum(label == row[-1] for label, row in zip(labels, model.test_rows))
    return {"labels": labels, "accuracy": round(correct / len(labels), 4)}


def bench_python(model: ServingModel, pipeline: InferencePipeline, repeat: int) -> dict:
    stages = pipeline_latency(pipeline, model.test_lines, repeat=repeat)
    whole = stages.pop("pipeline")
    mleap = [s for name, s in stages.items() if "sparkml-serving" in name]
    return {
        "python_p50_us": whole["p50_us"], "python_p99_us": whole["p99_us"], "python_calls": whole["calls"],
        "python_stages": stages,
        "python_mleap_p50_us": round(sum(s["p50_us"] for s in mleap), 2),
        "python_mleap_p99_us": round(sum(s["p99_us"] for s in mleap), 2),
    }


# --- (b) the MLeap runtime on the JVM -----------------------------------------------------

def bench_jvm(model: ServingModel, predictions: list[str], iterations: int) -> dict:
    """Preprocess and postprocess bundles, each single-row transform timed inside the JVM."""
    from localmode.serving.jvm_runtime import MleapJvmRuntime

    runtime = MleapJvmRuntime()
    names = model.feature_names
    pre_rows = [dict(zip(names, row[:-1])) for row in model.test_rows]
    labels = model.manifest["label_values"]
    post_input = json.loads(model.schema_paths["postprocess"].read_text())["input"][0]["name"]
    post_rows = [{post_input: float(labels.index(p))} for p in predictions]
    pre = runtime.bench(model.model_dirs[0], model.schema_paths["preprocess"], pre_rows, iterations)
    post = runtime.bench(model.model_dirs[-1], model.schema_paths["postprocess"], post_rows, iterations)
    return {
        "jvm_p50_us": round(pre["p50_us"] + post["p50_us"], 2),
        "jvm_p99_us": round(pre["p99_us"] + post["p99_us"], 2),
        "jvm_calls": pre["calls"] + post["calls"],
        "jvm_stages": {"preprocess": pre, "postprocess": post},
        "jvm_includes": "preprocess + postprocess MLeap transforms of ready one-row LeapFrames; no XGBoost, "
                        "no request parsing or response formatting, no HTTP",
    }


# --- (c) Spark ---------------------------------------------------------------------------

def bench_spark(spark, model: ServingModel, predictions: list[str], calls: int, warmup: int = 10) -> dict:
    """One record per call: one-row pandas -> Arrow DataFrame -> preprocess PipelineModel.transform -> collect
    -> XGBoost -> one-row DataFrame -> postprocess transform -> collect. The PipelineModels are built by the
    Glue job's own functions, so they are the ones its bundles were serialized from."""
    import numpy as np
    import pandas as pd
    import xgboost

    from localmode.serving.trees import iteration_range
    from preprocessing.features import build_preprocess_model
    from preprocessing.labels import build_postprocess_model

    spec = model.manifest["spec"]
    names = model.feature_names
    schemas = {name: json.loads(path.read_text()) for name, path in model.schema_paths.items()}
    features_col = schemas["preprocess"]["output"]["name"]
    post_input = schemas["postprocess"]["input"][0]["name"]
    post_output = schemas["postprocess"]["output"]["name"]
    sample = spark.createDataFrame(pd.DataFrame([row[:-1] for row in model.test_rows], columns=names))
    preprocess = build_preprocess_model(spark, spec, sample, learned=model.manifest.get("learned"))
    postprocess = build_postprocess_model(spec, model.manifest["label_values"])
    booster = xgboost.Booster()
    booster.load_model(str(model.model_dirs[1] / "xgboost-model"))
    booster.set_param("nthread", 1)
    rounds = iteration_range(booster)

    def predict(row: list[str]) -> tuple[str, list[int]]:
        marks = [time.perf_counter_ns()]
        frame = spark.createDataFrame(pd.DataFrame([row], columns=names))
        vector = preprocess.transform(frame).select(features_col).collect()[0][0]
        marks.append(time.perf_counter_ns())
        index = booster.inplace_predict(np.asarray([vector.toArray()], dtype=np.float32), iteration_range=rounds)[0]
        marks.append(time.perf_counter_ns())
        frame = spark.createDataFrame(pd.DataFrame({post_input: [float(index)]}))
        label = postprocess.transform(frame).select(post_output).collect()[0][0]
        marks.append(time.perf_counter_ns())
        return label, [b - a for a, b in zip(marks, marks[1:])]

    rows = [row[:-1] for row in model.test_rows]
    for row in rows[:warmup]:
        predict(row)
    totals, phases, agree = [], ([], [], []), 0
    for number in range(calls):
        index = number % len(rows)
        label, spans = predict(rows[index])
        agree += label == predictions[index]
        totals.append(sum(spans))
        for bucket, span in zip(phases, spans):
            bucket.append(span)
    whole = summarize(totals)
    return {
        "spark_p50_us": whole["p50_us"], "spark_p99_us": whole["p99_us"], "spark_calls": whole["calls"],
        "spark_phases_p50_us": {
            "preprocess (createDataFrame + transform + collect)": summarize(phases[0])["p50_us"],
            "XGBoost inplace_predict": summarize(phases[1])["p50_us"],
            "postprocess (createDataFrame + transform + collect)": summarize(phases[2])["p50_us"],
        },
        "spark_agreement": round(agree / calls, 4),
    }


# --- (d) the local HTTP endpoint ------------------------------------------------------------

class SingleEndpointResolver:
    """The local server's resolver for one endpoint name served by one pipeline."""

    def __init__(self, name: str, pipeline: InferencePipeline):
        self.name = name
        self.pipeline = pipeline

    def resolve(self, endpoint_name: str) -> ResolvedEndpoint:
        if endpoint_name != self.name:
            raise EndpointNotFound(f"Endpoint {endpoint_name} not found.")
        return ResolvedEndpoint(endpoint_name, "AllTraffic", self.pipeline, REGION)


def boto3_load(url: str, endpoint_name: str, bodies: list[bytes], clients: int, rounds: int) -> dict:
    """InvokeEndpoint through boto3 (sagemaker-runtime) from `clients` threads, each with its own client."""
    import boto3
    from botocore.config import Config

    runtimes = [boto3.session.Session().client(
        "sagemaker-runtime", region_name=REGION, endpoint_url=url,
        config=Config(retries={"max_attempts": 1, "mode": "standard"})) for _ in range(clients)]
    for body in bodies[:20]:  # connections open, botocore's lazy loading done
        for runtime in runtimes:
            runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType=TEXT_CSV, Body=body)["Body"].read()
    def client_for(runtime):
        def client() -> tuple[list[int], list[str]]:
            samples, failures = [], []
            for _ in range(rounds):
                for body in bodies:
                    started = time.perf_counter_ns()
                    try:
                        runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType=TEXT_CSV, Body=body)["Body"].read()
                    except Exception as exc:  # counted and reported, not fatal to the measurement
                        failures.append(type(exc).__name__)
                    samples.append(time.perf_counter_ns() - started)
            return samples, failures
        return client

    return run_clients([client_for(runtime) for runtime in runtimes])


def bench_http(pipeline: InferencePipeline, lines: list[str], clients: int, rounds: int) -> dict:
    server, url = start_server(SingleEndpointResolver(ENDPOINT_NAME, pipeline))
    try:
        bodies = [line.encode("utf-8") for line in lines]
        http_load(url, ENDPOINT_NAME, bodies[:50], clients=1, rounds=1)  # warm-up
        http_runs = [http_load(url, ENDPOINT_NAME, bodies, clients=n, rounds=rounds) for n in (1, clients)]
        boto3_runs = [boto3_load(url, ENDPOINT_NAME, bodies, clients=n, rounds=rounds) for n in (1, clients)]
    finally:
        server.stop()
    failures = sum(r["failures"] for r in http_runs + boto3_runs)
    if failures:
        raise RuntimeError(f"{failures} HTTP requests failed during the load test")
    single, several = http_runs
    boto_single, boto_several = boto3_runs
    return {
        "http_p50_ms": single["p50_ms"], "http_p99_ms": single["p99_ms"], "http_rps": several["rps"],
        "http_clients": clients, "http_concurrent_p50_ms": several["p50_ms"], "http_single_client_rps": single["rps"],
        "boto3_http_p50_ms": boto_single["p50_ms"], "boto3_http_p99_ms": boto_single["p99_ms"],
        "boto3_http_rps": boto_several["rps"],
        "http_runs": http_runs, "boto3_http_runs": boto3_runs,
    }
