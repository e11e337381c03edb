"""The run manifest written last by the Glue job: reading and checking it.

Every function after preprocessing learns the dataset's shape (labels, feature
columns, data and model locations) from here, never from constants.
"""
from __future__ import annotations

import json

from botocore.exceptions import ClientError

from pipeline_common.errors import InvalidEvent, ManifestInvalid, ManifestMissing
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


def validate_manifest(manifest, uri: str, run_id: str | None = None) -> None:
    if not isinstance(manifest, dict):
        _fail(uri, "is not a JSON object")
    if run_id is not None and manifest.get("run_id") != run_id:
        _fail(uri, f"run_id is {manifest.get('run_id')!r}, expected {run_id!r}")

    labels = manifest.get("label_values")
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(label, str) and label for label in labels)
        or len(set(labels)) != len(labels)
    ):
        _fail(uri, "label_values must list at least two distinct non-empty strings")
    num_class = manifest.get("num_class")
    if not isinstance(num_class, int) or isinstance(num_class, bool) or num_class != len(labels):
        _fail(uri, f"num_class is {num_class!r} but label_values has {len(labels)} entries")
    width = manifest.get("feature_width")
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        _fail(uri, f"feature_width must be a positive integer, got {width!r}")

    features = (manifest.get("spec") or {}).get("features") if isinstance(manifest.get("spec"), dict) else None
    if not isinstance(features, list) or not features or not all(
        isinstance(f, dict) and isinstance(f.get("name"), str) and f["name"] for f in features
    ):
        _fail(uri, "spec.features must list the feature columns with their names")

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
        try:
            parse_s3_uri(uris.get(name))
        except ValueError:
            _fail(uri, f"uris.{name} must be an s3:// URI, got {uris.get(name)!r}")


def feature_names(manifest: dict) -> list[str]:
    return [feature["name"] for feature in manifest["spec"]["features"]]
