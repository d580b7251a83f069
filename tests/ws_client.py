"""A minimal graphql-transport-ws client over aiohttp, for tests that subscribe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class Subscription:
    ws: aiohttp.ClientWebSocketResponse
    op_id: str

    async def next(self, wait: float = 5.0) -> dict[str, Any]:
        """The next `next` payload of this operation (pings are answered on the way)."""
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), wait)
            if message["type"] == "ping":
                await self.ws.send_json({"type": "pong"})
                continue
            if message.get("id") != self.op_id:
                continue
            if message["type"] == "next":
                payload: dict[str, Any] = message["payload"]
                return payload
            raise AssertionError(f"subscription ended: {message}")


@asynccontextmanager
async def connect(
    session: aiohttp.ClientSession,
    url: str,
    key: str | None,
    *,
    header_key: str | None = None,
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """An acknowledged graphql-transport-ws connection (key in connection_init or header)."""
    headers = {"Authorization": f"Bearer {header_key}"} if header_key else {}
    async with session.ws_connect(url, protocols=["graphql-transport-ws"], headers=headers) as ws:
        payload = {"Authorization": f"Bearer {key}"} if key else {}
        await ws.send_json({"type": "connection_init", "payload": payload})
        ack = await asyncio.wait_for(ws.receive_json(), 5)
        assert ack["type"] == "connection_ack", ack
        yield ws


async def subscribe(
    ws: aiohttp.ClientWebSocketResponse,
    query: str,
    variables: dict[str, Any] | None = None,
    op_id: str = "1",
) -> Subscription:
    await ws.send_json(
        {
            "id": op_id,
            "type": "subscribe",
            "payload": {"query": query, "variables": variables or {}},
        }
    )
    return Subscription(ws=ws, op_id=op_id)
