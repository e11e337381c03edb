"""Moving run artifacts between moto's S3 and local directories."""
from __future__ import annotations

from pathlib import Path


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` with the key as stored (a URL parser would cut it at "?" or "#")."""
    bucket, _, key = uri[len("s3://"):].partition("/") if uri.startswith("s3://") else ("", "", "")
    if not bucket:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return bucket, key.lstrip("/")


def download(s3, uri: str, target: Path) -> list[Path]:
    """Download an object, or every object under a prefix, into `target` (a directory). Returns the files."""
    bucket, key = split_uri(uri)
    target.mkdir(parents=True, exist_ok=True)
    if key and not key.endswith("/"):
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError:
            pass
        else:
            path = target / Path(key).name
            s3.download_file(bucket, key, str(path))
            return [path]
        key += "/"
    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(key):]
            if not relative or relative.endswith("/"):
                continue
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(path))
            files.append(path)
    if not files:
        raise FileNotFoundError(f"nothing at {uri}")
    return files


def upload_tree(s3, source: Path, uri_prefix: str, skip: set[str] = frozenset()) -> list[str]:
    """Upload every file under `source` to `uri_prefix` + its relative path. Returns the URIs."""
    bucket, prefix = split_uri(uri_prefix)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    uris = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source).as_posix()
        if relative in skip:
            continue
        s3.upload_file(str(path), bucket, prefix + relative)
        uris.append(f"s3://{bucket}/{prefix}{relative}")
    return uris
