"""Announced events (a NOTIFY, a NATS message), handed on to the feed in batches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

log = logging.getLogger(__name__)

# (organization, event id) of committed events, in the order they were announced.
EventIds = list[tuple[UUID, int]]


class EventBatches:
    """What arrives while one batch is routed forms the next, so a burst of events costs a few
    queries, not one per event. A batch that fails to route makes every subscriber resync
    from the table instead of missing it."""

    def __init__(
        self,
        on_events: Callable[[EventIds], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
    ) -> None:
        self._on_events = on_events
        self._on_lost = on_lost
        self._pending: EventIds = []
        self._flushing: asyncio.Task[None] | None = None

    def add(self, organization: UUID, event_id: int) -> None:
        self._pending.append((organization, event_id))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._on_events(batch)
            except Exception:
                log.exception("failed to route %d events; subscribers will resync", len(batch))
                await self._on_lost()
