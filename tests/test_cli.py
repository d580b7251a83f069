"""The `leadgate` console script, run as real processes against a real PostgreSQL.

Database commands get DATABASE_URL = the session database, so keys they create work against
the session's `server`; the embedded-sharing test instead runs every process on one fresh
LEADGATE_DATA_DIR with no DATABASE_URL at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest

from leadgate import cli
from leadgate.cli.parser import build_parser
from tests.databases import create_database, drop_database
from tests.processes import LEADGATE, Completed, free_port, leadgate
from tests.support import Api, error_codes

COMMANDS = ("serve", "migrate", "org", "api-key", "demo-data", "documents", "export-schema")
DEFAULT_STAGE_KEYS = ["new_lead", "contacted", "qualified", "application", "funded", "lost"]
STAGES_QUERY = "{ stages { stageKey } }"
LEADS_QUERY = (
    "{ leads(limit:5){ total nodes { businessName stage { stageKey } primaryAdvisor { name } } } }"
)
REVOCATION_DEADLINE = 5.0
STARTUP_DEADLINE = 45.0
SHUTDOWN_DEADLINE = 15.0


@dataclass
class Serving:
    """A running `leadgate serve`: its stdout so far, and the log its stderr goes to."""

    process: asyncio.subprocess.Process
    log: Path
    stdout_lines: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return "stdout:\n" + "".join(self.stdout_lines) + "\nstderr:\n" + self.log.read_text()

    async def line_starting_with(self, prefix: str) -> str:
        """The next stdout line with `prefix`, read while the process keeps running."""
        assert self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            assert raw, f"serve closed stdout before printing {prefix!r}\n{self.describe()}"
            line = raw.decode()
            self.stdout_lines.append(line)
            if line.startswith(prefix):
                return line

    async def startup_values(self, *prefixes: str) -> list[str]:
        """The values of the startup lines with these prefixes, as serve prints them."""
        try:
            async with asyncio.timeout(STARTUP_DEADLINE):
                return [printed_value(await self.line_starting_with(p)) for p in prefixes]
        except TimeoutError:
            raise AssertionError(
                f"serve is running but printed no {prefixes} lines within {STARTUP_DEADLINE}s "
                f"(is stdout block-buffered?)\n{self.describe()}"
            ) from None

    async def stop(self) -> int:
        """SIGTERM, then the exit status, which must come within SHUTDOWN_DEADLINE."""
        self.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.communicate(), SHUTDOWN_DEADLINE)
        assert self.process.returncode is not None
        return self.process.returncode


@contextlib.asynccontextmanager
async def serving(
    *args: str, env: Mapping[str, str], cwd: Path, log: Path
) -> AsyncIterator[Serving]:
    """`leadgate serve …` with stdout a pipe; killed on the way out if a test left it up."""
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            str(LEADGATE),
            "serve",
            *args,
            env=dict(env),
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
        )
        try:
            yield Serving(process=process, log=log)
        finally:
            if process.returncode is None:
                process.kill()
                await process.communicate()


async def wait_until_healthy(session: aiohttp.ClientSession, base: str, serve: Serving) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert serve.process.returncode is None, f"serve exited early\n{serve.describe()}"
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with session.get(f"{base}/healthz") as resp:
                if resp.status == 200:
                    return
        assert time.monotonic() < deadline, f"/healthz never answered\n{serve.describe()}"
        await asyncio.sleep(0.1)


def printed_value(line: str) -> str:
    """`GraphiQL:  http://…` → `http://…`; `API key:   lw_live_…   (…)` → `lw_live_…`."""
    return line.split(":", 1)[1].split()[0]


def assert_no_traceback(result: Completed) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


async def stop_leftover_postgres(pgdata: Path) -> None:
    """If a failed test left the embedded server of `pgdata` running, shut it down (fast)."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    with contextlib.suppress(ValueError, ProcessLookupError, OSError):
        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)
    for _ in range(100):  # fast shutdown takes well under the 10 s this allows
        if not pid_file.exists():
            return
        await asyncio.sleep(0.1)


@pytest.fixture
def db_env(database_url: str, pool: asyncpg.Pool) -> dict[str, str]:
    """The environment of a CLI process on the session's (migrated) database."""
    return {**os.environ, "DATABASE_URL": database_url}


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """No DATABASE_URL, even if the suite runs with one: the embedded server in a new dir."""
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    env["LEADGATE_DATA_DIR"] = str(tmp_path / "data")
    return env


async def create_org(db_env: Mapping[str, str], name: str = "CLI Lending") -> UUID:
    return UUID((await leadgate("org", "create", name, env=db_env)).ok().stdout.strip())


async def create_key_json(db_env: Mapping[str, str], org_id: UUID, *flags: str) -> dict[str, Any]:
    result = await leadgate("api-key", "create", "--org", str(org_id), "--json", *flags, env=db_env)
    record: dict[str, Any] = json.loads(result.ok().stdout)
    return record


# --- help ---------------------------------------------------------------------------------


async def test_help_lists_every_command() -> None:
    result = (await leadgate("--help", env=os.environ)).ok()

    for command in COMMANDS:
        assert re.search(rf"^\s+{re.escape(command)}\b", result.stdout, re.MULTILINE), command


# --- organizations ------------------------------------------------------------------------


async def test_org_create_prints_the_new_id_and_the_org_gets_the_default_pipeline(
    db_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = (await leadgate("org", "create", "Main Street Lending", env=db_env)).ok()

    org_id = UUID(result.stdout.strip())
    async with pool.acquire() as conn:
        name = await conn.fetchval("SELECT name FROM organizations WHERE id = $1", org_id)
        stage_keys = await conn.fetch(
            "SELECT stage_key FROM pipeline_stages WHERE organization_id = $1 ORDER BY position",
            org_id,
        )
    assert name == "Main Street Lending"
    assert [r["stage_key"] for r in stage_keys] == DEFAULT_STAGE_KEYS


async def test_org_create_json_prints_the_id_and_name(
    db_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = (await leadgate("org", "create", "Harbor Capital", "--json", env=db_env)).ok()

    record = json.loads(result.stdout)
    assert set(record) == {"id", "name"}
    assert record["name"] == "Harbor Capital"
    async with pool.acquire() as conn:
        name = await conn.fetchval(
            "SELECT name FROM organizations WHERE id = $1", UUID(record["id"])
        )
    assert name == "Harbor Capital"


# --- API keys -----------------------------------------------------------------------------


async def test_api_key_create_prints_a_live_key_that_authenticates(
    db_env: dict[str, str], api: Api
) -> None:
    org_id = await create_org(db_env)

    result = (await leadgate("api-key", "create", "--org", str(org_id), env=db_env)).ok()

    key = result.stdout.strip()
    assert re.fullmatch(r"lw_live_\S+", key), result.stdout
    status, body = await api.graphql(key, STAGES_QUERY)
    assert status == 200, body
    assert [s["stageKey"] for s in body["data"]["stages"]] == DEFAULT_STAGE_KEYS


async def test_api_key_create_read_only_gives_a_key_that_can_read(
    db_env: dict[str, str], api: Api, pool: asyncpg.Pool
) -> None:
    org_id = await create_org(db_env)

    record = await create_key_json(db_env, org_id, "--read-only")

    assert record["canWrite"] is False
    status, body = await api.graphql(record["key"], STAGES_QUERY)
    assert status == 200, body
    assert [s["stageKey"] for s in body["data"]["stages"]] == DEFAULT_STAGE_KEYS
    async with pool.acquire() as conn:
        can_write = await conn.fetchval(
            "SELECT can_write FROM api_keys WHERE id = $1", UUID(record["id"])
        )
    assert can_write is False


async def test_api_key_create_read_only_gives_a_key_that_cannot_write(
    db_env: dict[str, str], api: Api
) -> None:
    org_id = await create_org(db_env)

    record = await create_key_json(db_env, org_id, "--read-only")

    _, body = await api.graphql(
        record["key"], 'mutation { createLead(input: {businessName: "Nope Ltd"}) { id } }'
    )
    assert error_codes(body) == ["FORBIDDEN"]


async def test_api_key_create_json_prints_id_key_and_permission(db_env: dict[str, str]) -> None:
    org_id = await create_org(db_env)

    record = await create_key_json(db_env, org_id)

    assert set(record) == {"id", "key", "canWrite"}
    UUID(record["id"])
    assert record["key"].startswith("lw_live_")
    assert record["canWrite"] is True


async def test_a_revoked_key_is_refused_within_five_seconds(
    db_env: dict[str, str], api: Api
) -> None:
    org_id = await create_org(db_env)
    record = await create_key_json(db_env, org_id)
    # Use the key first, so the server has it cached as valid: the revocation must still win.
    status, _ = await api.graphql(record["key"], STAGES_QUERY)
    assert status == 200

    result = (await leadgate("api-key", "revoke", record["id"], env=db_env)).ok()
    revoked_at = time.monotonic()

    assert result.stdout.strip() == f"revoked {record['id']}"
    while True:
        status, body = await api.graphql(record["key"], STAGES_QUERY)
        elapsed = time.monotonic() - revoked_at
        if status == 401:
            break
        assert elapsed < REVOCATION_DEADLINE, f"revoked key still accepted after {elapsed:.1f}s"
        await asyncio.sleep(0.2)
    assert elapsed < REVOCATION_DEADLINE
    assert error_codes(body) == ["UNAUTHENTICATED"]


# --- demo data ----------------------------------------------------------------------------


async def test_demo_data_inserts_exactly_the_requested_leads_and_reports_progress(
    db_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    org_id = await create_org(db_env)

    result = (await leadgate("demo-data", "--org", str(org_id), "--leads", "500", env=db_env)).ok()

    async with pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM leads WHERE organization_id = $1", org_id)
    assert count == 500
    progress = [line for line in result.stderr.splitlines() if line.startswith("leads [")]
    assert progress, result.stderr
    assert "500/500" in progress[-1]
    assert "added 500 leads" in result.stdout


# --- bad input ----------------------------------------------------------------------------


async def test_api_key_create_for_an_unknown_org_fails_with_a_message_not_a_traceback(
    db_env: dict[str, str],
) -> None:
    unknown = uuid.uuid4()

    result = await leadgate("api-key", "create", "--org", str(unknown), env=db_env)

    assert result.returncode != 0
    assert_no_traceback(result)
    assert re.search(rf"error: .*{unknown}.*not found", result.stderr), result.stderr
    assert result.stdout == ""


async def test_demo_data_for_an_unknown_org_fails_with_a_message_not_a_traceback(
    db_env: dict[str, str],
) -> None:
    unknown = uuid.uuid4()

    result = await leadgate("demo-data", "--org", str(unknown), "--leads", "5", env=db_env)

    assert result.returncode != 0
    assert_no_traceback(result)
    assert re.search(rf"error: .*{unknown}.*not found", result.stderr), result.stderr


async def test_revoking_an_unknown_key_fails_with_a_message_not_a_traceback(
    db_env: dict[str, str],
) -> None:
    result = await leadgate("api-key", "revoke", str(uuid.uuid4()), env=db_env)

    assert result.returncode != 0
    assert_no_traceback(result)
    assert result.stderr.startswith("error: "), result.stderr


async def test_a_malformed_org_id_is_a_usage_error(db_env: dict[str, str]) -> None:
    result = await leadgate("api-key", "create", "--org", "not-a-uuid", env=db_env)

    assert result.returncode == 2
    assert_no_traceback(result)
    assert "invalid UUID value: 'not-a-uuid'" in result.stderr


async def test_an_unreachable_database_fails_with_a_message_not_a_traceback() -> None:
    env = {**os.environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"}

    result = await leadgate("org", "create", "Nowhere Lending", env=env)

    assert result.returncode != 0
    assert_no_traceback(result)
    assert result.stderr.startswith("error: "), result.stderr


def command_names(parser: argparse.ArgumentParser) -> list[str]:
    """What each command (and action of a command group) names as the code that runs it."""
    names: list[str] = []
    for action in parser._actions:  # noqa: SLF001 - argparse offers no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                run = sub.get_default("run")
                names.extend([run] if run is not None else command_names(sub))
    return names


def test_every_command_names_a_function_that_runs_it() -> None:
    names = command_names(build_parser())

    assert len(names) == 14
    assert all(callable(cli.command(name)) for name in names)


# --- serve --------------------------------------------------------------------------------


async def test_serve_prints_its_url_and_key_unbuffered_and_serves_the_demo_leads(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    async with (
        serving("--port", str(port), "--demo", env=db_env, cwd=tmp_path, log=log) as serve,
        aiohttp.ClientSession() as session,
    ):
        # Read while the server runs: block-buffered stdout would hold these lines until exit.
        url, key = await serve.startup_values("GraphiQL:", "API key:")
        assert serve.process.returncode is None

        assert url == f"http://127.0.0.1:{port}/graphql"
        assert key.startswith("lw_live_")
        base = url.removesuffix("/graphql")
        await wait_until_healthy(session, base, serve)
        status, body = await Api(session=session, base=base).graphql(key, LEADS_QUERY)

        assert status == 200, body
        assert "errors" not in body, body
        leads = body["data"]["leads"]
        assert leads["total"] >= 5
        assert len(leads["nodes"]) == 5
        assert {node["stage"]["stageKey"] for node in leads["nodes"]} <= set(DEFAULT_STAGE_KEYS)

        assert await serve.stop() == 0, serve.describe()


@pytest.mark.parametrize(
    ("setting", "loop"),
    [(None, "asyncio.unix_events._UnixSelectorEventLoop"), ("1", "uvloop.Loop")],
)
async def test_serve_runs_on_asyncio_s_loop_unless_leadgate_uvloop_is_1(
    db_env: dict[str, str], tmp_path: Path, setting: str | None, loop: str
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in db_env.items() if k != "LEADGATE_UVLOOP"}
    if setting is not None:
        env["LEADGATE_UVLOOP"] = setting
    async with (
        serving("--port", str(port), env=env, cwd=tmp_path, log=log) as serve,
        aiohttp.ClientSession() as session,
    ):
        await wait_until_healthy(session, f"http://127.0.0.1:{port}", serve)
        assert await serve.stop() == 0, serve.describe()

    assert f"serving on the event loop {loop}" in log.read_text()


async def test_cli_commands_share_the_embedded_server_of_a_running_serve(
    embedded_env: dict[str, str], tmp_path: Path
) -> None:
    pgdata = Path(embedded_env["LEADGATE_DATA_DIR"]) / "pg"
    port = free_port()

    async def run(*args: str) -> Completed:
        return (await leadgate(*args, env=embedded_env, cwd=tmp_path)).ok()

    try:
        async with (
            serving(
                "--port", str(port), "--demo", env=embedded_env, cwd=tmp_path, log=tmp_path / "log"
            ) as serve,
            aiohttp.ClientSession() as session,
        ):
            (url,) = await serve.startup_values("GraphiQL:")
            base = url.removesuffix("/graphql")
            await wait_until_healthy(session, base, serve)

            org_id = UUID((await run("org", "create", "X")).stdout.strip())
            key = (await run("api-key", "create", "--org", str(org_id))).stdout.strip()
            await run("demo-data", "--org", str(org_id), "--leads", "100")

            status, body = await Api(session=session, base=base).graphql(key, LEADS_QUERY)
            assert status == 200, body
            assert body["data"]["leads"]["total"] == 100
            assert serve.process.returncode is None, "a CLI command took the server down"

            assert await serve.stop() == 0, serve.describe()

        # The data outlives the processes: a later run starts the server again and finds it.
        assert "database is up to date" in (await run("migrate")).stdout
        again = await run("api-key", "create", "--org", str(org_id))
        assert again.stdout.startswith("lw_live_")
        assert not (pgdata / "postmaster.pid").exists(), "the last process left PostgreSQL up"
    finally:
        await stop_leftover_postgres(pgdata)


# --- first start: nothing exposed without --demo -------------------------------------------

# A usable key, as domain/api_keys.py makes them (the page's placeholder `lw_live_...` is not).
EMBEDDED_KEY = re.compile(r"lw_(?:live|test)_[A-Za-z0-9_-]{32,}")


@pytest.fixture
async def fresh_db_env(server_url: str) -> AsyncIterator[dict[str, str]]:
    """A CLI environment on a database of its own with no organization in it (unmigrated)."""
    url = await create_database(server_url, prefix="leadgate_first_start")
    yield {**os.environ, "DATABASE_URL": url}
    await drop_database(server_url, url)


async def graphiql_page(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/graphql", headers={"Accept": "text/html"}) as resp:
        assert resp.status == 200
        return await resp.text()


async def organization_count(env: Mapping[str, str]) -> int:
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM organizations")
        return count
    finally:
        await conn.close()


async def test_serve_without_demo_on_an_empty_database_creates_nothing_and_embeds_no_key(
    fresh_db_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    async with (
        serving("--port", str(port), env=fresh_db_env, cwd=tmp_path, log=log) as serve,
        aiohttp.ClientSession() as session,
    ):
        (url,) = await serve.startup_values("GraphiQL:")
        base = url.removesuffix("/graphql")
        await wait_until_healthy(session, base, serve)

        page = await graphiql_page(session, base)

        assert EMBEDDED_KEY.search(page) is None
        assert await organization_count(fresh_db_env) == 0
        assert await serve.stop() == 0, serve.describe()
    printed = "".join(serve.stdout_lines) + log.read_text()
    assert EMBEDDED_KEY.search(printed) is None, serve.describe()
    # The operator is told the exact commands that make the first organization and key.
    assert 'leadgate org create "Your Company"' in printed, serve.describe()
    assert "leadgate api-key create --org <organization id" in printed, serve.describe()


async def test_serve_with_demo_on_an_empty_database_creates_the_demo_org_and_embeds_its_key(
    fresh_db_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    async with (
        serving("--port", str(port), "--demo", env=fresh_db_env, cwd=tmp_path, log=log) as serve,
        aiohttp.ClientSession() as session,
    ):
        url, key = await serve.startup_values("GraphiQL:", "API key:")
        base = url.removesuffix("/graphql")
        await wait_until_healthy(session, base, serve)

        page = await graphiql_page(session, base)

        assert key in page
        assert await organization_count(fresh_db_env) == 1
        assert await serve.stop() == 0, serve.describe()
