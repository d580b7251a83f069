"""A webhook receiver for tests: a real aiohttp server on loopback that records every request
and answers from a script, plus an independent check of Standard Webhooks signatures.

The signature check follows the documented algorithm (README, DESIGN §6) and deliberately
does not import leadgate's own `sign()`: a bug shared by signer and verifier would pass.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web


def expected_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """`v1,` + base64(HMAC-SHA256(key = base64-decode(secret without `whsec_`),
    message = "<webhook-id>.<webhook-timestamp>.<raw body>"))."""
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    message = message_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def signature_is_valid(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether any `v1,…` entry of the space-separated `webhook-signature` header matches."""
    try:
        wanted = expected_signature(
            secret, headers["webhook-id"], headers["webhook-timestamp"], body
        )
    except (KeyError, binascii.Error):
        return False
    offered = headers.get("webhook-signature", "").split()
    return any(hmac.compare_digest(wanted, candidate) for candidate in offered)


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one request."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float | None = None  # seconds before answering; None: the receiver's delay


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and what the receiver answered."""

    headers: Mapping[str, str]  # names in lower case
    body: bytes
    arrived: float  # time.monotonic()
    answered: int
    peer_port: int  # the sender's local port: tells apart processes sending to one receiver

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> dict[str, Any]:
        decoded: dict[str, Any] = orjson.loads(self.body)
        return decoded

    def verifies(self, secret: str) -> bool:
        return signature_is_valid(secret, self.headers, self.body)


class Receiver:
    """`async with Receiver([500, 500, 200]) as receiver:` POST to `receiver.url`.

    Replies are used one per request in order, then `default`. `delay` holds every request
    that long before answering; meanwhile its webhook-id counts as in flight, and a second
    request for an id already in flight is recorded in `overlaps`.
    """

    def __init__(
        self,
        replies: Sequence[int | Reply] = (),
        *,
        default: int | Reply = 200,
        delay: float = 0.0,
    ) -> None:
        self._replies = collections.deque(_reply(r) for r in replies)
        self._default = _reply(default)
        self._delay = delay
        self._changed = asyncio.Condition()
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._runner: web.AppRunner | None = None
        self.requests: list[Received] = []
        self.overlaps: list[str] = []
        self.url = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        reply = self._replies.popleft() if self._replies else self._default
        headers = {name.lower(): value for name, value in request.headers.items()}
        message_id = headers.get("webhook-id", "")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        received = Received(headers, body, time.monotonic(), reply.status, peer[1] if peer else 0)
        if self._in_flight[message_id]:
            self.overlaps.append(message_id)
        self._in_flight[message_id] += 1
        try:
            async with self._changed:
                self.requests.append(received)
                self._changed.notify_all()
            delay = self._delay if reply.delay is None else reply.delay
            if delay:
                await asyncio.sleep(delay)
        finally:
            self._in_flight[message_id] -= 1
        return web.Response(status=reply.status, headers=dict(reply.headers))

    def ids(self) -> list[str]:
        """The webhook-id of every request so far, in arrival order (duplicates included)."""
        return [r.webhook_id for r in self.requests]

    async def wait_until(
        self,
        condition: Callable[[list[Received]], bool],
        *,
        within: float = 10.0,
        what: str = "the expected requests",
    ) -> list[Received]:
        """The requests so far, once `condition(requests)` holds; fails after `within` seconds."""
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: condition(self.requests))
        except TimeoutError:
            raise AssertionError(
                f"{what} did not arrive within {within}s; got {len(self.requests)}: "
                f"{[(r.webhook_id, r.json.get('type'), r.answered) for r in self.requests]}"
            ) from None
        return list(self.requests)

    async def wait_for_count(self, count: int, *, within: float = 10.0) -> list[Received]:
        return await self.wait_until(
            lambda got: len(got) >= count, within=within, what=f"{count} requests"
        )


def _reply(value: int | Reply) -> Reply:
    return value if isinstance(value, Reply) else Reply(status=value)
