"""What PostgreSQL is doing while bench/scale.py measures: its backends' waits, sampled; when
each new event of an organization became visible; how it runs a statement (EXPLAIN)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
from stack import Database

WAIT_SAMPLE_SECONDS: Final = 0.05
COMMIT_POLL_SECONDS: Final = 0.005

# The database's other backends in a transaction (the sampler's own left out), by what they
# are doing. A wait for an advisory lock is told apart by the lock's form: the event order's
# takes one bigint (objsubid 1), the duplicate check's two int4 keys, the first its namespace
# (store/). A wait for a row names the row's table from the tuple lock a row's waiters take; a
# unique check waits for the conflicting transaction without one, and the only upsert of a
# write is the lead total's (the lead insert's trigger), so such a wait by a backend holding
# lead_counts is taken to be there.
BACKEND_STATES: Final = """
SELECT CASE
           WHEN a.state = 'idle in transaction' THEN 'idle in transaction'
           WHEN l.objsubid = 1 THEN 'Lock:advisory (event order)'
           WHEN l.objsubid = 2 AND l.classid = hashtext('leadgate.lead_duplicates')::oid
               THEN 'Lock:advisory (duplicate check)'
           WHEN a.wait_event IN ('transactionid', 'tuple') AND t.relation IS NOT NULL
               THEN 'Lock:' || a.wait_event || ' (a row of ' || t.relation || ')'
           ELSE coalesce(a.wait_event_type || ':' || a.wait_event, 'on CPU')
       END AS what,
       count(*) AS backends
FROM pg_stat_activity AS a
LEFT JOIN pg_locks AS l
    ON l.pid = a.pid
   AND l.locktype = 'advisory'
   AND NOT l.granted
LEFT JOIN LATERAL (
    SELECT coalesce(
        (
            SELECT t.relation::regclass::text
            FROM pg_locks AS t
            WHERE t.pid = a.pid
              AND t.locktype = 'tuple'
            LIMIT 1
        ),
        (
            SELECT 'lead_counts'
            FROM pg_locks AS c
            WHERE c.pid = a.pid
              AND c.locktype = 'relation'
              AND c.relation = to_regclass('lead_counts')
            LIMIT 1
        )
    ) AS relation
) AS t ON true
WHERE a.datname = current_database()
  AND a.backend_type = 'client backend'
  AND a.state IN ('active', 'idle in transaction')
  AND a.pid <> pg_backend_pid()
GROUP BY 1
"""
EVENTS_AFTER: Final = """
SELECT id
FROM lead_events
WHERE organization_id = $1
  AND id > $2
ORDER BY id
"""
RELATION_PAGES: Final = """
SELECT pg_relation_size(to_regclass($1)) / current_setting('block_size')::bigint
"""


@dataclass(slots=True)
class Waits:
    """PostgreSQL's backends of the run's database (other than the sampler), sampled during a
    case's measured runs: how many were in each state, summed over the samples."""

    samples: int = 0
    states: Counter[str] = field(default_factory=Counter)

    def mean(self, state: str) -> float:
        return self.states[state] / self.samples if self.samples else 0.0

    @property
    def busy(self) -> float:
        """Backends in a transaction or a statement, on average."""
        return sum(self.states.values()) / self.samples if self.samples else 0.0

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        return [(state, self.mean(state)) for state, _ in self.states.most_common(n)]


@dataclass(frozen=True, slots=True)
class RelayRead:
    """The relay's read of the table (nats_bus.COMMITTED_AFTER) as PostgreSQL ran it once,
    caught up, before the burst: its scans, the pages it touched and the size in pages of
    what it scanned (table or index), its time."""

    scans: list[str]
    pages_touched: int
    pages_scanned: int
    milliseconds: float


@contextlib.asynccontextmanager
async def sampling_waits(db: Database, into: Waits) -> AsyncIterator[None]:
    """Count the database's backends by state every WAIT_SAMPLE_SECONDS meanwhile."""
    conn = await asyncpg.connect(db.url)

    async def sample() -> None:
        while True:
            for row in await conn.fetch(BACKEND_STATES):
                into.states[row["what"]] += row["backends"]
            into.samples += 1
            await asyncio.sleep(WAIT_SAMPLE_SECONDS)

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await conn.close()


@contextlib.asynccontextmanager
async def watching_commits(
    db: Database, org: str, after: int, seen: dict[int, float]
) -> AsyncIterator[None]:
    """Poll the organization's events every COMMIT_POLL_SECONDS meanwhile, noting when a poll
    first saw each committed: its snapshot, taken as the poll started, is no more than an
    interval after the commit. (One organization's ids become visible in id order.)"""
    conn = await asyncpg.connect(db.url)

    async def poll() -> None:
        last = after
        while True:
            polled = time.time()
            rows = await conn.fetch(EVENTS_AFTER, org, last)
            for row in rows:
                seen.setdefault(row["id"], polled)
            if rows:
                last = rows[-1]["id"]
            await asyncio.sleep(COMMIT_POLL_SECONDS)

    task = asyncio.create_task(poll())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await conn.close()


async def explain(conn: asyncpg.Connection, statement: str, *args: object) -> RelayRead:
    """How PostgreSQL runs `statement` now: what it scans, the pages it touches (against the
    size of what it scans), its time."""
    plan = json.loads(
        await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, *args)
    )
    scans: list[str] = []
    pages = 0

    async def walk(node: dict[str, Any]) -> None:
        nonlocal pages
        if "Relation Name" in node:
            scanned = node.get("Index Name", node["Relation Name"])
            size = await conn.fetchval(RELATION_PAGES, scanned)
            index = f" using {node['Index Name']}" if "Index Name" in node else ""
            scans.append(f"{node['Node Type']}{index} on {node['Relation Name']}")
            pages += size
        for child in node.get("Plans", []):
            await walk(child)

    top = plan[0]["Plan"]
    await walk(top)
    return RelayRead(
        scans=scans,
        pages_touched=top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
        pages_scanned=pages,
        milliseconds=plan[0]["Execution Time"],
    )
