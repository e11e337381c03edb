"""The run manifest written last by the Glue job: reading and checking it.

Every function after preprocessing learns the dataset's shape (labels, feature
columns, data and model locations) from here, never from constants.
"""
from __future__ import annotations

import json
import math

from botocore.exceptions import ClientError

from pipeline_common.errors import InvalidEvent, ManifestInvalid, ManifestMissing
from dataset_spec import PROBLEM_TYPES
from pipeline_common.metrics import metric_fits
from pipeline_common.s3 import get_bytes, is_access_denied, is_missing_object, object_listed, parse_s3_uri

MANIFEST_NAME = "manifest.json"
REQUIRED_URIS = (
    "train",
    "validation",
    "test",
    "preprocess_model",
    "preprocess_schema",
    "postprocess_model",
    "postprocess_schema",
    "training_output",
)
POSTPROCESS_URIS = ("postprocess_model", "postprocess_schema")


def manifest_uri_for(run: dict) -> str:
    prefix = run.get("run_prefix") if isinstance(run, dict) else None
    if not isinstance(prefix, str) or not prefix.startswith("s3://"):
        raise InvalidEvent(f"run.run_prefix must be an s3:// URI, got {prefix!r}")
    return prefix if prefix.endswith("/") else prefix + "/"


def load_manifest(s3, uri: str, run_id: str | None = None) -> dict:
    """Read and check the manifest at `uri`; `run_id` (when given) must match."""
    try:
        raw = get_bytes(s3, uri)
    except ClientError as error:
        if is_missing_object(error) or (is_access_denied(error) and not object_listed(s3, uri)):
            raise ManifestMissing(f"no manifest at {uri}: the preprocessing step did not write one") from None
        raise
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestInvalid(f"manifest {uri} is not valid JSON: {error}") from None
    validate_manifest(manifest, uri, run_id)
    return manifest


def _fail(uri: str, problem: str):
    raise ManifestInvalid(f"manifest {uri}: {problem}")


def problem_type(manifest: dict) -> str:
    """binary, multiclass or regression. A manifest written before issue 11
    (every label categorical and listed) has no problem_type: multiclass."""
    return manifest.get("problem_type") or "multiclass"


def is_classification(manifest: dict) -> bool:
    return problem_type(manifest) != "regression"


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def validate_manifest(manifest, uri: str, run_id: str | None = None) -> None:
    if not isinstance(manifest, dict):
        _fail(uri, "is not a JSON object")
    if run_id is not None and manifest.get("run_id") != run_id:
        _fail(uri, f"run_id is {manifest.get('run_id')!r}, expected {run_id!r}")

    kind = manifest.get("problem_type", "multiclass")
    if kind not in PROBLEM_TYPES:
        _fail(uri, f"problem_type must be one of {', '.join(PROBLEM_TYPES)}, got {kind!r}")
    labels = manifest.get("label_values")
    num_class = manifest.get("num_class")
    if kind == "regression":
        if labels is not None or num_class is not None:
            _fail(uri, "a regression manifest has label_values and num_class null (the label is a number)")
    else:
        if (
            not isinstance(labels, list)
            or len(labels) < 2
            or not all(isinstance(label, str) and label for label in labels)
            or len(set(labels)) != len(labels)
        ):
            _fail(uri, "label_values must list at least two distinct non-empty strings")
        if not isinstance(num_class, int) or isinstance(num_class, bool) or num_class != len(labels):
            _fail(uri, f"num_class is {num_class!r} but label_values has {len(labels)} entries")
        if (kind == "binary") != (len(labels) == 2):
            _fail(uri, f"problem_type {kind} does not fit {len(labels)} label values")
    if not _positive_int(manifest.get("feature_width")):
        _fail(uri, f"feature_width must be a positive integer, got {manifest.get('feature_width')!r}")
    try:
        names = feature_names(manifest)
    except (KeyError, TypeError):
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        _fail(uri, "feature_names must list the feature columns in model input order")

    rows = manifest.get("rows")
    if not isinstance(rows, dict):
        _fail(uri, "rows is missing")
    for split in ("train", "validation", "test"):
        count = rows.get(split)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            _fail(uri, f"rows.{split} is {count!r}: the {split} split has no rows")

    uris = manifest.get("uris")
    if not isinstance(uris, dict):
        _fail(uri, "uris is missing")
    for name in REQUIRED_URIS:
        value = uris.get(name)
        if kind == "regression" and name in POSTPROCESS_URIS:
            # Regression has no postprocess container: XGBoost's answer is the number.
            if value is not None:
                _fail(uri, f"uris.{name} must be null for regression, got {value!r}")
            continue
        try:
            parse_s3_uri(value)
        except ValueError:
            _fail(uri, f"uris.{name} must be an s3:// URI, got {value!r}")

    gate = manifest.get("quality_gate")
    if gate is not None:
        if not isinstance(gate, dict) or not isinstance(gate.get("metric"), str):
            _fail(uri, f"quality_gate must be an object naming its metric, got {gate!r}")
        if not metric_fits(gate["metric"], kind):
            _fail(uri, f"quality_gate.metric {gate['metric']!r} does not measure a {kind} model")
        threshold = gate.get("threshold")
        if threshold is not None and (
            not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not math.isfinite(threshold)
        ):
            _fail(uri, f"quality_gate.threshold must be a number or null, got {threshold!r}")


def feature_names(manifest: dict) -> list[str]:
    """The model's input columns, in the order a client sends them."""
    names = manifest.get("feature_names")
    if names is not None:
        return names
    # Manifests written before issue 11 name them only in the spec's features.
    return [feature["name"] for feature in manifest["spec"]["features"]]
