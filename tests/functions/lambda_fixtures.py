"""Builders shared by the Lambda unit tests (a run, its manifest, schemas)."""
from __future__ import annotations

import json
from contextlib import contextmanager

import boto3
from botocore.stub import Stubber

REGION = "us-east-1"
ACCOUNT = "123456789012"
ARTIFACTS = "artifacts-bucket"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution"
TABLE = "pipeline-state"


@contextmanager
def stubbed_client(service: str):
    """A real botocore client whose answers the test scripts; every scripted answer must be used."""
    client = boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def make_run(run_id: str = "car-0123456789ab", started_at: str = "2025-01-02T03:04:05.678Z") -> dict:
    return {
        "run_id": run_id,
        "execution_arn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:pipeline:{run_id}",
        "started_at": started_at,
        "input_uri": "s3://input-bucket/input/car.data",
        "run_prefix": f"s3://{ARTIFACTS}/runs/{run_id}/",
    }


def run_uris(prefix: str, classification: bool = True) -> dict:
    """Where the Glue job writes a run's files; a regression run has no postprocess bundle."""
    return {
        "train": prefix + "data/train/",
        "validation": prefix + "data/validation/",
        "test": prefix + "data/test/",
        "preprocess_model": prefix + "model/preprocess/model.tar.gz",
        "preprocess_schema": prefix + "model/preprocess/schema.json",
        "postprocess_model": prefix + "model/postprocess/model.tar.gz" if classification else None,
        "postprocess_schema": prefix + "model/postprocess/schema.json" if classification else None,
        "training_output": prefix + "training/",
    }


def _features(spec: dict) -> list[dict]:
    """The model's input columns: the file's columns without the label and ignored ones."""
    return [c for c in spec["columns"] if c["name"] != spec["label"] and c["type"] != "ignore"]


def make_manifest(spec: dict, run: dict) -> dict:
    """The manifest the Glue job writes for a spec whose categories and classes are all listed (car)."""
    prefix = run["run_prefix"]
    label = next(c for c in spec["columns"] if c["name"] == spec["label"])
    labels = label["values"]
    features = _features(spec)
    return {
        "run_id": run["run_id"],
        "dataset": spec["name"],
        "spec": spec,
        "problem_type": "binary" if len(labels) == 2 else "multiclass",
        "label_name": label["name"],
        "label_values": labels,
        "num_class": len(labels),
        "binary_threshold": 0.5 if len(labels) == 2 else None,
        "feature_names": [c["name"] for c in features],
        "feature_types": {c["name"]: c["type"] for c in features},
        "feature_width": sum(len(c["values"]) for c in features),
        "quality_gate": {"metric": "accuracy", "threshold": None, "higher_is_better": True},
        "rows": {"total": 1728, "train": 1210, "validation": 259, "test": 259},
        "uris": run_uris(prefix),
        "versions": {"spark": "3.5.6", "mleap": "0.20.0", "python": "3.11"},
        "seed": 42,
        "split": {"train": 0.7, "validation": 0.15, "test": 0.15},
    }


def schemas(spec: dict) -> tuple[dict, dict]:
    preprocess = {
        "input": [{"name": c["name"], "type": "string" if c["type"] == "categorical" else "double"}
                  for c in _features(spec)],
        "output": {"name": "features", "type": "double", "struct": "vector"},
    }
    postprocess = {"input": [{"name": "label", "type": "double"}], "output": {"name": "label_string", "type": "string"}}
    return preprocess, postprocess


def put(s3, uri: str, body) -> None:
    bucket, key = uri[len("s3://"):].split("/", 1)
    data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
    s3.put_object(Bucket=bucket, Key=key, Body=data)


# ---- issue 11: the manifest as the contract with the Glue job defines it (ISSUE11 contract, "The manifest")

CONTRACT_DATASETS = {
    "multiclass": {
        "dataset": "car", "label_name": "class", "label_values": ["unacc", "acc", "good", "vgood"],
        "features": {"buying": "categorical", "maint": "categorical", "doors": "categorical",
                     "persons": "categorical", "lug_boot": "categorical", "safety": "categorical"},
        "quality_gate": {"metric": "accuracy", "threshold": None, "higher_is_better": True},
    },
    "binary": {
        "dataset": "breast-cancer", "label_name": "diagnosis", "label_values": ["benign", "malignant"],
        "features": {"mean_radius": "numeric", "mean_texture": "numeric", "site": "categorical"},
        "quality_gate": {"metric": "roc_auc", "threshold": 0.9, "higher_is_better": True},
    },
    "regression": {
        "dataset": "diabetes", "label_name": "progression", "label_values": None,
        "features": {"age": "numeric", "sex": "categorical", "bmi": "numeric"},
        "quality_gate": {"metric": "r2", "threshold": None, "higher_is_better": True},
    },
}


def contract_manifest(kind: str, run: dict, **changes) -> dict:
    """A manifest with every field the pipeline side reads, for one problem type (`kind`)."""
    problem_type = kind
    prefix = run["run_prefix"]
    shape = CONTRACT_DATASETS[problem_type]
    labels = shape["label_values"]
    classification = problem_type != "regression"
    manifest = {
        "run_id": run["run_id"],
        "dataset": shape["dataset"],
        "spec": {"name": shape["dataset"], "label": shape["label_name"],
                 "columns": [{"name": n, "type": t} for n, t in shape["features"].items()]
                 + [{"name": shape["label_name"], "type": "categorical" if classification else "numeric"}]},
        "problem_type": problem_type,
        "label_name": shape["label_name"],
        "label_values": labels,
        "num_class": len(labels) if classification else None,
        "binary_threshold": 0.5 if problem_type == "binary" else None,
        "feature_names": list(shape["features"]),
        "feature_types": dict(shape["features"]),
        "feature_width": 12,
        "quality_gate": dict(shape["quality_gate"]),
        "rows": {"total": 1000, "train": 700, "validation": 150, "test": 150},
        "uris": run_uris(prefix, classification),
        "schemas": {},
        "versions": {"spark": "3.5.6", "mleap": "0.20.0", "python": "3.11"},
        "seed": 42,
        "split": {"train": 0.7, "validation": 0.15, "test": 0.15},
    }
    manifest.update(changes)
    return manifest


def dataset_answer(name: str = "car", endpoint: str = "car-evaluation-prod") -> dict:
    """What ResolveDataset hands to the later states."""
    return {"name": name, "spec_uri": f"s3://{ARTIFACTS}/deps/datasets/{name}.json", "production_endpoint": endpoint}
