"""A real HTTP and WebSocket proxy in front of the test gateway, for the SDK's tests: it can
answer a scripted failure instead of (or after) forwarding a request, and drop every open
WebSocket, so retries and reconnections are tested over real sockets, not mocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self

import aiohttp
from aiohttp import web

# Hop-by-hop and length headers the proxy must not copy (aiohttp sets its own).
_SKIPPED: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}
)


@dataclass(frozen=True)
class Fault:
    """One scripted answer. `forward`: send the request upstream first and throw its answer
    away (the write happened, the client never heard): the case idempotency keys exist for."""

    status: int = 503
    code: str = "SERVICE_UNAVAILABLE"
    retry_after: str | None = "0"
    forward: bool = False


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: Mapping[str, str]
    arrived: float  # time.monotonic()
    answered: int


@dataclass
class Proxy:
    """`async with Proxy(upstream) as proxy:` then point a client at `proxy.url`."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    websocket_upgrades: int = 0
    # While set, WebSocket upgrades are answered 503 (a node that is down).
    refuse_websockets: bool = False
    # The next WebSocket is closed with this (code, reason) right after its connection_ack.
    farewell_after_ack: tuple[int, str] | None = None
    _sockets: set[web.WebSocketResponse] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def seen_on(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def drop_websockets(
        self, code: int = aiohttp.WSCloseCode.INTERNAL_ERROR, reason: bytes = b"proxy dropped"
    ) -> int:
        """Close every client WebSocket (by default with 1011, as a crashed node would)."""
        open_now = list(self._sockets)
        for ws in open_now:
            await ws.close(code=code, message=reason)
        return len(open_now)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIPPED}
        body = await request.read()
        arrived = time.monotonic()
        fault = self.faults.pop(0) if self.faults else None
        if fault is None or fault.forward:
            async with self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as upstream:
                answer = web.Response(
                    status=upstream.status,
                    body=await upstream.read(),
                    headers={
                        k: v for k, v in upstream.headers.items() if k.lower() not in _SKIPPED
                    },
                )
        if fault is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            message = "scripted by the test proxy"
            envelope: dict[str, object] = (
                {"errors": [{"message": message, "extensions": {"code": fault.code}}]}
                if request.path == "/graphql"
                else {"error": {"code": fault.code, "message": message}}
            )
            answer = web.json_response(envelope, status=fault.status, headers=extra)
        self.seen.append(
            Seen(request.method, request.path, dict(request.headers), arrived, answer.status)
        )
        return answer

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.websocket_upgrades += 1
        if self.refuse_websockets:
            return web.Response(status=503)
        client = web.WebSocketResponse(protocols=("graphql-transport-ws",))
        await client.prepare(request)
        self._sockets.add(client)
        url = self.upstream.replace("http", "ws", 1) + request.path_qs
        try:
            async with self._session.ws_connect(url, protocols=("graphql-transport-ws",)) as server:
                farewell, self.farewell_after_ack = self.farewell_after_ack, None
                await asyncio.gather(_pump(client, server), _pump(server, client, farewell))
        finally:
            self._sockets.discard(client)
        return client


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    farewell: tuple[int, str] | None = None,
) -> None:
    """Text frames one way; a close on either side closes the other with its code.
    `farewell`: close `target` with it once a connection_ack has passed."""
    while True:
        msg = await source.receive()
        if msg.type == aiohttp.WSMsgType.TEXT:
            if target.closed:
                return
            await target.send_str(msg.data)
            if farewell is not None and '"connection_ack"' in msg.data:
                await target.close(code=farewell[0], message=farewell[1].encode())
                await source.close()
                return
            continue
        if not target.closed:
            code = source.close_code or aiohttp.WSCloseCode.GOING_AWAY
            reason = msg.extra.encode() if isinstance(msg.extra, str) else b""
            await target.close(code=code, message=reason)
        return
