"""Webhooks per Standard Webhooks: the endpoint, delivery and attempt records, event types,
secrets, signatures, safe target URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit
from uuid import UUID

from leadgate.domain.errors import FieldError, ValidationFailed

# Events of one lead: they carry it (`lead_id`, a per-lead `sequence`) and are what the lead
# feeds stream (history, `events`, GET /v1/events, leadEvents, leadStageChanged).
LEAD_EVENT_TYPES: Final = (
    "lead.created",
    "lead.updated",
    "lead.status_changed",
    "lead.assigned",
    # The lifecycle (issue 12 #1, #2).
    "lead.converted",
    "lead.reopened",
    "lead.dnc_changed",
    "lead.contacted",
    "lead.archived",
    "lead.restored",
    "lead.erased",
    # Duplicates (issue 12 #5).
    "lead.merged",
)
# Events of the organization itself: no lead, no sequence (migration 0012). Sent to webhooks
# only; the lead feeds never carry them.
ORGANIZATION_EVENT_TYPES: Final = (
    # A bulk import ended (issue 12 #3): every row was judged, or its process stopped.
    "import.completed",
    "import.failed",
)
# What a webhook endpoint may subscribe to.
EVENT_TYPES: Final = LEAD_EVENT_TYPES + ORGANIZATION_EVENT_TYPES
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a format prefix, not a secret
MAX_URL_LENGTH: Final = 2048


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: UUID
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    # Until when the secret replaced by the last rotation still signs too; None: it no longer
    # does (or there was no rotation).
    previous_secret_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    response_status: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: int
    endpoint_id: UUID
    event_type: str
    status: str
    attempt: int
    next_attempt_at: datetime
    response_status: int | None
    error: str | None
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A due delivery leased to one dispatcher, with what it needs to send it."""

    organization_id: UUID
    id: int
    attempt: int
    event_id: int
    event_type: str
    # None for an organization event (ORGANIZATION_EVENT_TYPES).
    event_sequence: int | None
    event_payload: dict[str, Any]
    event_created_at: datetime
    endpoint_id: UUID
    url: str
    # Every secret that signs: the current one, then the one it replaced while their overlap
    # lasts.
    secrets: tuple[str, ...] = field(repr=False)
    enabled: bool
    # When it was due as claimed; a different value at settling time means someone asked for
    # a redelivery meanwhile.
    due_at: datetime
    # lead_events.actor as stored ({type, id, requestId}); None for events from before
    # migration 0006.
    event_actor: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    response_status: int | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>, where
    the key is the secret's base64 part, decoded."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signatures(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The header with one `v1,…` entry per secret, space-separated, in the order given (the
    current secret first, then the one it replaced while their overlap lasts)."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets)


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


# Prefixes whose addresses carry an IPv4 address that a relay or translator may deliver to:
# NAT64 (RFC 6052) and its local-use range (RFC 8215). 6to4 has `sixtofour`.
_NAT64: Final = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SHARED: Final = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598: neither private nor global


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in network for network in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(address: str, *, allow_loopback: bool) -> str | None:
    """Why a webhook must not be sent to this IP address (SSRF), or None when it may.

    Only globally routable unicast addresses are targets (`is_global`: no private, shared
    100.64.0.0/10, link-local and cloud metadata, unspecified, reserved or documentation
    ranges), judged by the IPv4 address an IPv6 one embeds when it does. Loopback is allowed
    only for local development (`allow_loopback`).
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "an address that is not an IP address"  # fail closed on what we cannot judge
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return address_refusal(str(embedded), allow_loopback=allow_loopback)
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip.is_multicast:  # is_global holds for some multicast ranges
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:  # deprecated, not global
        return "a private address"
    if ip.is_global:
        return None
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private address"
    return "an address that is not globally routable"
