"""Getting the training data: a path the user gives, or the dataset's
official download, verified against the spec's sha256 and cached."""
from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from localmode import REPO_ROOT

DEFAULT_SPEC = REPO_ROOT / "datasets" / "car.json"
CACHE_DIR = REPO_ROOT / ".cache" / "data"
ENV_VAR = "CAR_DATA"


class DataUnavailable(RuntimeError):
    """The data could not be found locally nor downloaded."""


def load_spec(path: str | os.PathLike = DEFAULT_SPEC) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract(payload: bytes, url: str, member: str) -> bytes:
    if url.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return archive.read(member)
    return payload


def download(spec: dict, cache_dir: Path = CACHE_DIR, timeout: float = 30.0) -> Path:
    """Download the spec's data file into the cache, verify it, return its path."""
    source = spec["source"]
    target = cache_dir / source["member"]
    if target.exists() and sha256_of(target) == source["sha256"]:
        return target
    errors = []
    for url in source["urls"]:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                content = _extract(response.read(), url, source["member"])
        except (urllib.error.URLError, OSError, zipfile.BadZipFile, KeyError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        actual = hashlib.sha256(content).hexdigest()
        if actual != source["sha256"]:
            errors.append(f"{url}: sha256 {actual} does not match the spec's {source['sha256']}")
            continue
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(content)
        partial.replace(target)
        return target
    raise DataUnavailable(
        f"Could not download {source['member']} ({'; '.join(errors)}).\n"
        f"Pass a local copy instead: `make local DATA=/path/to/{source['member']}` "
        f"or set {ENV_VAR}=/path/to/{source['member']} in the environment."
    )


def resolve(path: str | os.PathLike | None = None, spec: dict | None = None) -> Path:
    """The data file to use: an explicit path, else (for the car spec) $CAR_DATA, else the spec's
    verified download."""
    spec = spec or load_spec()
    # $CAR_DATA is car.data: never a default for another dataset's spec.
    chosen = path or (os.environ.get(ENV_VAR) if spec.get("name", "car") == "car" else None)
    if chosen:
        resolved = Path(chosen).expanduser().resolve()
        given_by = "DATA" if path else ENV_VAR
        if resolved.is_dir():
            raise DataUnavailable(f"{resolved} (given by {given_by}) is a directory: pass one data file, e.g. "
                                  f"DATA={resolved / 'data.csv'}")
        if not resolved.is_file():
            raise DataUnavailable(f"Data file {resolved} does not exist (given by {given_by}).")
        return resolved
    if "source" not in spec:
        raise DataUnavailable(
            f"The spec {spec.get('name')!r} names no download source: pass the data file (`make local DATA=... "
            f"SPEC=...`); `python -m localmode datasets build {spec.get('name')}` writes the test datasets.")
    return download(spec)
