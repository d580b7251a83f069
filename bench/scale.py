"""`make bench-scale`: the scale-out parts measured in one run, on one machine.

    .venv/bin/python bench/scale.py [--quick] [--leads N] [--subscribers N] [--rate R] ...

On a throwaway database (as `make bench`: a fresh one on DATABASE_URL's server, or an
embedded PostgreSQL in a temp dir), seeded by bench/fixture.py, and a nats-server of its own
(JetStream, a free port, a temp store):

1. list req/s: the 20 newest leads (bench/workloads.py), `leadgate serve --workers 1` vs
   `--workers 2`, both up, wrk at 16 connections in interleaved rounds (bench/loadgen.py);
2. createLead tx/s, into one organization and spread over --orgs: `serve --workers 2` (pool
   32 per worker) with LISTEN/NOTIFY vs with LEADGATE_EVENT_BUS, at 16 and 64 connections; one
   gateway at a time (both would need more than the embedded server's 100 connections),
   alternating each round; what PostgreSQL's backends wait for sampled during every run;
3. fan-out: N subscribers over two `serve` processes on two ports with NATS, half on each,
   through bench/subscribers.py's client processes: commit (changedAt) to receipt;
4. relay lag: moveLead at a fixed rate (bench/openloop.py, open loop) into the NATS gateway;
   per event, from its commit (a 5 ms poll of the table) and from its created_at to its NATS
   message and to a GraphQL subscriber; and how PostgreSQL runs the relay's read.

Writes bench/SCALE.md (bench/out/SCALE-quick.md for --quick), keeping the earlier runs' rows
(bench/scale_report.py, bench/scale_limits.py; bench/pgwatch.py watches PostgreSQL). Logs and
raw wrk output go to bench/out/scale-<timestamp>/. Every process and the database are stopped
however the run ends (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import io
import json
import os
import platform
import resource
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Final

import aiohttp
import asyncpg
import nats
import report
from fixture import Fixture, organization, reset_moves, seed
from loadgen import Case, Runner, Series, Wrk, describe
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from openloop import Summary
from pgwatch import COMMIT_POLL_SECONDS, Waits, explain, sampling_waits, watching_commits
from run import POOL_SIZE
from scale_limits import limits
from scale_report import (
    NATS,
    NOTIFY,
    Burst,
    EventTimes,
    FanOut,
    ScaleRun,
    render,
)
from stack import (
    ROOT,
    CpuMeter,
    Database,
    Server,
    ensure_wrk,
    free_port,
    leadgate,
    run_benchmark,
    say,
    start_nats,
    start_server,
    throwaway_database,
)
from subscribers import Mover, Receipts, delays, percentile, prime, timed_moves, workers
from workloads import create_case, list_case, write_bodies

from leadgate.events.nats_bus import BATCH, COMMITTED_AFTER, MSG_ID, STREAM

# 2 workers × 32: 64 transactions at once, the most connections wrk drives.
WRITE_WORKERS: Final = 2
WRITE_POOL: Final = 32
WRITE_CONNECTIONS: Final = (16, 64)
LIST_CONNECTIONS: Final = 16
BURST_CONNECTIONS: Final = 64
CATCH_UP_SECONDS: Final = 60.0
DRAIN_SECONDS: Final = 30.0

NEWEST_EVENT: Final = "SELECT coalesce(max(id), 0) FROM lead_events"
MOVES_AFTER: Final = """
SELECT id, extract(epoch FROM created_at)::float8 AS created
FROM lead_events
WHERE organization_id = $1
  AND id > $2
  AND type = 'lead.status_changed'
ORDER BY id
"""


@dataclass(frozen=True, slots=True)
class Options:
    leads: int
    rounds: int
    seconds: int
    warmup: int
    subscribers: int
    clients: int
    moves: int
    orgs: int
    rate: float
    burst: int
    quiet_wait: int
    source: str | None
    out: Path
    quick: bool


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (under 2 min): 10,000 leads, 1 round of 2 s, no waiting for a quiet "
        "machine, 1,000 subscribers, 3 moves, a 2 s burst; written to bench/out/SCALE-quick.md",
    )
    parser.add_argument("--leads", type=int, default=None, help="demo leads (100,000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per case (3)")
    parser.add_argument("--duration", type=int, default=None, help="seconds per run (10)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up seconds (3)")
    parser.add_argument("--subscribers", type=int, default=None, help="fan-out (10,000)")
    parser.add_argument("--clients", type=int, default=4, help="subscriber client processes")
    parser.add_argument("--moves", type=int, default=None, help="measured fan-out moves (10)")
    parser.add_argument(
        "--orgs", type=int, default=8, help="organizations createLead also spreads over (8)"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="burst writes/s (1,000)")
    parser.add_argument("--burst", type=int, default=None, help="burst seconds (10)")
    parser.add_argument(
        "--quiet-wait",
        type=int,
        default=None,
        help="seconds to wait before a run for other processes to calm down (15; 0: never)",
    )
    parser.add_argument(
        "--source",
        default=None,
        metavar="REVISION",
        help="measure the gateway of this git revision (its src/ and sql/ exported to a temp "
        "dir, on PYTHONPATH) rather than the working tree, which others may be editing",
    )
    parser.add_argument("--out", type=Path, default=None, help="the report (bench/SCALE.md)")
    args = parser.parse_args(argv)
    quick: bool = args.quick

    def pick(value: int | None, full: int, smoke: int) -> int:
        return value if value is not None else (smoke if quick else full)

    return Options(
        leads=pick(args.leads, 100_000, 10_000),
        rounds=max(1, pick(args.rounds, 3, 1)),
        seconds=max(1, pick(args.duration, 10, 2)),
        warmup=max(1, pick(args.warmup, 3, 1)),
        subscribers=max(2, pick(args.subscribers, 10_000, 1_000)),
        clients=max(2, args.clients),
        moves=max(1, pick(args.moves, 10, 3)),
        orgs=max(2, args.orgs),
        rate=args.rate,
        burst=max(1, pick(args.burst, 10, 2)),
        quiet_wait=pick(args.quiet_wait, 15, 0),
        source=args.source,
        out=args.out or ROOT / "bench" / ("out/SCALE-quick.md" if quick else "SCALE.md"),
        quick=quick,
    )


# --- gateways and the bus


async def start_gateway(
    stack: contextlib.AsyncExitStack,
    name: str,
    db: Database,
    log_dir: Path,
    *,
    workers: int,
    pool: int | None,
    bus: str | None,
) -> Server:
    """`leadgate serve --workers N` on a free port, LISTEN/NOTIFY or the NATS `bus`."""
    port = free_port()
    env = {k: v for k, v in db.env.items() if k != "LEADGATE_EVENT_BUS"}
    env["LEADGATE_DISPATCHER"] = "0"
    if pool is not None:
        env |= {"LEADGATE_POOL_MIN": str(pool), "LEADGATE_POOL_MAX": str(pool)}
    if bus is not None:
        env["LEADGATE_EVENT_BUS"] = bus
    return await start_server(
        stack,
        name=name,
        argv=leadgate("serve", "--workers", str(workers), "--port", str(port)),
        env=env,
        port=port,
        ready_path="/readyz",
        log_dir=log_dir,
    )


async def relay_caught_up(nats_url: str, db: Database) -> None:
    """Until the stream's last message is the table's newest event: a relay that took over
    publishes what the table holds first (here, what a LISTEN/NOTIFY gateway wrote)."""
    conn = await asyncpg.connect(db.url)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while True:
            newest: int = await conn.fetchval(NEWEST_EVENT)
            published = 0
            with contextlib.suppress(NotFoundError):
                info = await js.stream_info(STREAM)
                if info.state.messages:
                    msg = await js.get_msg(STREAM, seq=info.state.last_seq)
                    published = int((msg.headers or {})[MSG_ID])
            if published >= newest:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relay is at event {published} of {newest}")
            await asyncio.sleep(0.1)
    finally:
        await nc.close()
        await conn.close()


# --- the four measurements


async def measure_lists(
    runner: Runner, servers: dict[str, Server], db: Database, ctx: Context
) -> list[Series]:
    o = ctx.options
    series: dict[Case, Series] = {}
    async with contextlib.AsyncExitStack() as phase:
        cases = []
        for count in (1, 2):
            name = f"workers {count}"
            server = await start_gateway(
                phase, name, db, ctx.log_dir, workers=count, pool=POOL_SIZE, bus=None
            )
            servers[name] = server
            cases.append(
                list_case(
                    name,
                    server.base_url + "/graphql",
                    ctx.bodies,
                    f"Bearer {ctx.fixture.key}",
                    LIST_CONNECTIONS,
                )
            )
        await runner.interleaved(
            "list", [cases], series, warmup=o.warmup, rounds=o.rounds, seconds=o.seconds
        )
    return list(series.values())


async def measure_writes(
    runner: Runner, servers: dict[str, Server], db: Database, ctx: Context, run: ScaleRun
) -> list[Series]:
    o = ctx.options
    series: dict[tuple[str, str, int], Series] = {}

    @contextlib.asynccontextmanager
    async def during(case: Case, label: str) -> AsyncIterator[None]:
        if label == "warmup":
            yield
            return
        waits = run.waits.setdefault((case.workload, case.target, case.connections), Waits())
        async with sampling_waits(db, waits):
            yield

    # One organization, then the same writes spread over several (their keys in turn).
    spreads = {
        "createLead, 1 organization": f"Bearer {ctx.fixture.write_key}",
        f"createLead, {len(ctx.write_keys)} organizations": ",".join(
            f"Bearer {key}" for key in ctx.write_keys
        ),
    }
    runner.during = during
    buses = [(NOTIFY, None), (NATS, ctx.nats_url)]
    for r in range(o.rounds):
        for bus, url in buses[r % 2 :] + buses[: r % 2]:
            async with contextlib.AsyncExitStack() as phase:
                server = await start_gateway(
                    phase,
                    f"createLead {bus} round {r + 1}".replace("/", "-"),
                    db,
                    ctx.log_dir,
                    workers=WRITE_WORKERS,
                    pool=WRITE_POOL,
                    bus=url,
                )
                servers[bus] = server
                if url is not None:
                    await relay_caught_up(url, db)
                url_of = server.base_url + "/graphql"
                cases = [
                    replace(
                        create_case(
                            bus,
                            url_of,
                            ctx.bodies,
                            auth,
                            conns,
                            template="create-distinct-template.json",
                        ),
                        workload=workload,
                    )
                    for workload, auth in spreads.items()
                    for conns in WRITE_CONNECTIONS
                ]
                await runner.one(cases[-1], o.warmup, "warmup")
                shift = r % len(cases)
                for case in cases[shift:] + cases[:shift]:
                    m = await runner.one(case, o.seconds, f"round{r + 1}")
                    key = (case.workload, bus, case.connections)
                    series.setdefault(key, Series(case)).rounds.append(m)
                    say(describe(case, m))
    runner.during = None
    return [series[k] for k in sorted(series, key=lambda k: (k[0], k[2], k[1] != NOTIFY))]


async def measure_fan_out(db: Database, ctx: Context, meter: CpuMeter) -> FanOut:
    o = ctx.options
    key = ctx.fixture.key
    async with contextlib.AsyncExitStack() as phase:
        gateways = [
            await start_gateway(
                phase, f"fan-out {i + 1}", db, ctx.log_dir, workers=1, pool=None, bus=ctx.nats_url
            )
            for i in range(2)
        ]
        await relay_caught_up(ctx.nats_url, db)
        urls = [g.base_url.replace("http://", "ws://") + "/graphql" for g in gateways]
        http = await phase.enter_async_context(aiohttp.ClientSession())
        mover = await Mover.load(http, gateways[0].base_url, key)
        conn = await asyncpg.connect(db.url)
        try:
            cursor = str(await conn.fetchval(NEWEST_EVENT))
        finally:
            await conn.close()
        # Warm up both gateways' fan-out path with one subscriber each and one move.
        warm = Receipts()
        async with workers(urls, key, 2, 2, cursor, warm):
            await prime(warm, mover, 2, within=30)
        await asyncio.sleep(1.0)
        rss_idle = [g.memory_kib() or 0 for g in gateways]

        receipts = Receipts()
        say(f"fan-out: connecting {o.subscribers:,} subscribers over {len(gateways)} gateways")
        started = time.monotonic()
        async with workers(urls, key, o.subscribers, o.clients, warm.latest(), receipts):
            priming = await prime(receipts, mover, o.subscribers, within=120)
            connect_seconds = time.monotonic() - started
            await asyncio.sleep(1.0)
            rss_with = [g.memory_kib() or 0 for g in gateways]
            cpu = [g.cpu_seconds() for g in gateways]
            before = meter.snapshot()
            moving = time.monotonic()
            sent_at = await timed_moves(
                receipts,
                mover,
                moves=o.moves,
                subscribers=o.subscribers,
                per_move=30,
                interval=0.3,
            )
            after = meter.snapshot()
            moved = time.monotonic() - moving
            used = [g.cpu_seconds() - c for g, c in zip(gateways, cpu, strict=True)]
    measured = delays(receipts, priming, sent_at, moves=o.moves, verbose=False)
    postgres = after.postgres - before.postgres
    per_move = 1000 / o.moves
    result = FanOut(
        subscribers=o.subscribers,
        gateways=len(gateways),
        clients=o.clients,
        moves=o.moves,
        delays=measured,
        connect_seconds=connect_seconds,
        gateways_cpu_ms=sum(used) * per_move,
        each_gateway_cpu_ms=[u * per_move for u in used],
        postgres_cpu_ms=postgres * per_move,
        clients_cpu_ms=max(0.0, after.ours - before.ours - sum(used) - postgres) * per_move,
        rss_idle_kib=rss_idle,
        rss_with_kib=rss_with,
        other_cores=after.other_since(before) / moved,
    )
    say(
        f"fan-out: {result.delays.received_min:,}/{o.subscribers:,} per move, "
        f"p50 {percentile(measured.changed_ms, 50):.0f} ms, "
        f"p99 {percentile(measured.changed_ms, 99):.0f} ms"
    )
    return result


async def drive_open_loop(url: str, authorization: str, bodies: Path, o: Options) -> Summary:
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "openloop.py"),
        url,
        authorization,
        str(bodies),
        "--rate",
        str(o.rate),
        "--seconds",
        str(o.burst),
        "--connections",
        str(BURST_CONNECTIONS),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await writer.communicate()
    if writer.returncode != 0:
        raise RuntimeError(f"bench/openloop.py failed ({writer.returncode})")
    return Summary(**json.loads(out))


async def measure_burst(db: Database, ctx: Context, meter: CpuMeter) -> Burst:
    o = ctx.options
    fixture = ctx.fixture
    await reset_moves(db, fixture)
    async with contextlib.AsyncExitStack() as phase:
        server = await start_gateway(
            phase,
            "burst",
            db,
            ctx.log_dir,
            workers=WRITE_WORKERS,
            pool=WRITE_POOL,
            bus=ctx.nats_url,
        )
        await relay_caught_up(ctx.nats_url, db)
        conn = await asyncpg.connect(db.url)
        phase.push_async_callback(conn.close)
        cursor: int = await conn.fetchval(NEWEST_EVENT)
        relay_read = await explain(conn, COMMITTED_AFTER, cursor, BATCH)
        events_in_table: int = await conn.fetchval("SELECT count(*) FROM lead_events")

        on_nats: dict[int, float] = {}
        arrived = asyncio.Event()

        async def heard(msg: Msg) -> None:
            on_nats.setdefault(int(msg.data.decode()), time.time())
            arrived.set()

        nc = await nats.connect(ctx.nats_url)
        phase.push_async_callback(nc.close)
        await nc.subscribe(f"leadgate.{fixture.org}.lead.status_changed", cb=heard)
        receipts = Receipts()
        ws = server.base_url.replace("http://", "ws://") + "/graphql"
        await phase.enter_async_context(workers([ws], fixture.key, 1, 1, str(cursor), receipts))
        visible: dict[int, float] = {}
        await phase.enter_async_context(watching_commits(db, fixture.org, cursor, visible))
        say(f"burst: {o.rate:,.0f} moveLead/s for {o.burst} s")
        cpu = server.cpu_seconds()
        before = meter.snapshot()
        started = time.monotonic()
        waits = Waits()
        async with sampling_waits(db, waits):
            summary = await drive_open_loop(
                server.base_url + "/graphql",
                f"Bearer {fixture.key}",
                ctx.bodies["move-lines.txt"],
                o,
            )
        seconds = time.monotonic() - started
        after = meter.snapshot()
        used = server.cpu_seconds() - cpu
        created = {
            r["id"]: r["created"] for r in await conn.fetch(MOVES_AFTER, fixture.org, cursor)
        }
        wanted = {str(i) for i in created}
        await receipts.wait_for(lambda: wanted <= set(receipts.by_event), DRAIN_SECONDS)

        async def relayed() -> None:
            while not set(created) <= set(on_nats):
                arrived.clear()
                await arrived.wait()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(relayed(), DRAIN_SECONDS)
    if receipts.problems:
        raise RuntimeError(f"the burst's subscriber got errors: {receipts.problems[:3]}")
    result = Burst(
        writer=summary,
        events=[
            EventTimes(
                created=c,
                visible=visible.get(i),
                on_nats=on_nats.get(i),
                received=receipts.by_event[str(i)][0][0] if str(i) in receipts.by_event else None,
            )
            for i, c in created.items()
        ],
        commit_poll_ms=COMMIT_POLL_SECONDS * 1000,
        relay_read=relay_read,
        events_in_table=events_in_table,
        waits=waits,
        seconds=seconds,
        gateway_cores=used / seconds,
        postgres_cores=(after.postgres - before.postgres) / seconds,
        busy_cores=(after.busy - before.busy) / seconds,
        other_cores=after.other_since(before) / seconds,
    )
    say(
        f"burst: {summary.achieved_rate:,.0f} writes/s achieved of {o.rate:,.0f}; "
        f"{len(on_nats):,} of {len(created):,} events on NATS"
    )
    return result


# --- the run


@dataclass(frozen=True, slots=True)
class Context:
    options: Options
    fixture: Fixture
    bodies: dict[str, Path]
    # The write organization's key and those of the others createLead spreads over.
    write_keys: list[str]
    nats_url: str
    log_dir: Path


async def exported_source(stack: contextlib.AsyncExitStack, revision: str) -> str:
    """src/ and sql/ of `revision` in a temp dir, first on every child process's PYTHONPATH:
    the gateway measured stays that commit while others edit the working tree."""
    commit = await report.output("git", "rev-parse", "--short", "--verify", revision + "^{commit}")
    archive = await asyncio.create_subprocess_exec(
        "git",
        "archive",
        "--format=tar",
        commit,
        "src",
        "sql",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    data, _ = await archive.communicate()
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {revision} failed ({archive.returncode})")
    export = Path(tempfile.mkdtemp(prefix="leadgate-bench-src-"))
    stack.callback(shutil.rmtree, export, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(export, filter="data")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(export / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return f"commit {commit} (its src/ and sql/ exported by `--source {revision}`)"


async def versions(db: Database) -> dict[str, str]:
    found = {"Python": platform.python_version()}
    for package in ("aiohttp", "asyncpg", "nats-py"):
        found[package] = metadata.version(package)
    conn = await asyncpg.connect(db.url)
    try:
        found["PostgreSQL"] = f"{await conn.fetchval('SHOW server_version')} ({db.kind})"
    finally:
        await conn.close()
    found["nats-server"] = (await report.output("nats-server", "--version")).removeprefix(
        "nats-server: "
    )
    found["wrk"] = (await report.output("wrk", "-v")).split(" [", 1)[0].removeprefix("wrk ")
    return found


async def main(options: Options) -> Path:
    # SIGTERM cancels like Ctrl-C does.
    this = asyncio.current_task()
    assert this is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
    started = dt.datetime.now(dt.UTC)
    log_dir = ROOT / "bench" / "out" / f"scale-{started:%Y%m%d-%H%M%S}"
    log_dir.mkdir(parents=True, exist_ok=True)
    say(f"logs and raw wrk output: {log_dir}")
    wrk = Wrk(ensure_wrk(), log_dir / "wrk")
    wrk.log_dir.mkdir()
    run = ScaleRun(
        started=started,
        options=dataclasses.asdict(options),
        log_dir=log_dir,
        machine=report.machine(),
        loadavg_start=os.getloadavg(),
        list_pool=POOL_SIZE,
        write_pool=WRITE_POOL,
    )
    async with contextlib.AsyncExitStack() as stack:
        if options.source is None:
            run.source = await report.source()
        else:
            run.source = await exported_source(stack, options.source)
        db = await stack.enter_async_context(throwaway_database())
        run.database = db.kind
        seeded = report.Run(started=started, options={}, log_dir=log_dir)
        fixture = await seed(db, options.leads, seeded)
        run.leads = options.leads
        run.versions = await versions(db)
        others = await asyncio.gather(
            *(organization(db, f"Bench Writes {i + 2}") for i in range(options.orgs - 1))
        )
        _, nats_url = await start_nats(stack, log_dir)
        ctx = Context(
            options=options,
            fixture=fixture,
            bodies=write_bodies(fixture, log_dir / "bodies"),
            write_keys=[fixture.write_key, *(key for _, key in others)],
            nats_url=nats_url,
            log_dir=log_dir,
        )
        meter = CpuMeter([], db.postmaster_pid)
        before = meter.snapshot()
        await asyncio.sleep(3)
        run.idle_other_cores = meter.snapshot().other_since(before) / 3
        say(f"other processes' load before the runs: {run.idle_other_cores:.2f} cores")
        servers: dict[str, Server] = {}
        runner = Runner(
            wrk,
            meter,
            servers,
            options.quiet_wait,
            problems=run.problems,
            busy_starts=run.busy_starts,
        )
        run.lists = await measure_lists(runner, servers, db, ctx)
        run.writes = await measure_writes(runner, servers, db, ctx, run)
        run.fan_out = await measure_fan_out(db, ctx, meter)
        run.burst = await measure_burst(db, ctx, meter)
    run.loadavg_end = os.getloadavg()
    run.finished = dt.datetime.now(dt.UTC)
    previous = options.out.read_text() if options.out.exists() else ""
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(render(run, previous, limits(run, os.cpu_count() or 1)))
    return options.out


def entry() -> None:
    options = parse_options()
    # Each subscriber is a socket in a gateway and one in a client process.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < options.subscribers // 2 + 500:
        raise SystemExit(f"open-file limit {hard} is too low for {options.subscribers} subscribers")
    run_benchmark(main(options))


if __name__ == "__main__":
    entry()
