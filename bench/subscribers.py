"""How fast one gateway process fans a stage move out to many subscribers, and what each costs.

    .venv/bin/python bench/subscribers.py --subscribers 1000 [--moves 20] [--clients 4]

Starts its own `leadgate serve --demo` (on a throwaway database of DATABASE_URL's server, or
on an embedded PostgreSQL in a temporary LEADGATE_DATA_DIR), opens N graphql-transport-ws
connections with one leadStageChanged subscription each (spread over --clients worker
processes, so that one client event loop is not what is measured), makes one priming move that
every subscriber must receive (proof that all are subscribed), then K measured moves through
REST, one at a time, each once the previous one reached everybody (or --timeout passed).

For every (subscriber, move) it records the delay from the event's `changedAt` (the moving
transaction's start, on this machine's clock) and from just before the REST request was sent,
to the moment the worker process read the message. The gateway's VmRSS is read from /proc
before the subscribers connect and once they all are subscribed. A row is appended to
bench/SUBSCRIBERS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

HERE: Final = Path(__file__).resolve().parent
LEADGATE: Final = Path(sys.executable).with_name("leadgate")
REPORT: Final = HERE / "SUBSCRIBERS.md"
SUBSCRIPTION: Final = """
subscription($after: ID) {
  leadStageChanged(after: $after) { eventId changedAt lead { id } toStage { id } }
}
"""
# Handshakes in flight per worker: enough to connect 1,000 in a few seconds without a storm.
HANDSHAKES: Final = 50
STARTUP_DEADLINE: Final = 120.0
REPORT_HEADER: Final = """# Subscriber fan-out: one gateway process, N subscribers, one org

Produced by `bench/subscribers.py` (see its docstring). Delays are from the event's
`changedAt` (start of the moving transaction) to the moment a client worker read the message;
"from request" is from just before the REST move was sent. All processes (gateway,
PostgreSQL, client workers) share one machine, so the figures include client-side queueing.

| date | N | moves | received | p50 ms | p99 ms | max ms | p50 / p99 ms from request | \
CPU ms / move | RSS idle MB | RSS with N MB | KB / subscriber | clients | database | cpus |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""


# --- the worker: N/P subscriptions in one process ---------------------------------------------


async def _subscribe_one(
    session: aiohttp.ClientSession, url: str, key: str, after: str, gate: asyncio.Semaphore
) -> aiohttp.ClientWebSocketResponse:
    async with gate:
        ws = await session.ws_connect(url, protocols=["graphql-transport-ws"], heartbeat=None)
        await ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}
        )
        ack = await asyncio.wait_for(ws.receive_json(), 30)
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"not acknowledged: {ack}")
        await ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": SUBSCRIPTION, "variables": {"after": after}},
            }
        )
        return ws


async def _read(ws: aiohttp.ClientWebSocketResponse, out: list[str]) -> None:
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        received = time.time()
        body = json.loads(message.data)
        if body.get("type") == "ping":
            await ws.send_json({"type": "pong"})
        elif body.get("type") == "next" and body["payload"].get("data"):
            change = body["payload"]["data"]["leadStageChanged"]
            changed = datetime.fromisoformat(change["changedAt"]).timestamp()
            out.append(f"{change['eventId']} {received:.6f} {changed:.6f}\n")
        else:
            out.append(f"! {json.dumps(body)}\n")


async def run_worker(url: str, key: str, count: int, after: str) -> None:
    """Subscribe `count` connections, say `ready`, then print one line per message read."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    out: list[str] = []
    gate = asyncio.Semaphore(HANDSHAKES)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = await asyncio.gather(
            *(_subscribe_one(session, url, key, after, gate) for _ in range(count))
        )
        readers = [asyncio.create_task(_read(ws, out)) for ws in sockets]
        print("ready", flush=True)
        while not stop.is_set():
            # Written in batches: a flush per message would cost more than the reading.
            await asyncio.sleep(0.01)
            if out:
                lines, out[:] = "".join(out), []
                sys.stdout.write(lines)
                sys.stdout.flush()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


# --- the gateway under test -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Gateway:
    process: asyncio.subprocess.Process
    base: str
    key: str
    log: Path

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/graphql"


@contextlib.asynccontextmanager
async def bench_database() -> AsyncIterator[tuple[dict[str, str], str]]:
    """The environment for `leadgate serve`, and a label of the database it runs on."""
    workdir = Path(tempfile.mkdtemp(prefix="leadgate-bench-"))
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    env["LEADGATE_DATA_DIR"] = str(workdir / "data")
    server_url = os.environ.get("DATABASE_URL")
    name = f"leadgate_bench_{uuid.uuid4().hex[:12]}"
    try:
        if server_url:
            conn = await asyncpg.connect(server_url)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            env["DATABASE_URL"] = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
            yield env, "DATABASE_URL"
        else:
            yield env, "embedded"
    finally:
        if server_url:
            conn = await asyncpg.connect(server_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
        pid_file = workdir / "data" / "pg" / "postmaster.pid"
        if pid_file.exists():  # serve normally stops the embedded server it started
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)
            for _ in range(100):
                if not pid_file.exists():
                    break
                await asyncio.sleep(0.1)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def gateway(env: Mapping[str, str], workdir: Path) -> AsyncIterator[Gateway]:
    port = free_port()
    log = workdir / "serve.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            str(LEADGATE),
            "serve",
            "--demo",
            "--port",
            str(port),
            env={**env, "LEADGATE_DISPATCHER": "0"},
            cwd=workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    try:
        key = await _printed_key(process, log)
        base = f"http://127.0.0.1:{port}"
        await _wait_until_healthy(base, process, log)
        yield Gateway(process, base, key, log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.communicate(), 30)
            except TimeoutError:
                process.kill()
                await process.communicate()


def _log_text(log: Path) -> str:
    return log.read_text(errors="replace")


async def _printed_key(process: asyncio.subprocess.Process, log: Path) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(STARTUP_DEADLINE):
        while line := (await process.stdout.readline()).decode():
            if line.startswith("API key:"):
                return line.split(":", 1)[1].split()[0]
    raise RuntimeError(f"serve printed no API key\n{_log_text(log)}")


async def _wait_until_healthy(base: str, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"serve did not become healthy\n{_log_text(log)}")


# --- moves --------------------------------------------------------------------------------------


@dataclass
class Mover:
    """Moves the organization's 20 newest leads, one at a time, through REST at `base`."""

    session: aiohttp.ClientSession
    base: str
    key: str
    stages: list[str]
    stage_of: dict[str, str]
    turn: int = 0

    @classmethod
    async def load(cls, session: aiohttp.ClientSession, base: str, key: str) -> Mover:
        query = "{ stages { id } leads(limit: 20) { nodes { id stage { id } } } }"
        async with session.post(
            f"{base}/graphql", json={"query": query}, headers=_bearer(key)
        ) as resp:
            data = (await resp.json())["data"]
        stage_of = {n["id"]: n["stage"]["id"] for n in data["leads"]["nodes"]}
        return cls(session, base, key, [s["id"] for s in data["stages"]], stage_of)

    async def move(self) -> float:
        """Move the next lead to another stage; the wall-clock time just before sending."""
        lead_id = list(self.stage_of)[self.turn % len(self.stage_of)]
        self.turn += 1
        stage = next(s for s in self.stages if s != self.stage_of[lead_id])
        sent = time.time()
        async with self.session.post(
            f"{self.base}/v1/leads/{lead_id}/move",
            json={"stageId": stage},
            headers=_bearer(self.key),
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"move failed: {resp.status} {await resp.text()}")
        self.stage_of[lead_id] = stage
        return sent


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- the clients, seen from the main process ----------------------------------------------------


@dataclass
class Receipts:
    """(receive time, changedAt) per event id, as the workers report them."""

    by_event: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    problems: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        if line.startswith("!"):
            self.problems.append(line)
            return
        event_id, received, changed = line.split()
        self.by_event.setdefault(event_id, []).append((float(received), float(changed)))
        self.arrived.set()

    def latest(self) -> str:
        return max(self.by_event, key=int, default="0")

    async def wait_for(self, predicate: Callable[[], bool], within: float) -> bool:
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)
        return True


@contextlib.asynccontextmanager
async def workers(
    urls: Sequence[str], key: str, subscribers: int, clients: int, after: str, receipts: Receipts
) -> AsyncIterator[None]:
    """`clients` worker processes with `subscribers` subscriptions between them, each worker
    connected to one of the gateways' WebSocket `urls` in turn; ready once all subscribed."""
    shares = [subscribers // clients + (i < subscribers % clients) for i in range(clients)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            urls[i % len(urls)],
            str(share),
            after,
            env={**os.environ, "LEADGATE_API_KEY": key},
            stdout=asyncio.subprocess.PIPE,
        )
        for i, share in enumerate(shares)
        if share
    ]
    ready = [asyncio.Event() for _ in processes]

    async def pump(process: asyncio.subprocess.Process, ready: asyncio.Event) -> None:
        assert process.stdout is not None
        while line := (await process.stdout.readline()).decode():
            if line.startswith("ready"):
                ready.set()
            else:
                receipts.add(line)

    pumps = [asyncio.create_task(pump(p, r)) for p, r in zip(processes, ready, strict=True)]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), STARTUP_DEADLINE)
        yield
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.gather(*pumps, return_exceptions=True)


# --- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delays:
    """The measured moves' delays over every (subscriber, move), and the fewest subscribers
    that received a move (0 when a move reached nobody)."""

    changed_ms: list[float]
    from_request_ms: list[float]
    received_min: int


@dataclass(frozen=True)
class Result:
    subscribers: int
    moves: int
    delays: Delays
    cpu_ms_per_move: float
    rss_idle_kb: int
    rss_with_kb: int
    connect_seconds: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def prime(receipts: Receipts, mover: Mover, subscribers: int, within: float) -> set[str]:
    """One move every subscriber must receive, proof that all are subscribed; its event ids."""
    await mover.move()

    def primed() -> int:
        return sum(len(r) for r in receipts.by_event.values())

    if not await receipts.wait_for(lambda: primed() >= subscribers, within):
        raise RuntimeError(f"only {primed()} of {subscribers} received the priming move")
    return set(receipts.by_event)


async def timed_moves(
    receipts: Receipts,
    mover: Mover,
    *,
    moves: int,
    subscribers: int,
    per_move: float,
    interval: float,
) -> dict[str, float]:
    """`moves` moves, each once the previous one reached every subscriber (or `per_move`
    seconds passed); when each event's move was sent, by event id."""
    sent_at: dict[str, float] = {}
    for _ in range(moves):
        before = set(receipts.by_event)
        sent = await mover.move()

        def arrived_everywhere(before: set[str] = before) -> bool:
            new = set(receipts.by_event) - before
            return bool(new) and all(len(receipts.by_event[e]) >= subscribers for e in new)

        await receipts.wait_for(arrived_everywhere, per_move)
        for event_id in set(receipts.by_event) - before:
            sent_at[event_id] = sent
        await asyncio.sleep(interval)
    if receipts.problems:
        raise RuntimeError(f"subscribers got errors: {receipts.problems[:3]}")
    return sent_at


def delays(
    receipts: Receipts, priming: set[str], sent_at: dict[str, float], *, moves: int, verbose: bool
) -> Delays:
    measured = {e: r for e, r in receipts.by_event.items() if e not in priming}
    if verbose:
        for event_id, got in sorted(measured.items(), key=lambda item: int(item[0])):
            ms = sorted((received - changed) * 1000 for received, changed in got)
            print(
                f"event {event_id}: {len(got)} received, first {ms[0]:.0f} ms, "
                f"p50 {statistics.median(ms):.0f} ms, last {ms[-1]:.0f} ms"
            )
    return Delays(
        changed_ms=[(got - changed) * 1000 for r in measured.values() for got, changed in r],
        from_request_ms=[
            (got - sent_at[e]) * 1000 for e, r in measured.items() for got, _ in r if e in sent_at
        ],
        # A move that reached nobody has no entry at all: it counts as 0.
        received_min=min(len(r) for r in measured.values()) if len(measured) == moves else 0,
    )


async def measure(args: argparse.Namespace) -> tuple[Result, str]:
    async with bench_database() as (env, database):
        workdir = Path(env["LEADGATE_DATA_DIR"]).parent
        async with (
            gateway(env, workdir) as gw,
            aiohttp.ClientSession() as session,
        ):
            mover = await Mover.load(session, gw.base, gw.key)
            pid = gw.process.pid
            # Warm up (imports, caches, the pool) with one subscriber and one move.
            warm = Receipts()
            # A fresh database: the bench's moves are the only stage changes there are.
            async with workers([gw.ws_url], gw.key, 1, 1, "0", warm):
                await mover.move()
                if not await warm.wait_for(lambda: len(warm.by_event) == 1, args.timeout):
                    raise RuntimeError("the warm-up subscriber received nothing")
            await asyncio.sleep(1.0)
            rss_idle = rss_kb(pid)

            receipts = Receipts()
            started = time.monotonic()
            async with workers(
                [gw.ws_url], gw.key, args.subscribers, args.clients, warm.latest(), receipts
            ):
                priming = await prime(receipts, mover, args.subscribers, args.timeout * 3)
                connect_seconds = time.monotonic() - started
                await asyncio.sleep(1.0)
                rss_with = rss_kb(pid)
                cpu_before = cpu_seconds(pid)
                sent_at = await timed_moves(
                    receipts,
                    mover,
                    moves=args.moves,
                    subscribers=args.subscribers,
                    per_move=args.timeout,
                    interval=args.interval,
                )
                cpu_per_move = (cpu_seconds(pid) - cpu_before) / args.moves * 1000
    result = Result(
        subscribers=args.subscribers,
        moves=args.moves,
        delays=delays(receipts, priming, sent_at, moves=args.moves, verbose=args.verbose),
        cpu_ms_per_move=cpu_per_move,
        rss_idle_kb=rss_idle,
        rss_with_kb=rss_with,
        connect_seconds=connect_seconds,
    )
    return result, database


def report_row(result: Result, clients: int, database: str) -> str:
    d, f = result.delays.changed_ms, result.delays.from_request_ms
    per_subscriber = (result.rss_with_kb - result.rss_idle_kb) / result.subscribers
    return (
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} UTC | {result.subscribers} | {result.moves} "
        f"| {result.delays.received_min}/{result.subscribers} (min per move) "
        f"| {statistics.median(d):.1f} | {percentile(d, 99):.1f} | {max(d):.1f} "
        f"| {statistics.median(f):.1f} / {percentile(f, 99):.1f} "
        f"| {result.cpu_ms_per_move:.0f} "
        f"| {result.rss_idle_kb / 1024:.1f} | {result.rss_with_kb / 1024:.1f} "
        f"| {per_subscriber:.1f} | {clients} | {database} | {os.cpu_count()} |\n"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, count, after = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        asyncio.run(run_worker(url, os.environ["LEADGATE_API_KEY"], count, after))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4, help="client worker processes")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between moves")
    parser.add_argument("--timeout", type=float, default=15.0, help="per move, seconds")
    parser.add_argument("--no-report", action="store_true", help="do not touch SUBSCRIBERS.md")
    parser.add_argument("--verbose", action="store_true", help="print each move's spread")
    args = parser.parse_args()
    # Each subscriber is a socket in the gateway and one in a worker.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.subscribers + 200:
        raise SystemExit(f"open-file limit {hard} is too low for {args.subscribers} subscribers")

    result, database = asyncio.run(measure(args))
    row = report_row(result, args.clients, database)
    print(
        f"{result.subscribers} subscribers connected and primed in "
        f"{result.connect_seconds:.1f}s on {platform.node()}"
    )
    print(REPORT_HEADER.splitlines()[-2])
    print(row, end="")
    if not args.no_report:
        if not REPORT.exists():
            REPORT.write_text(REPORT_HEADER)
        with REPORT.open("a") as report:
            report.write(row)


if __name__ == "__main__":
    main()
