"""The approval record's key: the link carries an unguessable reference, the
table only its hash, so neither a table read nor a log line yields a usable link."""
from __future__ import annotations

import hashlib
import re
import secrets

# secrets.token_urlsafe(32) -> 43 characters of the URL-safe base64 alphabet.
# Checked with fullmatch: "$" would also accept a trailing newline.
REFERENCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
APPROVAL_PREFIX = "approval#"
PRODUCTION_PREFIX = "production#"


def new_reference() -> str:
    return secrets.token_urlsafe(32)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def new_attempt_id() -> str:
    """Tells one delivery attempt of a decision from any other (a timestamp
    cannot: two requests can share a second)."""
    return secrets.token_hex(16)


def is_wellformed_reference(reference) -> bool:
    return isinstance(reference, str) and REFERENCE_PATTERN.fullmatch(reference) is not None


def approval_key(reference: str) -> str:
    return APPROVAL_PREFIX + hashlib.sha256(reference.encode("ascii")).hexdigest()


def production_key(endpoint_name: str) -> str:
    return PRODUCTION_PREFIX + endpoint_name


def format_metric(value, digits: int = 4) -> str:
    """A QA number as the email and the page show it ("n/a" when absent)."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"
