"""createLead against its raw-SQL floor, by figures a busy machine cannot blur (issue 14 #5).

Wall-clock requests per second on a shared 2-core machine is noise; these are less so:

1. statements: every SQL statement one createLead sends (BEGIN and COMMIT included), in
   order, with its round-trip time and how PostgreSQL has planned it so far (generic plans,
   made once, vs custom ones, made for each run): an in-process gateway whose pool records
   asyncpg's query log. The floor's are listed from bench/floor.py, which sends them.
2. explain: each of those statements replayed under EXPLAIN ANALYZE in a transaction that
   rolls back (the idempotency key swapped for a fresh one), the least of a few replays:
   PostgreSQL's planning and execution time per statement. EXPLAIN always plans afresh, so
   its planning time is what a statement costs on the runs it is not given a generic plan.
3. cpu: `leadgate serve` and bench/floor.py as processes on one throwaway database, sent the
   same number of creates in turns (the bench's createLead, a fresh idempotency key each;
   the same through POST /v1/leads, to tell the GraphQL layer's share) from a few concurrent
   clients in this process: CPU milliseconds per request of the server and of PostgreSQL
   (every backend, from /proc), and the gateway's statements per request (/metrics). Each
   figure is the least of the rounds: load from elsewhere can only add to it.

The organization written to starts with `--prior` leads sharing the bench body's email (as
the bench's write organization has after a few rounds: each create lists them as likely
duplicates), so duplicate detection works on as many rows as it does there.

    .venv/bin/python bench/profile_writes.py [--requests 3000] [--rounds 3] [--clients 4]
        [--prior 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer
from stack import (
    VENV_BIN,
    Database,
    Server,
    free_port,
    leadgate,
    say,
    start_server,
    throwaway_database,
)
from workloads import CREATE_INPUT, create_mutation, floor_create

from leadgate import keys
from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.db.migrate import migrate
from leadgate.db.pool import create_pool, init_connection
from leadgate.db.statements import StatementCounter
from leadgate.services import auth
from leadgate.services.organizations import create_organization

ROOT: Final = Path(__file__).resolve().parent.parent
POOL_SIZE: Final = 8
TRACE_KEY_PREFIX: Final = "trace-"
REPLAYS: Final = 5
# What bench/floor.py sends per create (see its create_lead).
FLOOR_STATEMENTS: Final = (
    "BEGIN",
    "CLAIM (store/idempotency.py)",
    "INSERT_LEAD (store/lead_writes.py)",
    "INSERT_EVENT_COMPLETING (store/events.py)",
    "COMMIT",
)


CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of `root` and every live descendant, with the children each
    has reaped (a PostgreSQL backend that exited counts in the postmaster's)."""
    parents: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command name: ppid is field 4; utime, stime, cutime, cstime 14 to 17.
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            seconds[pid] = sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
    family, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seconds and pid not in family:
            family.add(pid)
            todo.extend(child for child, parent in parents.items() if parent == pid)
    return sum(seconds[pid] for pid in family)


class Recorder(StatementCounter):
    """The app's statement counter, also keeping what it counted while `recording`."""

    __slots__ = ("log", "recording")

    def __init__(self) -> None:
        super().__init__()
        self.recording = False
        self.log: list[Any] = []

    def __call__(self, record: Any) -> None:
        self.total += 1
        if self.recording:
            self.log.append(record)


def label(query: str) -> str:
    """A statement's first words: enough to tell them apart in a listing."""
    return " ".join(query.split())[:110]


async def seed(url: str, prior: int) -> tuple[uuid.UUID, str]:
    """A migrated database, an organization with `prior` look-alike leads, a write key."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    settings = Settings(database_url=url)
    pool = await create_pool(settings)
    try:
        org = await create_organization(pool, "Profile Writes")
        key = await auth.create_api_key(pool, organization_id=org, can_write=True)
        await pool.execute(
            """
            INSERT INTO leads (organization_id, business_name, email, stage_id)
            SELECT $1, $2, $3, (
                SELECT id FROM pipeline_stages WHERE organization_id = $1 ORDER BY position
                LIMIT 1)
            FROM generate_series(1, $4)
            """,
            org,
            CREATE_INPUT["businessName"],
            CREATE_INPUT["email"],
            prior,
        )
        await pool.execute("VACUUM ANALYZE leads")
    finally:
        await pool.close()
    return org, key.key


# The plans PostgreSQL made for a connection's prepared statements so far.
PLANS: Final = """
SELECT statement, generic_plans, custom_plans
FROM pg_prepared_statements
"""


@dataclass(frozen=True, slots=True)
class Trace:
    statements: list[Any]
    # Per traced statement: (generic plans, custom plans) on the connection that ran it most.
    plans: list[tuple[int, int] | None]


async def trace(url: str, key: str) -> Trace:
    """The statements of one createLead through an in-process gateway (after a warm-up), and
    how PostgreSQL planned them: asyncpg prepares each statement once per connection, and
    whether each run is planned afresh (custom) or not (generic) is plan_cache_mode's."""
    settings = Settings(database_url=url, dispatcher_enabled=False)
    app = create_app(settings)
    recorder = Recorder()
    app[keys.STATEMENTS] = recorder
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            url_ = str(server.make_url("/graphql"))
            headers = {"Authorization": f"Bearer {key}"}

            async def send() -> None:
                body = create_mutation(f"{TRACE_KEY_PREFIX}{uuid.uuid4()}")
                async with session.post(url_, json=body, headers=headers) as resp:
                    answer = await resp.json()
                    assert resp.status == 200 and "errors" not in answer, answer  # noqa: S101

            for _ in range(POOL_SIZE * 3):  # every pooled connection's statement cache
                await send()
            # The least of a few: an idle pool's housekeeping can only add statements.
            fewest: list[Any] | None = None
            for _ in range(5):
                recorder.log = []
                recorder.recording = True
                await send()
                recorder.recording = False
                if fewest is None or len(recorder.log) < len(fewest):
                    fewest = recorder.log
            assert fewest is not None  # noqa: S101
            # The pool hands out its most recently used connection: the one that ran them.
            async with app[keys.POOL].acquire() as conn:
                made = {
                    r["statement"]: (r["generic_plans"], r["custom_plans"])
                    for r in await conn.fetch(PLANS)
                }
            return Trace(fewest, [made.get(s.query) for s in fewest])
    finally:
        await server.close()


def _plan_times(plan: Any) -> tuple[float, float]:
    top = plan[0] if isinstance(plan, list) else plan
    return float(top.get("Planning Time", 0.0)), float(top.get("Execution Time", 0.0))


async def explain(url: str, statements: list[Any]) -> list[tuple[float, float] | None]:
    """(planning ms, execution ms) per statement, the least of REPLAYS replays, each in a
    transaction that rolls back, with the traced idempotency key replaced by a fresh one (and
    the traced lead's events out of the way); None for BEGIN/COMMIT. EXPLAIN plans its
    statement for the values at hand: a custom plan, as the gateway's pool asks for."""
    traced_keys = {
        a
        for s in statements
        for a in (s.args or ())
        if isinstance(a, str) and a.startswith(TRACE_KEY_PREFIX)
    }
    lead_ids = [a for s in statements for a in (s.args or ()) if isinstance(a, uuid.UUID)]
    conn = await asyncpg.connect(url)
    await init_connection(conn)
    best: list[tuple[float, float] | None] = [None] * len(statements)
    try:
        for _ in range(REPLAYS):
            fresh = {k: f"explain-{uuid.uuid4()}" for k in traced_keys}
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("DELETE FROM lead_events WHERE lead_id = ANY($1::uuid[])", lead_ids)
            for i, s in enumerate(statements):
                if _transaction_control(s.query):
                    continue
                args = [fresh.get(a, a) if isinstance(a, str) else a for a in (s.args or ())]
                plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + s.query, *args)
                times = _plan_times(json.loads(plan) if isinstance(plan, str) else plan)
                previous = best[i]
                best[i] = (
                    times
                    if previous is None
                    else (min(previous[0], times[0]), min(previous[1], times[1]))
                )
            await transaction.rollback()
    finally:
        await conn.close()
    return best


def _transaction_control(query: str) -> bool:
    return query.split(None, 1)[0].rstrip(";").upper() in ("BEGIN", "COMMIT", "ROLLBACK")


# bench/floor.py inserts with the gateway's INSERT_LEAD, whose values have carried
# external_ids (NOT NULL; the validator defaults it to {}) since issue 12 #4, but the floor
# does not know the field: it is run here with it, and sent it.
FLOOR_WITH_EXTERNAL_IDS: Final = f"""
import sys
sys.path.insert(0, {str(ROOT / "bench")!r})
sys.argv[0] = "floor.py"
import floor
floor.CREATE_COLUMNS["externalIds"] = "external_ids"
floor.main()
"""


Send = Callable[[aiohttp.ClientSession], Awaitable[None]]


def _rest_body(_key: str) -> dict[str, Any]:
    """The bench's create input as POST /v1/leads takes it (lower-case enums)."""
    body: dict[str, Any] = dict(CREATE_INPUT)
    for name in ("source", "priority"):
        body[name] = str(body[name]).lower()
    return body


def _floor_body(key: str) -> dict[str, Any]:
    body = floor_create(key)
    return {**body, "input": {**body["input"], "externalIds": {}}}


@dataclass(frozen=True, slots=True)
class CpuFigures:
    requests: int
    seconds: float
    server_ms: float
    postgres_ms: float
    statements: float | None


async def _statement_total(session: aiohttp.ClientSession, base: str) -> float | None:
    async with session.get(base + "/metrics") as resp:
        text = await resp.text()
    found = re.search(r"^leadgate_sql_statements(?:_total)?\s+([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else None


async def load(
    server: Server,
    postmaster: int,
    send: Send,
    *,
    requests: int,
    clients: int,
    metrics: bool,
) -> CpuFigures:
    """`requests` creates from `clients` concurrent senders; CPU per request."""
    async with aiohttp.ClientSession() as session:
        for _ in range(clients * 4):  # warm the pool's connections and caches
            await send(session)
        counter = iter(range(requests))
        before_statements = await _statement_total(session, server.base_url) if metrics else None
        server_before, pg_before = tree_cpu_seconds(server.pid), tree_cpu_seconds(postmaster)
        started = time.perf_counter()

        async def client() -> None:
            for _ in counter:
                await send(session)

        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - started
        server_cpu = tree_cpu_seconds(server.pid) - server_before
        pg_cpu = tree_cpu_seconds(postmaster) - pg_before
        statements = None
        if metrics and before_statements is not None:
            after = await _statement_total(session, server.base_url)
            # The /metrics request itself sends none; the count is the creates'.
            statements = ((after or 0) - before_statements) / requests
    return CpuFigures(
        requests, seconds, server_cpu * 1000 / requests, pg_cpu * 1000 / requests, statements
    )


async def cpu(db: Database, org: uuid.UUID, key: str, args: argparse.Namespace) -> dict[str, Any]:
    assert db.postmaster_pid is not None, "the cpu phase needs the embedded server"  # noqa: S101
    log_dir = Path(tempfile.mkdtemp(prefix="leadgate-profile-writes-"))
    authorization = f"Bearer {key}"
    run = uuid.uuid4().hex[:8]
    sent = itertools.count()
    results: dict[str, list[CpuFigures]] = {}
    async with contextlib.AsyncExitStack() as stack:
        port = free_port()
        gateway = await start_server(
            stack,
            name="gateway",
            argv=leadgate("serve", "--port", str(port)),
            env={
                **db.env,
                "LEADGATE_DISPATCHER": "0",
                "LEADGATE_POOL_MIN": str(POOL_SIZE),
                "LEADGATE_POOL_MAX": str(POOL_SIZE),
            },
            port=port,
            ready_path="/readyz",
            log_dir=log_dir,
        )
        port = free_port()
        floor = await start_server(
            stack,
            name="floor",
            argv=[
                str(VENV_BIN / "python"),
                "-c",
                FLOOR_WITH_EXTERNAL_IDS,
                "--port",
                str(port),
                "--org",
                str(org),
                "--write-org",
                str(org),
                "--pool-size",
                str(POOL_SIZE),
            ],
            env={**db.env, "DATABASE_URL": db.url, "BENCH_AUTHORIZATION": authorization},
            port=port,
            ready_path="/healthz",
            log_dir=log_dir,
        )

        def sender(url: str, body: Callable[[str], dict[str, Any]], *, rest: bool = False) -> Send:
            async def send(session: aiohttp.ClientSession) -> None:
                key = f"{run}-{next(sent)}"
                headers = {"Authorization": authorization}
                if rest:
                    headers["Idempotency-Key"] = key
                async with session.post(url, json=body(key), headers=headers) as r:
                    answer = await r.read()
                    ok = r.status == (201 if rest else 200) and b'"errors"' not in answer
                    assert ok, answer  # noqa: S101

            return send

        targets = {
            "gateway": (gateway, sender(gateway.base_url + "/graphql", create_mutation), True),
            # The same service call without GraphQL: what the GraphQL layer costs on top.
            "gateway REST": (
                gateway,
                sender(gateway.base_url + "/v1/leads", _rest_body, rest=True),
                True,
            ),
            "floor": (floor, sender(floor.base_url + "/create", _floor_body), False),
        }
        for _ in range(args.rounds):
            for name, (server, send, metrics) in targets.items():
                figures = await load(
                    server,
                    db.postmaster_pid,
                    send,
                    requests=args.requests // args.rounds,
                    clients=args.clients,
                    metrics=metrics,
                )
                results.setdefault(name, []).append(figures)
                say(
                    f"  {name}: {figures.requests / figures.seconds:.0f} req/s (wall clock: noise "
                    f"on a shared machine), {figures.server_ms:.3f} ms server CPU/req, "
                    f"{figures.postgres_ms:.3f} ms PostgreSQL CPU/req"
                    + (f", {figures.statements:.2f} statements/req" if figures.statements else "")
                )
    return {
        name: {
            "server_cpu_ms": min(f.server_ms for f in figures),
            "postgres_cpu_ms": min(f.postgres_ms for f in figures),
            "total_cpu_ms": min(f.server_ms + f.postgres_ms for f in figures),
            "statements": min((f.statements for f in figures if f.statements), default=None),
        }
        for name, figures in results.items()
    }


async def main(args: argparse.Namespace) -> None:
    async with throwaway_database() as db:
        org, key = await seed(db.url, args.prior)
        say(f"seeded: {args.prior} leads with the create's email in organization {org}")
        traced = await trace(db.url, key)
        statements = traced.statements
        timings = await explain(db.url, statements)
        say(f"\ngateway createLead: {len(statements)} statements (one round trip each)")
        say("  round trip; EXPLAIN ANALYZE planning and execution ms; generic/custom plans so far")
        planning = execution = 0.0
        for s, timing, made in zip(statements, timings, traced.plans, strict=True):
            if timing is None:
                say(f"  {s.elapsed * 1000:7.3f} ms  {'':36}{label(s.query)}")
                continue
            p, e = timing
            planning += p
            execution += e
            plans = f"{made[0]:3d}/{made[1]:<3d}" if made else "   -   "
            say(
                f"  {s.elapsed * 1000:7.3f} ms  plan {p:6.3f}  exec {e:6.3f}  {plans}  "
                + label(s.query)
            )
        say(
            f"  PostgreSQL per createLead: planning {planning:.3f} ms, execution {execution:.3f} ms"
        )
        say(f"\nfloor createLead: {len(FLOOR_STATEMENTS)} statements")
        for name in FLOOR_STATEMENTS:
            say(f"  {name}")
        if args.requests:
            say(f"\nCPU: {args.requests} creates per target, {args.clients} clients")
            figures = await cpu(db, org, key, args)
            say(json.dumps(figures, indent=2))
            fl = figures["floor"]
            for name in ("gateway", "gateway REST"):
                gw = figures[name]
                ratios = [
                    gw[k] / fl[k] for k in ("server_cpu_ms", "postgres_cpu_ms", "total_cpu_ms")
                ]
                say(
                    f"{name} / floor, CPU per request: server {ratios[0]:.2f}x, "
                    f"PostgreSQL {ratios[1]:.2f}x, total {ratios[2]:.2f}x "
                    f"(as req/s if CPU bound: {1 / ratios[2]:.2f}x the floor's)"
                )


def entry() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000, help="creates per target (0: none)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the targets")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--prior", type=int, default=5000, help="look-alike leads to start with")
    args = parser.parse_args()
    asyncio.run(main(args))


if __name__ == "__main__":
    entry()
