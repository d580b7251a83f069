"""Idempotency keys as clients send them, and the fingerprint of a request (DESIGN §5)."""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from leadgate.domain.errors import BadRequest

MAX_KEY_LENGTH: Final = 255


def checked_key(key: str | None) -> str | None:
    """The key if it is 1-255 printable characters; BAD_REQUEST otherwise; None when absent."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters")
    return key


def fingerprint(operation: str, target: object, request: Any) -> bytes:
    """Same operation, same target, same (validated, normalised) input → same fingerprint."""
    canonical = orjson.dumps(
        {"operation": operation, "target": target, "input": request},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        default=str,
    )
    return hashlib.sha256(canonical).digest()
