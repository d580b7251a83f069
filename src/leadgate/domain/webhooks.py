"""Webhooks per Standard Webhooks: event types, secrets, signatures, safe target URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from leadgate.domain.errors import FieldError, ValidationFailed

EVENT_TYPES: Final = ("lead.created", "lead.updated", "lead.status_changed", "lead.assigned")
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a format prefix, not a secret
MAX_URL_LENGTH: Final = 2048


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>, where
    the key is the secret's base64 part, decoded."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def checked_event_types(types: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(types))
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if not chosen or unknown:
        raise ValidationFailed.single(
            "eventTypes", f"must be a non-empty list of {', '.join(EVENT_TYPES)}"
        )
    return chosen


def checked_url(url: str, *, allow_insecure: bool) -> tuple[str, str]:
    """The URL and its host, if it may be a webhook target: https, or http to loopback when
    insecure targets are allowed (local development)."""
    parts = urlsplit(url.strip())
    errors: list[FieldError] = []
    if len(url) > MAX_URL_LENGTH or not parts.hostname or parts.username or parts.password:
        errors.append(FieldError("url", "must be an absolute https URL without credentials"))
    elif parts.scheme != "https" and not (allow_insecure and parts.scheme == "http"):
        errors.append(FieldError("url", "must use https"))
    if errors:
        raise ValidationFailed(errors)
    return url.strip(), parts.hostname or ""


def address_refusal(address: str, *, allow_loopback: bool) -> str | None:
    """Why a webhook must not be sent to this IP address (SSRF), or None when it may."""
    ip = ipaddress.ip_address(address)
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
        return "a private or reserved address"
    return None
