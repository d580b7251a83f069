"""Subscriptions over Server-Sent Events (graphql/sse.py, the graphql-sse protocol in distinct
connections mode): the npm `graphql-sse` client, raw streams, resuming with Last-Event-ID
while writers keep writing, refusals inside the stream, and the end of a stream at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.services import auth
from tests.support import Api, Tenant, bearer, create_lead

JS_DIR: Final = Path(__file__).with_name("js")
NPM_DEADLINE: Final = 180.0
NODE_DEADLINE: Final = 15.0
EVENTS: Final = """
subscription($after: ID, $types: [String!]) {
  leadEvents(after: $after, types: $types) { id type lead { id } }
}
"""
STREAM: Final = "text/event-stream"
WRITERS: Final = 4
ROUNDS: Final = 3
WRITE_SECONDS: Final = 0.6
QUIET: Final = 0.4


@dataclass
class Message:
    event: str
    data: dict[str, Any] | None
    id: str | None


@dataclass
class EventStream:
    """A raw SSE response, read message by message (comment lines are keep-alives)."""

    response: aiohttp.ClientResponse
    _pending: dict[str, str] = field(default_factory=dict)

    async def next(self, wait: float = 5.0) -> Message:
        while True:
            raw = await asyncio.wait_for(self.response.content.readline(), wait)
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\r\n")
            if not line:
                if self._pending:
                    fields, self._pending = self._pending, {}
                    data = fields.get("data")
                    return Message(
                        event=fields.get("event", "message"),
                        data=json.loads(data) if data else None,
                        id=fields.get("id"),
                    )
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            self._pending[name] = value.removeprefix(" ")


@contextlib.asynccontextmanager
async def open_stream(
    session: aiohttp.ClientSession,
    base: str,
    key: str,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    last_event_id: str | None = None,
) -> AsyncIterator[EventStream]:
    headers = {"Accept": STREAM, **bearer(key)}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    body = {"query": query, "variables": variables or {}}
    async with session.post(f"{base}/graphql", json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith(STREAM)
        yield EventStream(resp)


async def until_quiet(stream: EventStream, at_least: int) -> list[Message]:
    """Every `next` until `at_least` came and then nothing more for QUIET s."""
    messages: list[Message] = []
    while True:
        try:
            message = await stream.next(QUIET if len(messages) >= at_least else 10.0)
        except TimeoutError:
            return messages
        assert message.event == "next", message
        messages.append(message)


async def event_ids_after(pool: asyncpg.Pool, org: UUID, after: int) -> list[int]:
    rows = await pool.fetch(
        "SELECT id FROM lead_events WHERE organization_id = $1 AND id > $2 ORDER BY id",
        org,
        after,
    )
    return [r["id"] for r in rows]


async def latest_event_id(pool: asyncpg.Pool, org: UUID) -> int:
    latest: int = await pool.fetchval(
        "SELECT coalesce(max(id), 0) FROM lead_events WHERE organization_id = $1", org
    )
    return latest


# --- the protocol ---------------------------------------------------------------------------


async def test_each_event_is_a_next_whose_sse_id_is_the_event_id(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    cursor = await latest_event_id(pool, tenant.id)
    async with (
        aiohttp.ClientSession() as session,
        open_stream(session, api.base, tenant.read_key, EVENTS, {"after": str(cursor)}) as stream,
    ):
        lead_id = await create_lead(api, tenant, "Streamed Bakery")
        message = await stream.next()

    assert message.event == "next"
    assert message.data is not None
    event = message.data["data"]["leadEvents"]
    assert event == {"id": message.id, "type": "lead.created", "lead": {"id": lead_id}}
    assert [int(event["id"])] == await event_ids_after(pool, tenant.id, cursor)


async def test_a_query_over_sse_is_one_next_then_complete(api: Api, tenant: Tenant) -> None:
    async with (
        aiohttp.ClientSession() as session,
        open_stream(session, api.base, tenant.read_key, "{ stages { id } }") as stream,
    ):
        result, end = await stream.next(), await stream.next()
        with pytest.raises(EOFError):
            await stream.next()

    assert result.data is not None
    assert len(result.data["data"]["stages"]) == len(tenant.stage_ids)
    assert result.id is None
    assert (end.event, end.data) == ("complete", None)


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("subscription { leadEvents { nope } }", {}, "VALIDATION_ERROR"),
        (EVENTS, {"after": "not-an-id"}, "VALIDATION_ERROR"),
        (EVENTS, {"types": ["lead.deleted"]}, "VALIDATION_ERROR"),
    ],
)
async def test_a_refusal_comes_inside_the_stream_as_a_next_with_errors_then_complete(
    api: Api, tenant: Tenant, query: str, variables: dict[str, Any], code: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        open_stream(session, api.base, tenant.read_key, query, variables) as stream,
    ):
        refusal, end = await stream.next(), await stream.next()

    assert refusal.data is not None
    assert [e["extensions"]["code"] for e in refusal.data["errors"]] == [code]
    assert refusal.data["errors"][0]["extensions"]["requestId"]
    assert end.event == "complete"


async def test_without_a_credential_the_stream_is_refused_with_401(api: Api) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{api.base}/graphql", json={"query": EVENTS}, headers={"Accept": STREAM}
        ) as resp,
    ):
        status, body = resp.status, await resp.json()

    assert status == 401
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_last_event_id_needs_the_after_argument_as_a_variable(
    api: Api, tenant: Tenant
) -> None:
    literal = 'subscription { leadEvents(after: "1") { id } }'
    async with (
        aiohttp.ClientSession() as session,
        open_stream(session, api.base, tenant.read_key, literal, last_event_id="5") as stream,
    ):
        refusal = await stream.next()

    assert refusal.data is not None
    assert refusal.data["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "$after" in refusal.data["errors"][0]["message"]


# --- the npm graphql-sse client -------------------------------------------------------------


@pytest.fixture(scope="module")
async def sse_client() -> Path:
    """tests/js/sse.mjs, with tests/js's pinned npm packages installed on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "these tests need Node.js and npm on PATH"
    if not (JS_DIR / "node_modules" / "graphql-sse").is_dir():
        process = await asyncio.create_subprocess_exec(
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            cwd=JS_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), NPM_DEADLINE)
        assert process.returncode == 0, output.decode()
    return JS_DIR / "sse.mjs"


async def test_the_graphql_sse_client_receives_the_organizations_events(
    api: Api, tenant: Tenant, other_tenant: Tenant, pool: asyncpg.Pool, sse_client: Path
) -> None:
    cursor = await latest_event_id(pool, tenant.id)
    variables = json.dumps({"after": str(cursor)})
    process = await asyncio.create_subprocess_exec(
        "node",
        str(sse_client),
        f"{api.base}/graphql",
        "2",
        EVENTS,
        variables,
        env={**os.environ, "LEADGATE_API_KEY": tenant.read_key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await create_lead(api, other_tenant, "Not Yours Ltd")
        first = await create_lead(api, tenant, "First Ltd")
        second = await create_lead(api, tenant, "Second Ltd")
        stdout, stderr = await asyncio.wait_for(process.communicate(), NODE_DEADLINE)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0, stderr.decode()
    payloads = [json.loads(line) for line in stdout.decode().splitlines()]
    events = [p["data"]["leadEvents"] for p in payloads]
    assert [e["lead"]["id"] for e in events] == [first, second]
    assert [int(e["id"]) for e in events] == await event_ids_after(pool, tenant.id, cursor)


# --- resuming with Last-Event-ID while others write -------------------------------------------


@dataclass
class Writers:
    """Moves through REST on separate connections, so that their transactions overlap."""

    api: Api
    tenant: Tenant
    stage_of: dict[str, UUID]

    @classmethod
    async def load(cls, api: Api, pool: asyncpg.Pool, tenant: Tenant) -> Writers:
        rows = await pool.fetch(
            "SELECT id, stage_id FROM leads WHERE organization_id = $1 ORDER BY id", tenant.id
        )
        return cls(api, tenant, {str(r["id"]): r["stage_id"] for r in rows})

    async def keep_moving(
        self, session: aiohttp.ClientSession, leads: Sequence[str], seconds: float
    ) -> None:
        deadline = time.monotonic() + seconds
        for lead_id in itertools.cycle(leads):
            if time.monotonic() >= deadline:
                return
            stage = next(s for s in self.tenant.stage_ids if s != self.stage_of[lead_id])
            async with session.post(
                f"{self.api.base}/v1/leads/{lead_id}/move",
                json={"stageId": str(stage)},
                headers=bearer(self.tenant.write_key),
            ) as resp:
                assert resp.status == 200, await resp.text()
            self.stage_of[lead_id] = stage

    async def run(self, sessions: Sequence[aiohttp.ClientSession], seconds: float) -> None:
        leads = list(self.stage_of)
        async with asyncio.TaskGroup() as group:
            for index, session in enumerate(sessions):
                group.create_task(self.keep_moving(session, leads[index::WRITERS], seconds))


async def test_a_reconnect_with_last_event_id_while_4_writers_write_gets_exactly_the_rest(
    api: Api, tenant: Tenant, other_tenant: Tenant, pool: asyncpg.Pool
) -> None:
    writers = await Writers.load(api, pool, tenant)
    others = await Writers.load(api, pool, other_tenant)
    start = await latest_event_id(pool, tenant.id)
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(aiohttp.ClientSession()) for _ in range(WRITERS + 2)
        ]
        subscriber, writer_sessions, other_session = sessions[0], sessions[1:-1], sessions[-1]
        received: list[int] = []
        last_id: str | None = None
        for _ in range(ROUNDS):
            async with asyncio.TaskGroup() as group:
                group.create_task(writers.run(writer_sessions, WRITE_SECONDS))
                group.create_task(others.keep_moving(other_session, list(others.stage_of), 0.3))
                # The first connection names its start with `after`; each reconnect carries
                # only the id of the last event it got, as a browser's EventSource does.
                async with open_stream(
                    subscriber,
                    api.base,
                    tenant.read_key,
                    EVENTS,
                    {"after": str(start)},
                    last_event_id=last_id,
                ) as stream:
                    await asyncio.sleep(WRITE_SECONDS / 3)
                    for _ in range(3):
                        message = await stream.next()
                        assert message.id is not None and message.data is not None
                        assert message.data["data"]["leadEvents"]["id"] == message.id
                        received.append(int(message.id))
                        last_id = message.id
                # Dropped mid-write: the writers go on while nobody listens.
        async with open_stream(
            subscriber,
            api.base,
            tenant.read_key,
            EVENTS,
            {"after": str(start)},
            last_event_id=last_id,
        ) as stream:
            expected = await event_ids_after(pool, tenant.id, start)
            rest = await until_quiet(stream, len(expected) - len(received))
            received += [int(m.id) for m in rest if m.id is not None]

    assert len(expected) > ROUNDS * 3, "the writers wrote too little to test a gap"
    assert received == expected, (
        f"missing {sorted(set(expected) - set(received))}, "
        f"unexpected {sorted(set(received) - set(expected))}, "
        f"duplicates {len(received) - len(set(received))}"
    )


# --- shutdown ---------------------------------------------------------------------------------


async def test_at_shutdown_a_stream_ends_with_the_cursor_to_resume_after(
    api: Api, settings: Settings, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    own = dataclasses.replace(settings, dispatcher_enabled=False)
    server = TestServer(create_app(own), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with (
            aiohttp.ClientSession() as session,
            open_stream(session, base, tenant.read_key, EVENTS) as stream,
        ):
            await asyncio.sleep(0.2)
            await create_lead(api, tenant, "Last Orders Ltd")
            delivered = await stream.next()
            closing = asyncio.create_task(server.close())
            farewell, end = await stream.next(), await stream.next()
            with pytest.raises(EOFError):
                await stream.next()
            await asyncio.wait_for(closing, 10)
    finally:
        await server.close()

    assert delivered.id is not None
    assert farewell.event == "next" and farewell.data is not None
    error = farewell.data["errors"][0]
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "after": delivered.id}
    assert farewell.id == delivered.id
    assert end.event == "complete"


async def test_a_stream_whose_key_is_revoked_ends_with_unauthenticated(
    settings: Settings, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    # Keys cached for 0.1 s: the once-a-second re-check sees the revocation at its next tick.
    own = dataclasses.replace(settings, dispatcher_enabled=False, api_key_cache_seconds=0.1)
    server = TestServer(create_app(own), host="127.0.0.1")
    await server.start_server()
    created = await auth.create_api_key(pool, organization_id=tenant.id, can_write=False)
    base = str(server.make_url("")).rstrip("/")
    try:
        async with (
            aiohttp.ClientSession() as session,
            open_stream(session, base, created.key, EVENTS) as stream,
        ):
            await auth.revoke_api_key(pool, created.id)
            refusal, end = await stream.next(3.0), await stream.next()
            with pytest.raises(EOFError):
                await stream.next()
    finally:
        await server.close()

    assert refusal.data is not None
    assert refusal.data["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert end.event == "complete"


async def test_a_stream_the_client_drops_releases_its_subscription_within_a_second(
    settings: Settings, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    own = dataclasses.replace(settings, dispatcher_enabled=False)
    server = TestServer(create_app(own), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    streams = server.app[keys.EVENT_STREAMS]
    try:
        async with aiohttp.ClientSession() as session:
            async with open_stream(session, base, tenant.read_key, EVENTS):
                await until_subscribers(session, base, 1, within=5.0)
                assert len(streams) == 1
            # The client went away without a word: noticed, and the feed let go.
            await until_subscribers(session, base, 0, within=1.0)
        assert len(streams) == 0
    finally:
        await server.close()


async def until_subscribers(
    session: aiohttp.ClientSession, base: str, count: int, *, within: float
) -> None:
    """Wait until the gateway's `leadgate_subscribers` gauge reads `count`."""
    deadline = time.monotonic() + within
    while True:
        async with session.get(f"{base}/metrics") as resp:
            text = await resp.text()
        line = next(x for x in text.splitlines() if x.startswith("leadgate_subscribers "))
        if float(line.split()[1]) == count:
            return
        assert time.monotonic() < deadline, f"subscribers: {line}, not {count} in {within} s"
        await asyncio.sleep(0.05)


async def test_trusted_documents_mode_refuses_a_free_form_document_over_sse(
    settings: Settings, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    own = dataclasses.replace(settings, dispatcher_enabled=False, trusted_documents="only")
    server = TestServer(create_app(own), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with (
            aiohttp.ClientSession() as session,
            open_stream(session, base, tenant.read_key, EVENTS) as stream,
        ):
            refusal, end = await stream.next(), await stream.next()
    finally:
        await server.close()

    assert refusal.data is not None
    assert refusal.data["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
    assert end.event == "complete"


async def test_an_eventsource_style_get_with_last_event_id_resumes_after_it(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    cursor = await latest_event_id(pool, tenant.id)
    for name in ("One Ltd", "Two Ltd", "Three Ltd"):
        await create_lead(api, tenant, name)
    ids = await event_ids_after(pool, tenant.id, cursor)
    # The URL keeps the first `after`; the reconnect's header names the last event received.
    params = {"query": EVENTS, "variables": json.dumps({"after": str(cursor)})}
    headers = {"Accept": STREAM, "Last-Event-ID": str(ids[0]), **bearer(tenant.read_key)}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{api.base}/graphql", params=params, headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
        received = await until_quiet(EventStream(resp), 2)

    assert [int(m.id or 0) for m in received] == ids[1:]
