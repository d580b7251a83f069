"""Events over NATS JetStream (LEADGATE_EVENT_BUS, issue 13 #3): a relay and a consumer.

lead_events stays the source of truth and the `after` cursor's store; writes no longer NOTIFY.

The relay: one per deployment at a time (a session advisory lock on a direct connection; the
others wait on it), it publishes committed events in id order to the stream leadgate-events,
subject `leadgate.<organization_id>.<type>`, with the event id as `Nats-Msg-Id` so the server
drops a re-publish. After a crash or a NATS outage it resumes from the id of the stream's last
message, reading the table: nothing written while NATS was down is lost.

Which ids it may publish (DESIGN §6: a bigserial is assigned at insert, not at commit). Within
an organization ids become visible in order (the insert's advisory lock), but across
organizations a smaller id can commit after a larger one. Every event statement takes its
transaction's xid (pg_current_xact_id()) before nextval assigns the id, so:
- an id just after the last published one (`last + 1`) is published as soon as it is visible;
- an id past a gap waits: the relay notes its snapshot's xmax when it first sees the gap. The
  gap's owner got its xid before its id, before the larger id was committed and seen, so it is
  below that xmax. Once a later snapshot's xmin reaches that xmax, every such writer has
  committed or rolled back: what is visible then up to the larger id is final, and a still
  missing id never will be (a rollback). Only then does the relay publish past the gap.
So a consumer's "last id seen" never skips an event still in flight.

The consumer: one per gateway process, an ordered (ephemeral) JetStream consumer of
`leadgate.>` from new messages, handing (organization, id) batches to `on_events` (the feed
routes them, the dispatcher wakes) and calling `on_reconnect` whenever its subscription is
(re)established, so subscribers read what they missed from the table with their cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg
import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from leadgate.db.pool import init_connection
from leadgate.events.batches import EventBatches, EventIds

log = logging.getLogger(__name__)


STREAM: Final = "leadgate-events"
SUBJECTS: Final = "leadgate.>"
MSG_ID: Final = "Nats-Msg-Id"
# The table keeps history for `after`; the stream only needs to bridge a restart.
STREAM_MAX_AGE_SECONDS: Final = 24 * 3600.0
DUPLICATE_WINDOW_SECONDS: Final = 120.0
BATCH: Final = 500
# Idle polling of the table: commit-to-publish latency when writes are sparse.
POLL_INTERVAL: Final = 0.02
STANDBY_INTERVAL: Final = 1.0
MAX_BACKOFF: Final = 2.0
PUBLISH_TIMEOUT: Final = 2.0

# One relay at a time, deployment-wide; a session lock: held for the connection's life.
RELAY_LOCK: Final = "SELECT pg_try_advisory_lock(hashtextextended('leadgate.nats_relay', 0))"

SNAPSHOT: Final = """
SELECT pg_snapshot_xmin(s)::text::bigint AS xmin, pg_snapshot_xmax(s)::text::bigint AS xmax
FROM pg_current_snapshot() AS s
"""

# Every organization's events: this is the relay, routing them to their own subjects.
COMMITTED_AFTER: Final = """
SELECT id, organization_id, type
FROM lead_events
WHERE id > $1
ORDER BY id
LIMIT $2
"""


def servers(url: str) -> list[str]:
    return [part.strip() for part in url.split(",") if part.strip()]


async def _connect(url: str, **callbacks: Any) -> Client:
    return await nats.connect(
        servers=servers(url),
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        connect_timeout=2,
        **callbacks,
    )


@dataclass(slots=True)
class _Gap:
    """Ids past a gap seen in a snapshot: final once every writer then in flight is done."""

    xmax: int
    up_to: int


def publishable(
    rows: list[tuple[int, Any]], last: int, horizon: int
) -> tuple[list[tuple[int, Any]], int]:
    """The rows the relay may publish now, in order, and the new last id: those up to
    `horizon` (final, see the module docstring), then those following without a gap."""
    cursor = max(last, horizon)
    out: list[tuple[int, Any]] = []
    for row in rows:
        event_id = row[0]
        if event_id <= horizon or event_id == cursor + 1:
            out.append(row)
            cursor = max(cursor, event_id)
        else:
            break
    return out, cursor


class Relay:
    """Publishes lead_events to the stream while it holds the relay lock."""

    def __init__(self, database_url: str, bus_url: str) -> None:
        self._database_url = database_url
        self._bus_url = bus_url
        self.active = asyncio.Event()
        self.published = 0

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                conn = await asyncpg.connect(self._database_url)
            except (OSError, asyncpg.PostgresError):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            try:
                await init_connection(conn)
                # Standby: the lock's holder may be another machine, nothing here to await.
                while not await conn.fetchval(RELAY_LOCK):  # noqa: ASYNC110
                    await asyncio.sleep(STANDBY_INTERVAL)
                backoff = 0.1
                await self._relay(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                log.warning("event relay lost its database connection", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                self.active.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 1)

    async def _relay(self, conn: asyncpg.Connection) -> None:
        """Holding the lock: (re)connect to NATS and publish, until the database fails."""
        while True:
            try:
                nc = await _connect(self._bus_url)
            except (OSError, NatsError, TimeoutError):
                log.warning("event relay cannot reach NATS; the table keeps the events")
                await asyncio.sleep(0.2)
                await conn.execute("SELECT 1")  # keep the lock's connection honest
                continue
            try:
                js = nc.jetstream(timeout=PUBLISH_TIMEOUT)
                await _ensure_stream(js)
                last = await _last_published(js)
                self.active.set()
                await self._publish_from(conn, js, last)
            except (OSError, NatsError, TimeoutError):
                log.warning("event relay lost NATS; resuming from the stream", exc_info=True)
                await asyncio.sleep(0.1)
            finally:
                self.active.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.close(), 1)

    async def _publish_from(self, conn: asyncpg.Connection, js: Any, last: int) -> None:
        gap: _Gap | None = None
        while True:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                snapshot = await conn.fetchrow(SNAPSHOT)
                rows = await conn.fetch(COMMITTED_AFTER, last, BATCH)
            horizon = last
            if gap is not None and snapshot["xmin"] >= gap.xmax:
                # Final up to gap.up_to, but only as far as this batch read.
                horizon = gap.up_to if len(rows) < BATCH else min(gap.up_to, rows[-1]["id"])
                if horizon >= gap.up_to:
                    gap = None
                horizon = max(horizon, last)
            found = [(r["id"], r) for r in rows]
            ready, cursor = publishable(found, last, horizon)
            if len(ready) < len(found) and gap is None:
                gap = _Gap(xmax=snapshot["xmax"], up_to=found[-1][0])
            for start in range(0, len(ready), 100):
                chunk = ready[start : start + 100]
                await asyncio.gather(*(_publish(js, r) for _, r in chunk))
            self.published += len(ready)
            last = cursor
            if len(rows) < BATCH or not ready:
                await asyncio.sleep(POLL_INTERVAL)


async def _publish(js: Any, row: asyncpg.Record) -> None:
    subject = f"leadgate.{row['organization_id']}.{row['type']}"
    await js.publish(
        subject, str(row["id"]).encode(), stream=STREAM, headers={MSG_ID: str(row["id"])}
    )


async def _ensure_stream(js: Any) -> None:
    config = StreamConfig(
        name=STREAM,
        subjects=[SUBJECTS],
        storage=StorageType.FILE,
        max_age=STREAM_MAX_AGE_SECONDS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)


async def _last_published(js: Any) -> int:
    """The id of the stream's last message (0 when it is empty)."""
    info = await js.stream_info(STREAM)
    if not info.state.messages:
        return 0
    msg = await js.get_msg(STREAM, seq=info.state.last_seq)
    return int((msg.headers or {}).get(MSG_ID, msg.data.decode()))


class Consumer:
    """This process's one subscription to the stream, reported like the LISTEN path's."""

    def __init__(
        self,
        bus_url: str,
        *,
        on_events: Callable[[EventIds], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        self._bus_url = bus_url
        self._on_reconnect = on_reconnect
        self._batches = EventBatches(on_events, on_reconnect)
        self._renew = asyncio.Event()
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                nc = await _connect(
                    self._bus_url,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                )
            except (OSError, NatsError, TimeoutError):
                log.warning("event consumer cannot reach NATS; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            try:
                await self._consume(nc)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.close(), 1)

    async def _consume(self, nc: Client) -> None:
        """Subscribe, and subscribe afresh after every reconnection: a restarted server may
        have lost the ordered consumer, and waiting for its heartbeats to say so takes
        seconds. Each subscription starts at new messages; the resync after it reads from
        the table whatever was published before, so nothing falls in between."""
        js = nc.jetstream()
        backoff = 0.1
        while True:
            self._renew.clear()
            try:
                await _ensure_stream(js)
                sub = await js.subscribe(
                    SUBJECTS,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.NEW,
                    cb=self._received,
                )
            except (OSError, NatsError, TimeoutError):
                # JetStream may need a moment after the server is back.
                log.warning("event consumer cannot subscribe; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.1
            self.connected.set()
            try:
                await self._on_reconnect()
                await self._renew.wait()
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sub.unsubscribe(), 1)

    async def _disconnected(self) -> None:
        self.connected.clear()

    async def _reconnected(self) -> None:
        self.reconnects += 1
        self._renew.set()

    async def _received(self, msg: Any) -> None:
        try:
            organization = msg.subject.split(".", 2)[1]
            announced = UUID(organization), int(msg.data.decode())
        except (IndexError, ValueError):
            log.warning("ignoring malformed event message on %r", msg.subject)
            return
        self._batches.add(*announced)
