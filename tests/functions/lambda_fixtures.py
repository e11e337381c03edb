"""Builders shared by the Lambda unit tests (a run, its manifest, schemas)."""
from __future__ import annotations

import json

REGION = "us-east-1"
ACCOUNT = "123456789012"
ARTIFACTS = "artifacts-bucket"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution"
TABLE = "pipeline-state"


def make_run(run_id: str = "car-0123456789ab", started_at: str = "2025-01-02T03:04:05.678Z") -> dict:
    return {
        "run_id": run_id,
        "execution_arn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:pipeline:{run_id}",
        "started_at": started_at,
        "input_uri": "s3://input-bucket/input/car.data",
        "run_prefix": f"s3://{ARTIFACTS}/runs/{run_id}/",
    }


def make_manifest(spec: dict, run: dict) -> dict:
    prefix = run["run_prefix"]
    labels = spec["label"]["values"]
    return {
        "run_id": run["run_id"],
        "spec": spec,
        "label_values": labels,
        "feature_width": sum(len(f["values"]) for f in spec["features"]),
        "num_class": len(labels),
        "rows": {"total": 1728, "train": 1210, "validation": 259, "test": 259},
        "uris": {
            "train": prefix + "data/train/",
            "validation": prefix + "data/validation/",
            "test": prefix + "data/test/",
            "preprocess_model": prefix + "model/preprocess/model.tar.gz",
            "preprocess_schema": prefix + "model/preprocess/schema.json",
            "postprocess_model": prefix + "model/postprocess/model.tar.gz",
            "postprocess_schema": prefix + "model/postprocess/schema.json",
            "training_output": prefix + "training/",
        },
        "versions": {"spark": "3.3.4", "mleap": "0.20.0", "python": "3.10"},
        "seed": 42,
        "split": {"train": 0.7, "validation": 0.15, "test": 0.15},
    }


def schemas(spec: dict) -> tuple[dict, dict]:
    preprocess = {
        "input": [{"name": f["name"], "type": "string"} for f in spec["features"]],
        "output": {"name": "features", "type": "double", "struct": "vector"},
    }
    postprocess = {"input": [{"name": "label", "type": "double"}], "output": {"name": "label_string", "type": "string"}}
    return preprocess, postprocess


def put(s3, uri: str, body) -> None:
    bucket, key = uri[len("s3://"):].split("/", 1)
    data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
    s3.put_object(Bucket=bucket, Key=key, Body=data)
