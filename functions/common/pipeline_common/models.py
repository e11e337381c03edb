"""Where the files a SageMaker model loads live, and the S3 object tag that
decides how long they are kept.

A run's files under `runs/` expire after RunRetentionDays, but an endpoint
loads its model files again whenever SageMaker replaces an instance or rolls
an update back. So create_model copies the three model files to
`models/<run id>/` and the model references those copies. The artifacts
bucket's lifecycle rules read the tag `model-state` under `models/`
(prefix AND tag):

- `candidate`: written by create_model; expires after RunRetentionDays, like
  the run (a model that was never deployed).
- `production`: set by deploy_production on the model it deploys and on the
  model the endpoint serves; no rule expires it.
- `superseded`: a production model that neither serves nor is being deployed
  any more; expires after SupersededModelRetentionDays. S3 counts lifecycle
  days from an object's creation, so superseding copies the object onto
  itself: the period starts when the model stopped serving, not when it was
  trained.
"""
from __future__ import annotations

from urllib.parse import urlencode

from botocore.exceptions import ClientError

from pipeline_common.s3 import is_missing_object, parse_s3_uri, s3_uri

MODELS_PREFIX = "models/"
STATE_TAG = "model-state"
CANDIDATE = "candidate"
PRODUCTION = "production"
SUPERSEDED = "superseded"
# Object metadata on each copy: the run file it was copied from (a retry with
# a different file is a conflict, not a silent overwrite).
SOURCE_METADATA = "source"
SUPERSEDED_AT_METADATA = "superseded-at"


class ModelFileConflict(Exception):
    """models/<run>/... already holds a copy of a different file."""


def model_file_key(run_id: str, part: str) -> str:
    return f"{MODELS_PREFIX}{run_id}/{part}/model.tar.gz"


def is_model_file(uri: str) -> bool:
    try:
        _, key = parse_s3_uri(uri)
    except ValueError:
        return False
    return key.startswith(MODELS_PREFIX)


def state_tagging(state: str) -> str:
    return urlencode({STATE_TAG: state})


def _existing_metadata(s3, bucket: str, key: str) -> dict | None:
    # Listed first: without a ListBucket grant that covers it, a HEAD of a missing key answers 403.
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    if not any(item["Key"] == key for item in listed):
        return None
    return s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})


def keep_model_file(s3, source_uri: str, bucket: str, key: str) -> str:
    """Copy a run's model file to `key` (tagged candidate) unless that copy exists. Returns its URI."""
    existing = _existing_metadata(s3, bucket, key)
    if existing is not None:
        if existing.get(SOURCE_METADATA) != source_uri:
            raise ModelFileConflict(
                f"{s3_uri(bucket, key)} already holds a copy of {existing.get(SOURCE_METADATA, 'another file')}, "
                f"not of {source_uri}"
            )
        return s3_uri(bucket, key)
    source_bucket, source_key = parse_s3_uri(source_uri)
    s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": source_bucket, "Key": source_key},
        MetadataDirective="REPLACE",
        Metadata={SOURCE_METADATA: source_uri},
        TaggingDirective="REPLACE",
        Tagging=state_tagging(CANDIDATE),
    )
    return s3_uri(bucket, key)


def mark_production(s3, uri: str) -> None:
    bucket, key = parse_s3_uri(uri)
    s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": STATE_TAG, "Value": PRODUCTION}]})


def mark_superseded(s3, uri: str, when: str) -> bool:
    """Retag as superseded by copying the object onto itself (a new version, so
    the lifecycle period starts now). False when the object is already gone."""
    bucket, key = parse_s3_uri(uri)
    try:
        metadata = _existing_metadata(s3, bucket, key)
    except ClientError as error:
        if is_missing_object(error):
            return False
        raise
    if metadata is None:
        return False
    s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
        Metadata={**metadata, SUPERSEDED_AT_METADATA: when},
        TaggingDirective="REPLACE",
        Tagging=state_tagging(SUPERSEDED),
    )
    return True
