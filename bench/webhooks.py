"""Webhook dispatch throughput of one gateway process to a local receiver.

    .venv/bin/python bench/webhooks.py [--deliveries 5000]

Starts `leadgate serve --demo` without its dispatcher (on a throwaway database of
DATABASE_URL's server, or an embedded PostgreSQL), creates one webhook endpoint pointing at a
receiver in this process (answers 200 at once), makes one real `lead.created` event through
GraphQL and copies it in SQL into N pending deliveries. Then it restarts the gateway with its
dispatcher and measures how long the dispatcher takes to send all N (first request to last),
and its CPU. A row is appended to bench/WEBHOOKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import aiohttp
import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from subscribers import (  # noqa: E402 - a sibling script, importable once bench/ is on the path
    LEADGATE,
    _printed_key,
    _wait_until_healthy,
    bench_database,
    cpu_seconds,
    free_port,
)

REPORT: Final = Path(__file__).resolve().parent / "WEBHOOKS.md"
REPORT_HEADER: Final = """# Webhook dispatch: one gateway process to a local receiver

Produced by `bench/webhooks.py` (see its docstring). The receiver runs in the benchmark's
process on the same 2-core machine and answers 200 at once; deliveries are claimed with
`FOR UPDATE SKIP LOCKED` in batches of up to `webhook_concurrency` (32) in flight, each signed,
POSTed and recorded (attempt row + settle) in its own transaction.

| date | deliveries | seconds (first to last) | deliveries/s | gateway CPU ms/delivery | receiver p50 gap ms | database |
|---|---:|---:|---:|---:|---:|---|
"""  # noqa: E501 - a Markdown table header is one line
CREATE_ENDPOINT: Final = """
mutation($url: String!) {
  createWebhookEndpoint(url: $url, eventTypes: ["lead.created"]) { endpoint { id } }
}
"""
CREATE_LEAD: Final = 'mutation { createLead(input: { businessName: "Webhook Bench" }) { id } }'
COPY_EVENTS: Final = """
WITH original AS (
    SELECT organization_id, lead_id, payload
    FROM lead_events
    WHERE type = 'lead.created'
    ORDER BY id DESC
    LIMIT 1
),
copies AS (
    INSERT INTO lead_events (organization_id, lead_id, sequence, type, payload)
    SELECT o.organization_id, o.lead_id, 1000 + g, 'lead.created', o.payload
    FROM original AS o, generate_series(1, $1) AS g
    RETURNING id, organization_id
)
INSERT INTO webhook_deliveries (organization_id, event_id, endpoint_id)
SELECT c.organization_id, c.id, w.id
FROM copies AS c
JOIN webhook_endpoints AS w ON w.organization_id = c.organization_id
"""


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.expected = 0
        self.all_arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrivals.append(time.monotonic())
        if len(self.arrivals) >= self.expected:
            self.all_arrived.set()
        return web.Response(status=200)


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield receiver, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serving(
    env: Mapping[str, str], workdir: Path, *, dispatcher: bool
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, str]]:
    port = free_port()
    log = workdir / f"serve-{'dispatch' if dispatcher else 'setup'}.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            str(LEADGATE),
            "serve",
            "--demo",
            "--port",
            str(port),
            env={
                **env,
                "LEADGATE_DISPATCHER": "1" if dispatcher else "0",
                "LEADGATE_ALLOW_INSECURE_WEBHOOKS": "1",
            },
            cwd=workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    try:
        key = await _printed_key(process, log)
        base = f"http://127.0.0.1:{port}"
        await _wait_until_healthy(base, process, log)
        yield process, base, key
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.communicate(), 30)
            except TimeoutError:
                process.kill()
                await process.communicate()


async def graphql(base: str, key: str, query: str, variables: dict[str, str] | None = None) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {key}"},
        ) as resp,
    ):
        body = await resp.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL failed: {body['errors']}")


def database_url(env: Mapping[str, str]) -> str:
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"]
    # The embedded server's socket lives in its data directory.
    return f"postgresql://postgres:@/postgres?host={Path(env['LEADGATE_DATA_DIR']) / 'pg'}"


async def measure(count: int) -> str:
    async with bench_database() as (env, label), receiving() as (receiver, url):
        workdir = Path(tempfile.mkdtemp(prefix="leadgate-webhooks-"))
        async with serving(env, workdir, dispatcher=False) as (_process, base, key):
            await graphql(base, key, CREATE_ENDPOINT, {"url": url})
            await graphql(base, key, CREATE_LEAD)
            conn = await asyncpg.connect(database_url(env))
            try:
                await conn.execute(COPY_EVENTS, count)
            finally:
                await conn.close()
        async with serving(env, workdir, dispatcher=True) as (process, _base, _key):
            assert process.pid is not None  # noqa: S101 - a started process
            cpu_before = cpu_seconds(process.pid)
            receiver.expected = count
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver.all_arrived.wait(), 600)
            cpu = cpu_seconds(process.pid) - cpu_before
        received = receiver.arrivals
        if len(received) < count:
            raise RuntimeError(f"only {len(received)} of {count} deliveries arrived")
        span = received[-1] - received[0]
        gaps = [b - a for a, b in zip(received, received[1:], strict=False)]
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"| {date} | {count:,} | {span:.2f} | {count / span:,.0f} | "
            f"{cpu * 1000 / count:.2f} | {statistics.median(gaps) * 1000:.2f} | {label} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    row = asyncio.run(measure(args.deliveries))
    print(row, flush=True)
    if not args.no_report:
        if not REPORT.exists():
            REPORT.write_text(REPORT_HEADER)
        with REPORT.open("a") as report:
            report.write(row + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
