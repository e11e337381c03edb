"""S3 URIs and small S3 reads shared by the functions."""
from __future__ import annotations

import json


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key). Raises ValueError for anything else.

    The key is everything after the bucket, as stored: `s3_uri` does not
    encode it, so "?", "#", "%" and spaces are part of the key (a URL parser
    would cut the key at "?" or "#")."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"not an S3 URI: {uri!r}")
    return bucket, key.lstrip("/")


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def is_missing_object(error) -> bool:
    """True when a botocore ClientError says the object (or bucket) is not there."""
    code = error.response.get("Error", {}).get("Code", "")
    return code in {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


def is_access_denied(error) -> bool:
    return error.response.get("Error", {}).get("Code", "") in {"AccessDenied", "403", "Forbidden"}


def object_listed(s3, uri: str) -> bool:
    """Whether the object exists, asked through ListBucket. S3 answers a GET
    of a missing key with 403 instead of 404 unless the caller's ListBucket
    permission covers that request, which a prefix-conditioned grant may not."""
    bucket, key = parse_s3_uri(uri)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    return any(item["Key"] == key for item in listed)


def get_bytes(s3, uri: str) -> bytes:
    bucket, key = parse_s3_uri(uri)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def get_json(s3, uri: str):
    return json.loads(get_bytes(s3, uri).decode("utf-8"))


def put_json(s3, uri: str, document) -> None:
    bucket, key = parse_s3_uri(uri)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(document, indent=2, sort_keys=True).encode("utf-8"),
        ContentType="application/json",
    )


def list_data_objects(s3, prefix_uri: str) -> list[str]:
    """The data files under a prefix, in key order, skipping the markers Spark
    and Hadoop leave next to them (`_SUCCESS`, `.crc`, directory keys) and
    empty parts."""
    bucket, prefix = parse_s3_uri(prefix_uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    uris = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            name = item["Key"].rsplit("/", 1)[-1]
            if not name or name.startswith(("_", ".")) or item.get("Size", 0) == 0:
                continue
            uris.append(s3_uri(bucket, item["Key"]))
    return sorted(uris)
