"""Live events for subscribers of this process, gap-free and in order per organization.

The database is the source of truth. Notifications only say "something new": each
subscriber keeps a cursor (the last event id it delivered) and, after a reconnection or on
`after:`, reads what it missed from lead_events before taking live events again. An
organization's events become visible in id order (see store.events.INSERT_EVENT), so
`id > cursor` is exactly what a subscriber has not seen: no gap, and duplicates are dropped.

Subscriptions are lead feeds: an organization event (import.completed, no lead) is never read
here (store.events leaves it out), and the id it takes is just one a cursor steps over.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from uuid import UUID

import asyncpg

from leadgate.domain.errors import SubscriberTooSlow
from leadgate.domain.models import LeadEvent, LeadRecord, Principal, Stage
from leadgate.store import catalog, events, leads

# Enough for bursts; a subscriber further behind is closed and resumes with `after`.
DEFAULT_QUEUE_SIZE: Final = 512
CATCH_UP_BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event with what a subscriber shows of it, looked up once for all subscribers."""

    event: LeadEvent
    record: LeadRecord | None
    stages: dict[UUID, Stage]


@dataclass(slots=True)
class Position:
    """Where a subscriber can resume with `after`: the consumer has finished with every event
    up to `event_id` (delivered it, or it was filtered out). None until the stream starts.
    Read at shutdown to tell each client where to resume (issue 8 #9)."""

    event_id: int | None = None
    # The event handed to the consumer and not yet finished with: what a result produced
    # now is about (an SSE event's `id`, graphql/sse.py).
    delivering: int | None = None


class _Resync:
    """Queued to every subscriber when notifications may have been missed."""


RESYNC: Final = _Resync()


@dataclass(eq=False, slots=True)
class Subscriber:
    organization_id: UUID
    types: frozenset[str]
    lead_id: UUID | None
    queue: asyncio.Queue[Delivery | _Resync]
    overflowed: bool = False

    def offer(self, item: Delivery | _Resync) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True

    def wants(self, event: LeadEvent) -> bool:
        return event.type in self.types and self.lead_id in (None, event.lead_id)


@dataclass(slots=True)
class EventFeed:
    pool: asyncpg.Pool
    queue_size: int = DEFAULT_QUEUE_SIZE
    _subscribers: defaultdict[UUID, set[Subscriber]] = field(
        default_factory=lambda: defaultdict(set)
    )
    # Told, per fanned-out event, the seconds since it was written (a metric's hook).
    observe_lag: Callable[[float], None] = field(default=lambda _seconds: None)

    async def stream(
        self,
        principal: Principal,
        *,
        types: frozenset[str],
        lead_id: UUID | None = None,
        after: int | None = None,
        position: Position | None = None,
    ) -> AsyncGenerator[Delivery, None]:
        """The principal's organization's events: those after `after` first, then live.

        `position` moves past a delivery only when the consumer asks for the next one, so it
        never names an event the consumer has not finished with."""
        org = principal.organization_id
        sub = Subscriber(org, types, lead_id, asyncio.Queue(self.queue_size))
        seen = Position() if position is None else position
        # Registered before reading the table: whatever commits from now on arrives live
        # too, and the cursor drops the overlap.
        self._subscribers[org].add(sub)
        try:
            if after is None:
                async with self.pool.acquire() as conn:
                    cursor = seen.event_id = await events.latest_event_id(conn, org)
            else:
                cursor = seen.event_id = after
                async for delivery in self._catch_up(sub, cursor):
                    cursor = seen.delivering = delivery.event.id
                    yield delivery
                    seen.event_id = cursor
            while True:
                item = await sub.queue.get()
                if sub.overflowed:
                    raise SubscriberTooSlow(cursor)
                if isinstance(item, _Resync):
                    async for delivery in self._catch_up(sub, cursor):
                        cursor = seen.delivering = delivery.event.id
                        yield delivery
                        seen.event_id = cursor
                elif item.event.id > cursor:
                    cursor = item.event.id
                    if sub.wants(item.event):
                        seen.delivering = cursor
                        yield item
                    seen.event_id = cursor
        finally:
            self._subscribers[org].discard(sub)
            if not self._subscribers[org]:
                del self._subscribers[org]

    async def _catch_up(self, sub: Subscriber, cursor: int) -> AsyncIterator[Delivery]:
        while True:
            async with self.pool.acquire() as conn:
                found = await events.events_after(
                    conn,
                    sub.organization_id,
                    cursor,
                    types=sorted(sub.types),
                    lead_id=sub.lead_id,
                    limit=CATCH_UP_BATCH,
                )
                deliveries = await prepare(conn, found)
            for delivery in deliveries:
                yield delivery
            if len(found) < CATCH_UP_BATCH:
                return
            cursor = found[-1].id

    async def publish(self, ids: list[tuple[UUID, int]]) -> None:
        """Route notified events to this process's subscribers of their organization."""
        wanted = [(org, event_id) for org, event_id in ids if org in self._subscribers]
        if not wanted:
            return
        async with self.pool.acquire() as conn:
            deliveries = await prepare(conn, await events.events_by_key(conn, wanted))
        now = datetime.now(UTC)
        for delivery in deliveries:
            self.observe_lag((now - delivery.event.created_at).total_seconds())
            for sub in list(self._subscribers.get(delivery.event.organization_id, ())):
                sub.offer(delivery)

    async def resync(self) -> None:
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                sub.offer(RESYNC)


async def prepare(conn: asyncpg.Connection, found: list[LeadEvent]) -> list[Delivery]:
    """Each event with its lead (as it is now) and the stages it names: two queries."""
    if not found:
        return []
    lead_keys = list({(e.organization_id, e.lead_id) for e in found})
    stage_keys = list(
        {
            (e.organization_id, UUID(e.payload[name]["id"]))
            for e in found
            for name in ("previousStage", "stage")
            if isinstance(e.payload.get(name), dict)
        }
    )
    records = await leads.lead_records(conn, lead_keys)
    stages = await catalog.stages_by_keys(conn, stage_keys) if stage_keys else {}
    return [Delivery(event=e, record=_shown(e, records), stages=stages) for e in found]


def _shown(event: LeadEvent, records: dict[UUID, LeadRecord]) -> LeadRecord | None:
    """The event's lead, unless it is archived (issue 12 #2): subscribers see nothing of an
    archived lead but the `lead.archived` event itself, so a live view can drop it."""
    record = records.get(event.lead_id)
    if record is None or (record.lead.archived_at is not None and event.type != "lead.archived"):
        return None
    return record
