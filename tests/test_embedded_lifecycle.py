"""The embedded PostgreSQL stops when its last live user exits, even after a `kill -9`.

Real `leadgate serve` processes on one fresh LEADGATE_DATA_DIR with no DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import aiohttp
import pytest

from tests.processes import free_port
from tests.test_cli import Serving, serving, stop_leftover_postgres, wait_until_healthy

STOP_DEADLINE = 5.0


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """No DATABASE_URL, even if the suite runs with one: the embedded server in a new dir."""
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    env["LEADGATE_DATA_DIR"] = str(tmp_path / "data")
    return env


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_until_gone(pid: int) -> float:
    """Seconds until `pid` exits; fails after STOP_DEADLINE."""
    started = time.monotonic()
    while is_running(pid):
        waited = time.monotonic() - started
        assert waited < STOP_DEADLINE, (
            f"PostgreSQL {pid} still up {waited:.1f}s after the last exit"
        )
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def started(serve: Serving, session: aiohttp.ClientSession) -> None:
    (url,) = await serve.startup_values("GraphiQL:")
    await wait_until_healthy(session, url.removesuffix("/graphql"), serve)


async def test_the_last_live_process_stops_the_server_after_another_was_killed(
    embedded_env: dict[str, str], tmp_path: Path
) -> None:
    pgdata = Path(embedded_env["LEADGATE_DATA_DIR"]) / "pg"

    def serve(name: str) -> contextlib.AbstractAsyncContextManager[Serving]:
        port = str(free_port())
        return serving("--port", port, env=embedded_env, cwd=tmp_path, log=tmp_path / name)

    try:
        async with (
            aiohttp.ClientSession() as session,
            serve("first.log") as first,
        ):
            await started(first, session)  # starts the server
            async with serve("second.log") as second:
                await started(second, session)  # joins it
                postgres = postmaster_pid(pgdata)

                first.process.kill()
                await first.process.wait()
                assert is_running(postgres), "the server must outlive only its dead user"
                assert await second.stop() == 0, second.describe()

                await wait_until_gone(postgres)
    finally:
        await stop_leftover_postgres(pgdata)
