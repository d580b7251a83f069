"""Sending one webhook: Standard Webhooks headers and signature, bounded time, safe target."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from leadgate.domain.formats import iso_utc
from leadgate.domain.webhooks import address_refusal, sign
from leadgate.store.webhooks import ClaimedDelivery


@dataclass(frozen=True, slots=True)
class SendResult:
    response_status: int | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


def event_body(claimed: ClaimedDelivery) -> dict[str, Any]:
    """`{type, timestamp, data}`: data is the lead as REST shows it, plus what the event adds
    (`previousStage` and `stage` for a status change, `changes` for an update)."""
    payload = claimed.event_payload
    extra = {k: v for k, v in payload.items() if k != "lead"}
    return {
        "id": str(claimed.event_id),
        "type": claimed.event_type,
        "timestamp": iso_utc(claimed.event_created_at),
        "sequence": claimed.event_sequence,
        "data": {**payload["lead"], **extra},
    }


async def refusal(url: str, *, allow_loopback: bool) -> str | None:
    """Why `url` must not be called (it resolves to a private address), or None."""
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        reason = address_refusal(str(info[4][0]), allow_loopback=allow_loopback)
        if reason:
            return f"{host} resolves to {reason}"
    return None


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date: the schedule applies


async def send(
    session: aiohttp.ClientSession,
    *,
    url: str,
    secret: str,
    message_id: str,
    body: dict[str, Any],
    time_limit: float,
    allow_loopback: bool,
) -> SendResult:
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    reason = await refusal(url, allow_loopback=allow_loopback)
    if reason:
        return SendResult(response_status=None, error=f"refused: {reason}", duration_ms=0)
    data = orjson.dumps(body)
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, data),
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
    except aiohttp.ClientError as exc:
        return SendResult(None, f"{type(exc).__name__}: {exc}"[:500], elapsed())
