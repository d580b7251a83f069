"""One LISTEN connection per process: hears committed events and reports them.

The connection is its own, never a pooled one (a pool resets a released connection, and with
it its LISTEN). When it drops, it reconnects with backoff and reports the reconnection, so
subscribers catch up from the table what was published meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final
from uuid import UUID

import asyncpg

from leadgate.db.pool import init_connection
from leadgate.events.batches import EventBatches, EventIds
from leadgate.store.events import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

# Quick enough to notice a dead connection well within the 5 s the product promises.
PING_INTERVAL: Final = 1.0
PING_TIMEOUT: Final = 2.0
MAX_BACKOFF: Final = 2.0


class EventListener:
    def __init__(
        self,
        url: str,
        *,
        on_events: Callable[[EventIds], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        self._url = url
        self._on_reconnect = on_reconnect
        self._batches = EventBatches(on_events, on_reconnect)
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def run(self) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost."""
        backoff = 0.1
        first = True
        while True:
            try:
                conn = await asyncpg.connect(self._url)
            except (OSError, asyncpg.PostgresError):
                log.warning("event listener cannot connect; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            try:
                await init_connection(conn)
                await conn.add_listener(NOTIFY_CHANNEL, self._notified)
                backoff = 0.1
                self.connected.set()
                if not first:
                    self.reconnects += 1
                    log.info("event listener reconnected")
                    await self._on_reconnect()
                first = False
                await self._watch(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                log.warning("event listener lost its connection; reconnecting", exc_info=True)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 1)

    async def _watch(self, conn: asyncpg.Connection) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL)
            await conn.execute("SELECT 1", timeout=PING_TIMEOUT)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        organization, _, event_id = payload.partition(":")
        try:
            announced = UUID(organization), int(event_id)
        except ValueError:
            log.warning("ignoring malformed notification %r", payload)
            return
        self._batches.add(*announced)
