"""`leadEvents` over graphql-transport-ws, resumed with `after` whenever the socket drops.

The iterator remembers the id of the last event it yielded and, on any disconnect, opens a
new connection and subscribes again with `after:` that id: the gateway replays what was
missed first, so the caller sees every event once, in order. A shutdown (close 1001, after an
`error` naming the cursor) and a slow-subscriber close (SUBSCRIBER_TOO_SLOW) resume at once;
other drops back off with jitter, for a bounded number of consecutive failures. A 4401 close
(the credential is invalid, revoked or expired) raises Unauthenticated: a retry with the same
credential cannot succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from leadgate.client.errors import (
    LeadgateError,
    TransportError,
    Unauthenticated,
    graphql_error,
)
from leadgate.client.models import Event
from leadgate.client.retry import RetryPolicy
from leadgate.client.transport import Transport

PROTOCOL: Final = "graphql-transport-ws"
CLOSE_UNAUTHORIZED: Final = 4401
ACK_TIMEOUT: Final = 10.0
LEAD_EVENTS: Final = """
subscription LeadEvents($after: ID, $types: [String!], $leadId: ID, $stageId: ID) {
  leadEvents(after: $after, types: $types, leadId: $leadId, stageId: $stageId) {
    id type sequence occurredAt data lead { id } actor { type id requestId }
  }
}
"""
_CURSOR: Final = re.compile(r'after:\s*"(\d+)"')
# Errors after which subscribing again (with `after`) is the documented way on.
_RESUMABLE: Final = frozenset({"SERVICE_UNAVAILABLE", "SUBSCRIBER_TOO_SLOW", "RATE_LIMITED"})


def cursor_in(text: str | None) -> str | None:
    """The cursor a close reason or error message names (`resume with after: "123"`)."""
    found = _CURSOR.search(text or "")
    return found.group(1) if found else None


@dataclass(slots=True)
class _Drop:
    """Why a connection ended and what it said about where to resume."""

    cursor: str | None = None
    retry_after: float | None = None
    completed: bool = False  # the server ended the subscription: nothing more will come
    error: LeadgateError | None = None  # what to raise if no reconnection is left


def _later(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if int(a) >= int(b) else b


async def lead_events(
    transport: Transport,
    *,
    after: str | None,
    types: Sequence[str] | None,
    lead_id: str | None,
    stage_id: str | None,
    reconnect: RetryPolicy,
) -> AsyncGenerator[Event, None]:
    """Every event after `after`, live, across reconnections (see the module docstring)."""
    cursor = after
    failures = 0
    while True:
        drop = _Drop()
        try:
            async with transport.session.ws_connect(
                transport.websocket_url, protocols=(PROTOCOL,), heartbeat=None, autoping=True
            ) as ws:
                await _initialise(ws, transport.authorization)
                failures = 0
                variables = {
                    "after": cursor,
                    "types": list(types) if types is not None else None,
                    "leadId": lead_id,
                    "stageId": stage_id,
                }
                await ws.send_json(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": LEAD_EVENTS, "variables": variables},
                    }
                )
                async with contextlib.aclosing(_frames(ws, drop)) as frames:
                    async for item in frames:
                        event = Event.from_document(item)
                        # A replay after a reconnection never repeats what was yielded.
                        if cursor is not None and int(event.id) <= int(cursor):
                            continue
                        cursor = event.id
                        yield event
                if drop.completed:
                    return
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise Unauthenticated("UNAUTHENTICATED", exc.message, status=401) from exc
            drop = _Drop()
        except (aiohttp.ClientError, TimeoutError, ConnectionError):
            drop = _Drop()
        # Our own cursor is exact; the server's is only needed when we had none yet.
        cursor = cursor if cursor is not None else drop.cursor
        # After a connection that worked, the first retry waits at most base_delay (jittered:
        # a shutdown sends every client back at once); each failure in a row doubles that.
        failures += 1
        delay = reconnect.delay(failures, drop.retry_after)
        if delay is None:
            raise drop.error or TransportError(
                "TRANSPORT", f"the subscription could not reconnect after {failures} attempts"
            )
        await asyncio.sleep(delay)


async def _initialise(ws: aiohttp.ClientWebSocketResponse, authorization: str) -> None:
    await ws.send_json({"type": "connection_init", "payload": {"Authorization": authorization}})
    msg = await ws.receive(timeout=ACK_TIMEOUT)
    if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("type") == "connection_ack":
        return
    _raise_if_unauthorized(ws, msg)
    raise aiohttp.ClientConnectionError(f"no connection_ack (got {msg.type.name})")


def _raise_if_unauthorized(ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage) -> None:
    code = ws.close_code
    if msg.type == aiohttp.WSMsgType.CLOSE:
        code = msg.data
    if code == CLOSE_UNAUTHORIZED:
        reason = msg.extra if msg.type == aiohttp.WSMsgType.CLOSE else None
        raise Unauthenticated("UNAUTHENTICATED", str(reason or "credentials invalid"), status=401)


async def _frames(ws: aiohttp.ClientWebSocketResponse, drop: _Drop) -> AsyncGenerator[Any, None]:
    """The `leadEvents` payloads of one connection; notes in `drop` how it ended."""
    while True:
        msg = await ws.receive()
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
        ):
            _raise_if_unauthorized(ws, msg)
            reason = msg.extra if msg.type == aiohttp.WSMsgType.CLOSE else None
            drop.cursor = _later(drop.cursor, cursor_in(reason))
            return
        if msg.type != aiohttp.WSMsgType.TEXT:
            return  # an error or a binary frame: this connection is unusable
        frame = json.loads(msg.data)
        kind = frame.get("type")
        if kind == "ping":
            await ws.send_json({"type": "pong"})
        elif kind == "next":
            payload = frame.get("payload") or {}
            if payload.get("errors"):
                raise graphql_error(
                    200, payload["errors"], payload.get("data"), request_id=None, retry_after=None
                )
            yield payload["data"]["leadEvents"]
        elif kind == "error":
            _resumable_or_raise(frame.get("payload") or [], drop)
            await ws.close()
            return
        elif kind == "complete":
            drop.completed = True
            await ws.close()
            return


def _resumable_or_raise(errors: Sequence[Mapping[str, Any]], drop: _Drop) -> None:
    error: LeadgateError = graphql_error(200, errors, None, request_id=None, retry_after=None)
    if error.code not in _RESUMABLE:
        raise error
    extensions = errors[0].get("extensions") if errors else None
    extensions = extensions if isinstance(extensions, Mapping) else {}
    named = extensions.get("after")
    drop.cursor = str(named) if named is not None else cursor_in(error.message)
    retry_after = extensions.get("retryAfter")
    drop.retry_after = float(retry_after) if isinstance(retry_after, int | float) else None
    drop.error = error
    error.retry_after = drop.retry_after
