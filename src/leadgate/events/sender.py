"""Sending one webhook: Standard Webhooks headers and signature, bounded time, safe target."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
from yarl import URL

from leadgate.domain.formats import iso_utc
from leadgate.domain.webhooks import (
    ORGANIZATION_EVENT_TYPES,
    ClaimedDelivery,
    SendResult,
    signatures,
)
from leadgate.events.resolver import RefusedAddress, vet_literal


def event_body(claimed: ClaimedDelivery) -> dict[str, Any]:
    """`{type, timestamp, data}`: data is the lead as REST shows it, plus what the event adds
    (`previousStage` and `stage` for a status change, `changes` for an update). For an
    organization event (import.completed) data is its payload, and `sequence` (per lead) is
    null.

    Who did it (`actor`: type, id, requestId; null for events from before it was recorded)
    sits at the top level beside `id` and `sequence`: Standard Webhooks keeps `data` for the
    event's subject, and here `data` is the lead, whose attributes an `actor` would collide
    with."""
    payload = claimed.event_payload
    if claimed.event_type in ORGANIZATION_EVENT_TYPES:
        data = payload
    else:
        extra = {k: v for k, v in payload.items() if k != "lead"}
        data = {**payload["lead"], **extra}
    return {
        "id": str(claimed.event_id),
        "type": claimed.event_type,
        "timestamp": iso_utc(claimed.event_created_at),
        "sequence": claimed.event_sequence,
        "actor": claimed.event_actor,
        "data": data,
    }


def _retry_after(value: str | None) -> float | None:
    """Seconds a receiver asked us to wait (RFC 9110 §10.2.3): delay-seconds or an HTTP date;
    a date already past means no wait. None when absent or unreadable (the schedule applies)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": UTC without a claim to be local time
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return None
    return max(seconds, 0.0)  # the dispatcher caps it


async def send(
    session: aiohttp.ClientSession,
    *,
    url: str,
    secrets: Sequence[str],
    message_id: str,
    body: dict[str, Any],
    time_limit: float,
    allow_loopback: bool,
) -> SendResult:
    """POST one signed message, signed with every secret in `secrets` (current first).

    `session` must come from `resolver.webhook_session`: its resolver vets every address a
    host name resolves to, at connection time; IP literals are vetted here.
    """
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        # The host as aiohttp will parse it (yarl), not as urllib would.
        vet_literal(URL(url).raw_host or "", allow_loopback=allow_loopback)
    except RefusedAddress as exc:
        return SendResult(response_status=None, error=f"refused: {exc}", duration_ms=0)
    except ValueError as exc:
        return SendResult(response_status=None, error=f"invalid URL: {exc}"[:500], duration_ms=0)
    data = orjson.dumps(body)
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures(secrets, message_id, timestamp, data),
        "user-agent": "leadgate-webhooks/1",
    }
    try:
        async with session.post(
            url,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=time_limit),
            allow_redirects=False,
        ) as response:
            await response.read()
            return SendResult(
                response_status=response.status,
                error=None if 200 <= response.status < 300 else f"HTTP {response.status}",
                duration_ms=elapsed(),
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
    except TimeoutError:
        return SendResult(None, f"timed out after {time_limit:g}s", elapsed())
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, RefusedAddress):
            return SendResult(None, f"refused: {exc.os_error}", elapsed())
        return SendResult(None, f"{type(exc).__name__}: {exc}"[:500], elapsed())
    except aiohttp.ClientError as exc:
        return SendResult(None, f"{type(exc).__name__}: {exc}"[:500], elapsed())
