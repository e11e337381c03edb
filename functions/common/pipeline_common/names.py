"""Names that must be valid for Step Functions executions and SageMaker
resources at once (SageMaker is the stricter: [a-zA-Z0-9-], <= 63 chars)."""
from __future__ import annotations

import hashlib
import re

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# The longest suffix added to a run id is "-config" (7) and "-train" etc.; 40
# leaves room for it and for a future longer suffix within 63.
MAX_RUN_ID = 40
_HASH_CHARS = 12
_STEM_CHARS = MAX_RUN_ID - _HASH_CHARS - 1


def digest(*parts: str) -> str:
    """A short stable hash of the parts (NUL-separated so ("ab","c") != ("a","bc"))."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:_HASH_CHARS]


def sanitize_stem(text: str) -> str:
    """Lower-case [a-z0-9-] with single hyphens, no leading/trailing hyphen, <= 27 chars."""
    stem = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:_STEM_CHARS].strip("-")
    return stem or "run"


def run_id_from_parts(stem_source: str, *identity: str) -> str:
    return f"{sanitize_stem(stem_source)}-{digest(*identity)}"


def sagemaker_base(run_id: str) -> str:
    """The run id itself when it is already a short, lower-case, valid SageMaker
    name (the normal case: start_run made it; lower case keeps IAM patterns on
    SageMaker's lower-cased ARNs simple), else a sanitized, hashed form (a console
    start with a free-form execution name)."""
    if len(run_id) <= MAX_RUN_ID and SAGEMAKER_NAME.match(run_id) and run_id == run_id.lower():
        return run_id
    return run_id_from_parts(run_id, run_id)


def is_sagemaker_name(name) -> bool:
    return isinstance(name, str) and bool(SAGEMAKER_NAME.match(name))


def resource_names(run_id: str, production_endpoint: str) -> dict:
    """Every SageMaker name a run uses, derived from its run id (= execution
    name) alone, so cleanup can find them from an EventBridge event too."""
    base = sagemaker_base(run_id)
    return {
        "training_job": f"{base}-train",
        "model": f"{base}-model",
        "endpoint_config": f"{base}-config",
        "qa_endpoint": f"{base}-qa",
        "production_endpoint": production_endpoint,
    }
