"""The model registry: one SageMaker model package group per production
endpoint, one package version per run that passed QA.

A version's status is the person's decision: PendingManualApproval until
they decide, then Approved or Rejected with the reason as its
ApprovalDescription. Production is only ever deployed from an Approved
version (deploy_production checks), so what serves is always a registered,
approved version, and a rollback is a deployment of an earlier one.

Lineage travels as the package's CustomerMetadataProperties. SageMaker
limits them (botocore's model of CreateModelPackage, CustomerMetadataMap):
at most 50 entries, keys of 1-128 and values of 1-256 characters from
letters, separators, numbers and `_ . : / = + - @` only. The run's values
(an S3 key above all) may hold anything, so each value is written with the
other characters (and `=`, `@`) as `=XX` escapes of their UTF-8 bytes and, if still too
long, cut with the sha256 of the full value appended; the exact lineage is
also a JSON document in S3 (`lineage_uri`).
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

from pipeline_common.s3 import object_listed
from pipeline_common.sagemaker import describe_or_none

# Keyed by the production endpoint: one group per endpoint (per dataset once
# each dataset has its own endpoint), so its versions are the history of what
# that endpoint served or was asked to serve. A group name follows the same
# rule as an endpoint name ([a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}), so the name is
# the endpoint's own.
def model_package_group_name(production_endpoint: str) -> str:
    return production_endpoint


PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"

MAX_METADATA_ENTRIES = 50
MAX_METADATA_KEY = 128
MAX_METADATA_VALUE = 256
# UpdateModelPackage.ApprovalDescription (botocore: ApprovalDescription, max 1024).
MAX_APPROVAL_DESCRIPTION = 1024
# CreateModelPackage.ModelPackageDescription (EntityDescription, max 1024).
MAX_PACKAGE_DESCRIPTION = 1024
# CreateModelPackage.ClientToken: [a-zA-Z0-9-]+, at most 36 characters.
MAX_CLIENT_TOKEN = 36
_ALLOWED_PUNCTUATION = set("_.:/=+-@")
_HASH_SUFFIX = "@sha256="


def metadata_char_allowed(char: str) -> bool:
    """CustomerMetadataValue's pattern: \\p{L}, \\p{Z}, \\p{N} and `_ . : / = + - @`.
    `=` starts an escape and `@` the hash suffix of a cut value, so a literal `=` or `@` is
    escaped too: a value that held "@sha256=" would otherwise read back cut there."""
    if char in ("=", "@"):
        return False
    return char in _ALLOWED_PUNCTUATION or unicodedata.category(char)[0] in ("L", "Z", "N")


def metadata_value(text, limit: int = MAX_METADATA_VALUE) -> str:
    """`text` in the characters SageMaker accepts, at most `limit` long, never empty."""
    text = str(text)
    escaped = "".join(c if metadata_char_allowed(c) else "".join(f"={b:02X}" for b in c.encode("utf-8")) for c in text)
    if not escaped:
        return "-"
    if len(escaped) <= limit:
        return escaped
    digest = _HASH_SUFFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    head = escaped[: limit - len(digest)]
    # Never cut an escape in half.
    cut = head.rfind("=", max(0, len(head) - 2))
    if cut != -1:
        head = head[:cut]
    return head + digest


def metadata_text(value: str) -> str:
    """The text `metadata_value` escaped (a cut value keeps its hash suffix)."""
    raw, _, digest = value.partition(_HASH_SUFFIX)
    text = re.sub(r"(?:=[0-9A-F]{2})+",
                  lambda m: bytes.fromhex(m.group(0).replace("=", "")).decode("utf-8", errors="replace"), raw)
    return text + (_HASH_SUFFIX + digest if digest else "")


def customer_metadata(lineage: dict) -> dict[str, str]:
    """CustomerMetadataProperties for a flat lineage dict (None values left out)."""
    entries = {key: metadata_value(value) for key, value in lineage.items() if value is not None and value != ""}
    if len(entries) > MAX_METADATA_ENTRIES:
        raise ValueError(f"{len(entries)} lineage entries; SageMaker keeps at most {MAX_METADATA_ENTRIES}")
    for key in entries:
        if not (1 <= len(key) <= MAX_METADATA_KEY) or not all(metadata_char_allowed(c) for c in key):
            raise ValueError(f"lineage key {key!r} is not a valid CustomerMetadataProperties key")
    return entries


def client_token(run_id: str) -> str:
    """CreateModelPackage's idempotency token for a run: a retry of the same
    registration returns the package the first call created."""
    return "reg-" + hashlib.sha256(run_id.encode("utf-8")).hexdigest()[: MAX_CLIENT_TOKEN - 4]


def comparable_containers(containers: list[dict]) -> list[dict]:
    """What makes two container lists the same model: image, files, environment, in order."""
    return [
        {"Image": c.get("Image"), "ModelDataUrl": c.get("ModelDataUrl"), "Environment": c.get("Environment") or {}}
        for c in containers or []
    ]


def one_line(text, limit: int) -> str:
    """A description value: whitespace runs as one space, control characters dropped, cut to `limit`."""
    flat = " ".join(str(text).split())
    flat = "".join(c for c in flat if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class ModelPackageNotFound(Exception):
    """The model package version does not exist."""


class ModelPackageNotApproved(Exception):
    """The version is not Approved: production runs approved versions only."""


class ModelPackageMismatch(Exception):
    """The version belongs to another endpoint's package group."""


class ModelFilesExpired(Exception):
    """A model file of the version is gone (SupersededModelRetentionDays ran out, or it was deleted)."""


def deployable_package(sagemaker, s3, arn: str, endpoint_name: str) -> dict:
    """The version's description if production may run it: it exists, belongs to the endpoint's
    group, is Approved and its model files are all there. Else a named error, before anything changes."""
    package = describe_or_none(sagemaker.describe_model_package, ModelPackageName=arn)
    if package is None:
        raise ModelPackageNotFound(f"model package {arn} does not exist")
    group = model_package_group_name(endpoint_name)
    if package.get("ModelPackageGroupName") != group:
        raise ModelPackageMismatch(
            f"model package {arn} belongs to group {package.get('ModelPackageGroupName')}, not {group} of "
            f"production endpoint {endpoint_name}"
        )
    version = package.get("ModelPackageVersion")
    status = package.get("ModelApprovalStatus")
    if status != APPROVED:
        why = f" ({package['ApprovalDescription']})" if package.get("ApprovalDescription") else ""
        raise ModelPackageNotApproved(
            f"version {version} of {group} is {status}{why}; production only runs Approved versions"
        )
    missing = [c["ModelDataUrl"] for c in package["InferenceSpecification"]["Containers"]
               if c.get("ModelDataUrl") and not object_listed(s3, c["ModelDataUrl"])]
    if missing:
        raise ModelFilesExpired(
            f"version {version} of {group} cannot be deployed: its model files are gone ({', '.join(missing)}); "
            "the files of a model that left production are kept SupersededModelRetentionDays. "
            "Production is unchanged."
        )
    return package


def group_versions(sagemaker, group: str) -> list[dict]:
    """Every version's summary in `group`, newest first."""
    found = []
    request = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending"}
    while True:
        page = sagemaker.list_model_packages(**request)
        found.extend(page.get("ModelPackageSummaryList", []))
        if not page.get("NextToken"):
            return found
        request["NextToken"] = page["NextToken"]


# A run's version is among its group's newest: a retried registration comes minutes after the first
# attempt, and a stopped run is cleaned up as it ends.
_RECENT_VERSIONS = 20


def find_registered(sagemaker, group: str, run_id: str) -> dict | None:
    """A recent version of `group` that the run `run_id` registered (its CustomerMetadataProperties say so)."""
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime",
                                              SortOrder="Descending", MaxResults=_RECENT_VERSIONS)
    for summary in summaries.get("ModelPackageSummaryList", []):
        described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        if (described.get("CustomerMetadataProperties") or {}).get("run_id") == run_id:
            return described
    return None
