"""The webhook dispatcher: claims due deliveries, sends them, records every attempt.

Any number of processes may run one on the same database: claims use FOR UPDATE SKIP LOCKED
and a committed lease, so a delivery is sent by one dispatcher at a time, and one whose
dispatcher died is picked up again when its lease ends (at least once, never lost).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

import aiohttp
import asyncpg

from leadgate.config import Settings
from leadgate.domain.webhooks import ClaimedDelivery, SendResult
from leadgate.events.sender import event_body, send
from leadgate.store import webhooks

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS: Final = 1.0
# A receiver may ask for a pause, but not for one longer than the whole schedule allows.
MAX_RETRY_AFTER_SECONDS: Final = 24 * 3600.0
GONE: Final = 410


class Dispatcher:
    def __init__(
        self, pool: asyncpg.Pool, session: aiohttp.ClientSession, settings: Settings
    ) -> None:
        self._pool = pool
        self._session = session
        self._settings = settings
        self._wake = asyncio.Event()
        # When the earliest retry this dispatcher scheduled falls due (event loop time).
        self._next_retry: float | None = None
        # Claimed and not yet settled, by delivery id: released when the dispatcher stops.
        self._leased: dict[int, ClaimedDelivery] = {}
        # Told of every recorded attempt: its outcome, and the seconds since its event was
        # committed (leadgate/metrics.py sets it).
        self.observe: Callable[[str, float], None] = _unobserved

    def wake(self) -> None:
        """New events were committed: look for due deliveries now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Keep up to `webhook_concurrency` deliveries in flight, claiming more as each ends,
        so one slow receiver never holds up the others."""
        in_flight: set[asyncio.Task[None]] = set()
        limit = self._settings.webhook_concurrency
        try:
            while True:
                room = limit - len(in_flight)
                claimed = await self._claim(room) if room > 0 else []
                for delivery in claimed:
                    self._leased[delivery.id] = delivery
                    task = asyncio.create_task(self._deliver(delivery))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if claimed and len(claimed) == room:
                    continue  # more may be due: claim again as soon as there is room
                await self._idle(in_flight)
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            await self._release_leases()

    async def _release_leases(self) -> None:
        """On stopping (SIGTERM): what this dispatcher claimed but did not settle is due again
        at once, for any dispatcher, instead of waiting out its lease (issue 8 #9)."""
        leased, self._leased = list(self._leased.values()), {}
        if not leased:
            return
        try:
            async with self._pool.acquire() as conn:
                released = await webhooks.release_leases(conn, leased)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("releasing webhook leases failed; they end on their own", exc_info=True)
            return
        log.info("released %d claimed webhook deliveries", released)

    async def _claim(self, room: int) -> list[ClaimedDelivery]:
        try:
            async with self._pool.acquire() as conn:
                return await webhooks.claim_due(
                    conn, limit=room, lease_seconds=self._settings.webhook_lease_seconds
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("claiming webhook deliveries failed; retrying", exc_info=True)
            return []

    async def _idle(self, in_flight: set[asyncio.Task[None]]) -> None:
        """Until a delivery ends, new events arrive, a retry falls due, or the poll interval."""
        self._wake.clear()
        woken = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait(
                {woken, *in_flight},
                timeout=self._idle_wait(),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            woken.cancel()

    def _idle_wait(self) -> float:
        """Poll for other processes' work; wake early for a retry scheduled here."""
        now = asyncio.get_running_loop().time()
        if self._next_retry is not None and self._next_retry <= now:
            self._next_retry = None
        if self._next_retry is None:
            return IDLE_POLL_SECONDS
        return max(0.0, min(IDLE_POLL_SECONDS, self._next_retry - now))

    async def _deliver(self, claimed: ClaimedDelivery) -> None:
        try:
            await self._attempt(claimed)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            # Unrecorded, the attempt is retried once its lease ends: at least once, not lost.
            log.warning("recording webhook delivery %s failed", claimed.id, exc_info=True)
        # Settled (or left to its lease after a database error); not when cancelled.
        self._leased.pop(claimed.id, None)

    async def _attempt(self, claimed: ClaimedDelivery) -> None:
        if not claimed.enabled:
            result = SendResult(None, "endpoint disabled", 0)
        else:
            result = await send(
                self._session,
                url=claimed.url,
                secrets=claimed.secrets,
                message_id=str(claimed.event_id),
                body=event_body(claimed),
                time_limit=self._settings.webhook_timeout_seconds,
                allow_loopback=self._settings.allow_insecure_webhooks,
            )
        await self._settle(claimed, result)

    async def _settle(self, claimed: ClaimedDelivery, result: SendResult) -> None:
        status, retry_at = "pending", None
        if result.delivered:
            status = "succeeded"
        elif (
            result.response_status == GONE
            or not claimed.enabled
            or claimed.attempt > len(self._settings.webhook_retry_schedule)
        ):
            status = "failed"
        else:
            delay = self._delay(claimed, result)
            retry_at = datetime.now(UTC) + timedelta(seconds=delay)
            now = asyncio.get_running_loop().time()
            earlier = self._next_retry if self._next_retry and self._next_retry > now else None
            self._next_retry = now + delay if earlier is None else min(earlier, now + delay)
        async with self._pool.acquire() as conn, conn.transaction():
            await webhooks.record_attempt(
                conn,
                claimed,
                response_status=result.response_status,
                error=result.error,
                duration_ms=result.duration_ms,
            )
            await webhooks.settle(
                conn,
                claimed,
                status=status,
                retry_at=retry_at,
                response_status=result.response_status,
                error=result.error,
            )
            if result.response_status == GONE:
                await webhooks.disable_endpoint(
                    conn,
                    claimed.organization_id,
                    claimed.endpoint_id,
                    "the receiver answered 410 Gone",
                )
        outcome = "retrying" if status == "pending" else status
        self.observe(outcome, (datetime.now(UTC) - claimed.event_created_at).total_seconds())

    def _delay(self, claimed: ClaimedDelivery, result: SendResult) -> float:
        base = self._settings.webhook_retry_schedule[claimed.attempt - 1]
        # Jitter spreads retries of many failing deliveries instead of hammering in waves.
        delay = base * random.uniform(0.8, 1.2)  # noqa: S311 - not cryptographic
        if result.retry_after is not None:
            delay = max(delay, min(result.retry_after, MAX_RETRY_AFTER_SECONDS))
        return delay


def _unobserved(_outcome: str, _lag_seconds: float) -> None:
    pass
