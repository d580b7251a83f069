"""The API key format: `lw_live_` or `lw_test_` and at least 32 url-safe random characters."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Final

_KEY: Final = re.compile(r"lw_(live|test)_[A-Za-z0-9_-]{32,128}")
# Shown in listings so a person can tell keys apart without the secret.
PREFIX_LENGTH: Final = 12


def generate_key(*, live: bool = True) -> str:
    return f"lw_{'live' if live else 'test'}_{secrets.token_urlsafe(32)}"


def is_well_formed(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, if it is one."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
