"""Server CPU per request of the benchmark's list query and lead(id), and where it goes.

    .venv/bin/python bench/profile_list.py [--leads N] [--requests N] [--rounds R]
        [--concurrency C] [--top 30] [--compiled 0|1] [--source DIR ...] [--save DIR]

CPU time per request of the server process is the figure of merit here, not req/s: on a
machine whose cores are shared, wall-clock throughput measures the neighbours as much as the
gateway. CPU time moves too when neighbours compete for caches and cores, so targets are
measured side by side, interleaved in rounds, and compared with each other (and the floor).

1. A throwaway database (bench/stack.py), seeded as `make bench` seeds it (bench/fixture.py).
2. Targets: one gateway per `--source` (a directory holding a copy of the repo's `src/` and
   `sql/`, e.g. `git archive <commit> src sql | tar -x -C DIR`; by default the working tree;
   the first one's migrations seed the database), each `leadgate serve` as bench/run.py
   starts it (dispatcher off, pool 8), run by this script's `child` mode, which adds only two
   signals: SIGUSR1 starts cProfile, SIGUSR2 stops it and writes its stats. And
   bench/floor.py, whose list with the maintained total is the floor.
3. Per round and workload (the list query of bench/workloads.py; lead(id) over the fixture's
   lookup ids, gateways only), each target in turn: `--requests` requests over
   `--concurrency` connections after a warm-up; server CPU ms per request, user and system,
   from /proc/<pid>/stat. The medians of the rounds are reported.
4. Last, each gateway once more per workload with the profiler on (timing CPU, not wall
   time): the top functions by own time and by cumulative time (cProfile counts each
   resumption of a coroutine as a call).
Every answer must be a 200 without `errors`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import datetime as dt
import io
import itertools
import os
import pstats
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
import orjson
import report
from fixture import seed
from stack import ROOT, VENV_BIN, Server, free_port, say, start_server, throwaway_database
from workloads import dump, lead_query, list_query

POOL_SIZE: Final = 8
WARM_UP: Final = 200
PROFILE_READY_SECONDS: Final = 30.0
FLOOR: Final = "floor (maintained total)"
LIST: Final = "list"
LOOKUP: Final = "lead(id)"


def child(argv: list[str]) -> None:
    """`leadgate serve …` with a profiler that SIGUSR1 starts and SIGUSR2 stops, writing
    its stats to $PROFILE_LIST_STATS."""
    from leadgate.cli import main  # noqa: PLC0415 - only the child imports the gateway

    # CPU time, not wall time: on a busy machine a wall clock charges whatever call was running
    # when the process lost its core (often a socket write that woke a neighbour).
    profiler = cProfile.Profile(time.process_time)
    stats_path = Path(os.environ["PROFILE_LIST_STATS"])

    def start(_signum: int, _frame: object) -> None:
        profiler.enable()

    def stop(_signum: int, _frame: object) -> None:
        profiler.disable()
        partial = stats_path.with_suffix(".partial")
        profiler.dump_stats(partial)
        partial.rename(stats_path)
        profiler.clear()

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    main(argv)


@dataclass(slots=True)
class Target:
    name: str
    server: Server
    path: str  # where the list query is POSTed
    stats: Path | None  # a gateway's profile; None for the floor
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


async def fire(
    http: aiohttp.ClientSession,
    url: str,
    authorization: str,
    bodies: Iterator[bytes],
    count: int,
    concurrency: int,
) -> None:
    """`count` POSTs over `concurrency` connections; each answer must be a 200 without errors."""
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    remaining = count

    async def connection() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with http.post(url, data=next(bodies), headers=headers) as response:
                answer = await response.read()
            if response.status != 200 or b'"errors"' in answer:
                raise RuntimeError(f"{url}: {response.status}: {answer[:300]!r}")

    await asyncio.gather(*(connection() for _ in range(concurrency)))


async def cpu_per_request(
    http: aiohttp.ClientSession,
    target: Target,
    path: str,
    bodies: Iterator[bytes],
    authorization: str,
    options: argparse.Namespace,
) -> tuple[float, float]:
    """User and system CPU ms per request of one run."""
    url = target.server.base_url + path
    await fire(http, url, authorization, bodies, WARM_UP, options.concurrency)
    user, system = cpu_seconds(target.server.pid)
    await fire(http, url, authorization, bodies, options.requests, options.concurrency)
    user_after, system_after = cpu_seconds(target.server.pid)
    scale = 1000 / options.requests
    return (user_after - user) * scale, (system_after - system) * scale


async def profile(
    http: aiohttp.ClientSession,
    target: Target,
    path: str,
    bodies: Iterator[bytes],
    authorization: str,
    options: argparse.Namespace,
    keep_as: str,
) -> str:
    """The profile's top functions; with --save, its stats kept there as `keep_as`.prof."""
    stats = target.stats
    if stats is None:
        raise ValueError(f"{target.name} runs no profiler")
    url = target.server.base_url + path
    stats.unlink(missing_ok=True)
    os.kill(target.server.pid, signal.SIGUSR1)
    await fire(http, url, authorization, bodies, options.requests, options.concurrency)
    os.kill(target.server.pid, signal.SIGUSR2)
    deadline = time.monotonic() + PROFILE_READY_SECONDS
    while not stats.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target.name} wrote no profile")
        await asyncio.sleep(0.1)
    out = io.StringIO()
    table = pstats.Stats(str(stats), stream=out)
    table.strip_dirs()
    for order in ("tottime", "cumulative"):
        out.write(f"--- top {options.top} by {order} ---\n")
        table.sort_stats(order).print_stats(options.top)
    if options.save is not None:
        options.save.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stats, options.save / f"{keep_as}.prof")
    return out.getvalue()


async def start_targets(
    stack: contextlib.AsyncExitStack,
    env: dict[str, str],
    fixture_org: str,
    write_org: str,
    authorization: str,
    options: argparse.Namespace,
    work: Path,
) -> list[Target]:
    targets = []
    for n, source in enumerate(options.source or [None]):
        name = f"gateway {source}" if source is not None else "gateway (working tree)"
        port = free_port()
        stats = work / f"gateway-{n}.prof"
        gateway_env = {
            **env,
            "LEADGATE_DISPATCHER": "0",
            "LEADGATE_POOL_MIN": str(POOL_SIZE),
            "LEADGATE_POOL_MAX": str(POOL_SIZE),
            "LEADGATE_COMPILED_QUERIES": options.compiled,
            "PROFILE_LIST_STATS": str(stats),
        }
        gateway_env.update(_pythonpath([source] if source is not None else None))
        server = await start_server(
            stack,
            name=f"gateway-{n}",
            argv=[sys.executable, __file__, "child", "serve", "--port", str(port)],
            env=gateway_env,
            port=port,
            ready_path="/healthz",
            log_dir=work,
        )
        targets.append(Target(name, server, "/graphql", stats))
    port = free_port()
    floor = await start_server(
        stack,
        name="floor",
        argv=[str(VENV_BIN / "python"), str(ROOT / "bench" / "floor.py"), "--port", str(port)]
        + ["--org", fixture_org, "--write-org", write_org, "--pool-size", str(POOL_SIZE)],
        env={**env, "BENCH_AUTHORIZATION": authorization},
        port=port,
        ready_path="/healthz",
        log_dir=work,
    )
    targets.append(Target(FLOOR, floor, "/graphql-maintained-total", None))
    return targets


def _slug(workload: str) -> str:
    return "list" if workload == LIST else "lead"


def _pythonpath(sources: list[str] | None) -> dict[str, str]:
    """The environment that runs the first of `sources` (none: the working tree)."""
    return {"PYTHONPATH": str(Path(sources[0]).resolve() / "src")} if sources else {}


def median_ms(runs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Median total, user and system CPU ms per request over the rounds."""
    return (
        statistics.median(u + s for u, s in runs),
        statistics.median(u for u, _ in runs),
        statistics.median(s for _, s in runs),
    )


async def run(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="leadgate-profile-") as work_dir:
        targets = await measure_all(options, Path(work_dir))
    summarise(targets, options)


async def measure_all(options: argparse.Namespace, work: Path) -> list[Target]:
    async with throwaway_database() as db, contextlib.AsyncExitStack() as stack:
        record = report.Run(started=dt.datetime.now(dt.UTC), options={}, log_dir=work)
        # Seeded by the first target's own tree, so its migrations are the ones applied.
        seeding = dataclasses.replace(db, env={**db.env, **_pythonpath(options.source)})
        fixture = await seed(seeding, options.leads, record)
        authorization = f"Bearer {fixture.key}"
        env = {**db.env, "DATABASE_URL": db.url}
        targets = await start_targets(
            stack, env, fixture.org, fixture.write_org, authorization, options, work
        )
        list_body = dump(list_query(20)).encode()
        lookups = [dump(lead_query(i)).encode() for i in fixture.lookup_ids]
        workloads: dict[str, Callable[[], Iterator[bytes]]] = {
            LIST: lambda: itertools.repeat(list_body),
            LOOKUP: lambda: itertools.cycle(lookups),
        }
        async with aiohttp.ClientSession() as http:
            for round_number in range(options.rounds):
                # Rotated, so no target always runs first (or right after the same one).
                shift = round_number % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    for workload, bodies in workloads.items():
                        if target.stats is None and workload != LIST:
                            continue
                        path = target.path if workload == LIST else "/graphql"
                        runs = target.cpu.setdefault(workload, [])
                        runs.append(
                            await cpu_per_request(
                                http, target, path, bodies(), authorization, options
                            )
                        )
                        total, user, system = median_ms(runs[-1:])
                        say(
                            f"round {round_number + 1} {target.name} {workload}: "
                            f"{total:.3f} ms ({user:.3f} user + {system:.3f} sys)"
                        )
            for n, target in enumerate(targets):
                if target.stats is not None:
                    for workload, bodies in workloads.items():
                        target.profiles[workload] = await profile(
                            http,
                            target,
                            target.path,
                            bodies(),
                            authorization,
                            options,
                            keep_as=f"gateway-{n}-{_slug(workload)}",
                        )
    return targets


def summarise(targets: list[Target], options: argparse.Namespace) -> None:
    say(
        f"\nserver CPU ms per request, median of {options.rounds} rounds of {options.requests} "
        f"({options.leads:,} leads, {options.concurrency} connections, "
        f"LEADGATE_COMPILED_QUERIES={options.compiled})"
    )
    floor = median_ms(targets[-1].cpu[LIST])[0]
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for target in targets:
        for workload, runs in target.cpu.items():
            total, user, system = median_ms(runs)
            versus = f", {total / floor:.2f}x the floor's" if workload == LIST else ""
            say(
                f"  {target.name:40} {workload:9} {total:6.3f} "
                f"({user:.3f} user + {system:.3f} sys){versus}"
            )
            summary.setdefault(target.name, {})[workload] = {
                "total": total,
                "user": user,
                "system": system,
            }
    for target in targets:
        for workload, text in target.profiles.items():
            say(f"\n===== {target.name}: {workload} (under the profiler) =====\n{text}")
    if options.save is not None:
        options.save.mkdir(parents=True, exist_ok=True)
        (options.save / "cpu.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        for n, target in enumerate(targets):
            for workload, text in target.profiles.items():
                (options.save / f"gateway-{n}-{_slug(workload)}.txt").write_text(text)


def main() -> None:
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--compiled", choices=("0", "1"), default="1")
    parser.add_argument(
        "--source",
        action="append",
        help="a directory holding a copy of src/ to run (repeatable; default: the working tree)",
    )
    parser.add_argument("--save", type=Path, help="write cpu.json and the profiles here")
    options = parser.parse_args()
    os.chdir(ROOT)
    asyncio.run(run(options))


if __name__ == "__main__":
    main()
