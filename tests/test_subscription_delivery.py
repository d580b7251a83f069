"""What leadStageChanged delivers, and to whom, when things go wrong (DESIGN §6).

Filters and tenancy; `after` resumed while other connections keep writing (the id-visibility
hazard); the LISTEN connection killed mid-stream; a subscriber that stops reading; the cap on
subscriptions per connection. Moves go through REST, one event each, and what a subscriber
must receive is read back from lead_events, the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohappyeyeballs import AddrInfoType
from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.app import MAX_SUBSCRIPTIONS_PER_CONNECTION, create_app
from leadgate.config import Settings
from tests.support import Api, Tenant, bearer
from tests.ws_client import Subscription, connect, subscribe

CHANGES: Final = """
subscription($leadId: ID, $stageId: ID, $after: ID) {
  leadStageChanged(leadId: $leadId, stageId: $stageId, after: $after) {
    eventId lead { id } fromStage { id } toStage { id }
  }
}
"""
# How long a subscription must stay silent before we take it that nothing more is coming.
QUIET: Final = 0.25
WRITERS: Final = 4
ROUNDS: Final = 20
WRITE_SECONDS: Final = 0.3
LISTENER_MOVES: Final = 200
KILL_AFTER_MOVES: Final = (50, 130)
# Paced so the moves outlast both outages (a dead connection is noticed within about 1 s).
MOVE_PACE: Final = 0.05
RECONNECT_DEADLINE: Final = 5.0
PROMPT: Final = 1.0
# A subscriber that stops reading is stalled once the socket buffers between it and the
# server are full. Fat messages (every alias repeats a 15 kB customFields) fill them in a few
# dozen moves instead of thousands; the server's queue is cut to a few events as well.
SMALL_QUEUE: Final = 4
STALLED_MOVES: Final = 40
FAT_ALIASES: Final = 25
FAT_CHANGES: Final = (
    "subscription($leadId: ID, $after: ID) {"
    " leadStageChanged(leadId: $leadId, after: $after) { eventId "
    + " ".join(f"a{i}: lead {{ customFields }}" for i in range(FAT_ALIASES))
    + " } }"
)


def ws_url(server: TestServer) -> str:
    return str(server.make_url("/graphql")).replace("http://", "ws://")


@dataclass
class Pipeline:
    """A tenant's leads and the stage each is in, so that every move is a real stage change."""

    tenant: Tenant
    stage_of: dict[str, UUID]

    @classmethod
    async def load(cls, pool: asyncpg.Pool, tenant: Tenant) -> Pipeline:
        rows = await pool.fetch(
            "SELECT id, stage_id FROM leads WHERE organization_id = $1 ORDER BY id", tenant.id
        )
        return cls(tenant, {str(r["id"]): r["stage_id"] for r in rows})

    @property
    def leads(self) -> list[str]:
        return list(self.stage_of)

    def other_stage(self, lead_id: str, *, besides: Sequence[UUID] = ()) -> UUID:
        current = self.stage_of[lead_id]
        return next(s for s in self.tenant.stage_ids if s != current and s not in besides)

    async def move(
        self, session: aiohttp.ClientSession, base: str, lead_id: str, stage: UUID | None = None
    ) -> UUID:
        """Move through REST: by default to the first stage the lead is not in."""
        stage = stage or self.other_stage(lead_id)
        assert stage != self.stage_of[lead_id], "a move to the current stage makes no event"
        async with session.post(
            f"{base}/v1/leads/{lead_id}/move",
            json={"stageId": str(stage)},
            headers=bearer(self.tenant.write_key),
        ) as resp:
            assert resp.status == 200, await resp.text()
        self.stage_of[lead_id] = stage
        return stage

    async def keep_moving(
        self, session: aiohttp.ClientSession, base: str, leads: Sequence[str], seconds: float
    ) -> None:
        deadline = time.monotonic() + seconds
        for lead_id in itertools.cycle(leads):
            if time.monotonic() >= deadline:
                return
            await self.move(session, base, lead_id)


async def status_changes_after(
    pool: asyncpg.Pool, org: UUID, after: int, lead_id: str | None = None
) -> list[int]:
    """The organization's lead.status_changed event ids after `after`, in id order."""
    rows = await pool.fetch(
        """
        SELECT id
        FROM lead_events
        WHERE organization_id = $1
          AND type = 'lead.status_changed'
          AND id > $2
          AND ($3::uuid IS NULL OR lead_id = $3)
        ORDER BY id
        """,
        org,
        after,
        UUID(lead_id) if lead_id else None,
    )
    return [r["id"] for r in rows]


async def latest_event_id(pool: asyncpg.Pool, org: UUID) -> int:
    latest: int = await pool.fetchval(
        "SELECT coalesce(max(id), 0) FROM lead_events WHERE organization_id = $1", org
    )
    return latest


async def next_change(sub: Subscription, wait: float = 5.0) -> dict[str, Any]:
    payload = await sub.next(wait)
    assert "errors" not in payload, payload
    change: dict[str, Any] = payload["data"]["leadStageChanged"]
    return change


async def changes_until_quiet(sub: Subscription, at_least: int) -> list[dict[str, Any]]:
    """Every change that arrives until `at_least` came and then nothing more for QUIET s."""
    changes: list[dict[str, Any]] = []
    while True:
        try:
            changes.append(await next_change(sub, QUIET if len(changes) >= at_least else 10.0))
        except TimeoutError:
            return changes


def event_ids(changes: Sequence[dict[str, Any]]) -> list[int]:
    return [int(c["eventId"]) for c in changes]


def with_application_name(url: str, name: str) -> str:
    """`url` whose connections carry `name` (asyncpg passes unknown DSN parameters on)."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("application_name", name)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True)
class OwnGateway:
    server: TestServer
    # The pool sets its own application_name, so only the LISTEN connection carries this one.
    listener_tag: str

    @property
    def url(self) -> str:
        return ws_url(self.server)


@pytest.fixture
async def own_gateway(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[OwnGateway]:
    """A gateway with a listener and feed of its own, for tests that break or retune them."""
    assert settings.database_url is not None
    tag = f"leadgate-test-{uuid.uuid4().hex[:12]}"
    own = dataclasses.replace(
        settings,
        database_url=with_application_name(settings.database_url, tag),
        dispatcher_enabled=False,
    )
    server = TestServer(create_app(own), host="127.0.0.1")
    await server.start_server()
    try:
        yield OwnGateway(server, tag)
    finally:
        await server.close()


# --- filters and tenancy --------------------------------------------------------------------


async def test_a_subscriber_filtered_by_lead_receives_only_that_leads_moves(
    api: Api, server: TestServer, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    pipeline = await Pipeline.load(pool, tenant)
    watched, other, third = pipeline.leads[:3]
    cursor = await latest_event_id(pool, tenant.id)
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, CHANGES, {"leadId": watched, "after": str(cursor)})
        for lead_id in (other, watched, third, other, watched):
            await pipeline.move(session, api.base, lead_id)
        changes = await changes_until_quiet(sub, 2)

    assert {c["lead"]["id"] for c in changes} == {watched}
    assert event_ids(changes) == await status_changes_after(pool, tenant.id, cursor, watched)
    assert len(changes) == 2


async def test_a_subscriber_filtered_by_stage_receives_only_moves_into_or_out_of_it(
    api: Api, server: TestServer, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    pipeline = await Pipeline.load(pool, tenant)
    watched = tenant.stage_ids[3]
    in_and_out, unrelated, into = [
        lead for lead in pipeline.leads if pipeline.stage_of[lead] != watched
    ][:3]
    cursor = await latest_event_id(pool, tenant.id)
    made: list[tuple[str, str, str]] = []
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, CHANGES, {"stageId": str(watched), "after": str(cursor)})
        for lead_id, stage in [
            (unrelated, None),
            (in_and_out, watched),
            (unrelated, None),
            (in_and_out, None),
            (into, watched),
        ]:
            before = pipeline.stage_of[lead_id]
            to = stage or pipeline.other_stage(lead_id, besides=[watched])
            await pipeline.move(session, api.base, lead_id, to)
            made.append((lead_id, str(before), str(to)))
        changes = await changes_until_quiet(sub, 3)

    received = [(c["lead"]["id"], c["fromStage"]["id"], c["toStage"]["id"]) for c in changes]
    assert received == [m for m in made if str(watched) in m[1:]]
    assert len(received) == 3


async def test_a_subscriber_replaying_from_the_start_gets_only_its_organizations_moves(
    api: Api, server: TestServer, tenant: Tenant, other_tenant: Tenant, pool: asyncpg.Pool
) -> None:
    mine = await Pipeline.load(pool, tenant)
    theirs = await Pipeline.load(pool, other_tenant)
    async with aiohttp.ClientSession() as session:
        # Some before the subscription (the replay must skip them), some after (live too).
        for lead_id in theirs.leads[:3]:
            await theirs.move(session, api.base, lead_id)
        async with connect(session, ws_url(server), tenant.read_key) as ws:
            sub = await subscribe(ws, CHANGES, {"after": "0"})
            for lead_id in theirs.leads[3:6]:
                await theirs.move(session, api.base, lead_id)
            await mine.move(session, api.base, mine.leads[0])
            first = await next_change(sub)

    assert first["lead"]["id"] == mine.leads[0]
    assert event_ids([first]) == await status_changes_after(pool, tenant.id, 0)


async def test_filtering_by_another_organizations_lead_receives_none_of_its_moves(
    api: Api, server: TestServer, tenant: Tenant, other_tenant: Tenant, pool: asyncpg.Pool
) -> None:
    theirs = await Pipeline.load(pool, other_tenant)
    their_lead = theirs.leads[0]
    cursor = await latest_event_id(pool, other_tenant.id)
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as spy_ws,
        connect(session, ws_url(server), other_tenant.read_key) as owner_ws,
    ):
        spy = await subscribe(spy_ws, CHANGES, {"leadId": their_lead, "after": "0"})
        owner = await subscribe(owner_ws, CHANGES, {"leadId": their_lead, "after": str(cursor)})
        for _ in range(3):
            await theirs.move(session, api.base, their_lead)
        # The owner's subscription proves the moves were published while the spy listened.
        assert len(await changes_until_quiet(owner, 3)) == 3
        with pytest.raises(TimeoutError):
            await spy.next(QUIET)


# --- resume with concurrent writers ---------------------------------------------------------


async def test_resuming_while_others_write_receives_exactly_the_events_after_the_cursor(
    api: Api, server: TestServer, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    pipeline = await Pipeline.load(pool, tenant)
    shares = [pipeline.leads[i::WRITERS] for i in range(WRITERS)]
    cursor = await latest_event_id(pool, tenant.id)
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(aiohttp.ClientSession()) for _ in range(WRITERS + 1)
        ]
        subscriber_session, writer_sessions = sessions[0], sessions[1:]
        for round_no in range(ROUNDS):
            async with contextlib.AsyncExitStack() as connection:
                # Each writer is its own HTTP connection, so their transactions overlap; the
                # subscriber reconnects with `after` while they are still writing.
                async with asyncio.TaskGroup() as writers:
                    for session, share in zip(writer_sessions, shares, strict=True):
                        writers.create_task(
                            pipeline.keep_moving(session, api.base, share, WRITE_SECONDS)
                        )
                    await asyncio.sleep(WRITE_SECONDS / 3)
                    ws = await connection.enter_async_context(
                        connect(subscriber_session, ws_url(server), tenant.read_key)
                    )
                    sub = await subscribe(ws, CHANGES, {"after": str(cursor)})
                expected = await status_changes_after(pool, tenant.id, cursor)
                received = event_ids(await changes_until_quiet(sub, len(expected)))

            assert expected, f"round {round_no}: the writers wrote nothing"
            assert received == expected, (
                f"round {round_no} after {cursor}: "
                f"missing {sorted(set(expected) - set(received))}, "
                f"unexpected {sorted(set(received) - set(expected))}, "
                f"duplicates {len(received) - len(set(received))}"
            )
            cursor = received[-1]


# --- a lost LISTEN connection ---------------------------------------------------------------


async def kill_listener(pool: asyncpg.Pool, gateway: OwnGateway) -> float:
    """Terminate the gateway's LISTEN backend; seconds until it listens again."""
    listener = gateway.server.app[keys.LISTENER]
    reconnects = listener.reconnects
    killed = await pool.fetchval(
        """
        SELECT count(pg_terminate_backend(pid))
        FROM pg_stat_activity
        WHERE datname = current_database()
          AND application_name = $1
        """,
        gateway.listener_tag,
    )
    assert killed == 1, f"expected one LISTEN backend, terminated {killed}"
    started = time.monotonic()
    while listener.reconnects == reconnects or not listener.connected.is_set():
        waited = time.monotonic() - started
        assert waited < RECONNECT_DEADLINE, f"listener not back after {waited:.1f}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_killed_listener_connection_loses_no_move_and_reconnects_within_5s(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, own_gateway: OwnGateway
) -> None:
    pipeline = await Pipeline.load(pool, tenant)
    shares = [pipeline.leads[i::WRITERS] for i in range(WRITERS)]
    cursor = await latest_event_id(pool, tenant.id)
    made = 0
    reached = {threshold: asyncio.Event() for threshold in KILL_AFTER_MOVES}
    downtimes: list[float] = []

    async def write(session: aiohttp.ClientSession, share: list[str], moves: int) -> None:
        nonlocal made
        for lead_id in itertools.islice(itertools.cycle(share), moves):
            # Moves go through the session's gateway: own_gateway only hears of them.
            await pipeline.move(session, api.base, lead_id)
            made += 1
            for threshold, event in reached.items():
                if made >= threshold:
                    event.set()
            await asyncio.sleep(MOVE_PACE)

    async def sabotage() -> None:
        for threshold in KILL_AFTER_MOVES:
            await reached[threshold].wait()
            downtimes.append(await kill_listener(pool, own_gateway))

    async with (
        aiohttp.ClientSession() as session,
        connect(session, own_gateway.url, tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, CHANGES, {"after": str(cursor)})
        async with (
            asyncio.timeout(60),
            contextlib.AsyncExitStack() as stack,
            asyncio.TaskGroup() as group,
        ):
            for share in shares:
                writer_session = await stack.enter_async_context(aiohttp.ClientSession())
                group.create_task(write(writer_session, share, LISTENER_MOVES // WRITERS))
            group.create_task(sabotage())
        received = event_ids(await changes_until_quiet(sub, LISTENER_MOVES))

    expected = await status_changes_after(pool, tenant.id, cursor)
    assert len(expected) == LISTENER_MOVES
    assert len(received) == len(set(received)), "duplicates"
    assert received == expected
    assert len(downtimes) == len(KILL_AFTER_MOVES)


# --- slow consumers -------------------------------------------------------------------------


def tiny_receive_buffer(addr_info: AddrInfoType) -> socket.socket:
    """A client socket that holds little: what it does not read stays in the server."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


@dataclass
class Stalled:
    """A subscription whose client read one message and then stopped reading."""

    ws: aiohttp.ClientWebSocketResponse
    last_read: int

    async def read_to_the_end(self) -> tuple[list[int], list[dict[str, Any]]]:
        """Read at last: the event ids it still gets, and the errors that close it."""
        delivered: list[int] = []
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), 10)
            if message["type"] == "complete":
                return delivered, []
            if message["type"] == "error":
                return delivered, message["payload"]
            payload = message["payload"]
            if payload.get("errors"):
                return delivered, payload["errors"]
            delivered.append(int(payload["data"]["leadStageChanged"]["eventId"]))


@contextlib.asynccontextmanager
async def stalled_subscriber(
    gateway: OwnGateway, pipeline: Pipeline, lead_id: str, api: Api, pool: asyncpg.Pool
) -> AsyncIterator[Stalled]:
    # customFields of about 15 kB make every fat message a few hundred kB.
    async with api.session.patch(
        f"{api.base}/v1/leads/{lead_id}",
        json={"customFields": {"padding": "x" * 15_000}},
        headers=bearer(pipeline.tenant.write_key),
    ) as resp:
        assert resp.status == 200, await resp.text()
    cursor = await latest_event_id(pool, pipeline.tenant.id)
    await pipeline.move(api.session, api.base, lead_id)
    connector = aiohttp.TCPConnector(socket_factory=tiny_receive_buffer)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        connect(session, gateway.url, pipeline.tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, FAT_CHANGES, {"leadId": lead_id, "after": str(cursor)})
        # Receiving the replayed move proves the subscription is registered.
        first = int((await sub.next())["data"]["leadStageChanged"]["eventId"])
        yield Stalled(ws, first)


async def test_a_subscriber_that_stops_reading_does_not_delay_another(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, own_gateway: OwnGateway
) -> None:
    own_gateway.server.app[keys.EVENT_FEED].queue_size = SMALL_QUEUE
    pipeline = await Pipeline.load(pool, tenant)
    lead_id = pipeline.leads[0]
    delays: list[float] = []
    async with stalled_subscriber(own_gateway, pipeline, lead_id, api, pool) as stalled:
        async with connect(api.session, own_gateway.url, tenant.read_key) as ws:
            prompt = await subscribe(
                ws, CHANGES, {"leadId": lead_id, "after": str(stalled.last_read)}
            )
            for _ in range(STALLED_MOVES):
                await pipeline.move(api.session, api.base, lead_id)
                moved = time.monotonic()
                await next_change(prompt, wait=PROMPT)
                delays.append(time.monotonic() - moved)
        _, errors = await stalled.read_to_the_end()

    assert errors, "the stalled subscriber never fell behind: the test proves nothing"
    assert len(delays) == STALLED_MOVES
    assert max(delays) < PROMPT


async def test_a_subscriber_too_far_behind_is_closed_with_the_cursor_to_resume_after(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, own_gateway: OwnGateway
) -> None:
    own_gateway.server.app[keys.EVENT_FEED].queue_size = SMALL_QUEUE
    pipeline = await Pipeline.load(pool, tenant)
    lead_id = pipeline.leads[0]
    async with stalled_subscriber(own_gateway, pipeline, lead_id, api, pool) as stalled:
        for _ in range(STALLED_MOVES):
            await pipeline.move(api.session, api.base, lead_id)
        delivered, errors = await stalled.read_to_the_end()
    last_seen = delivered[-1] if delivered else stalled.last_read

    assert len(errors) == 1, errors
    assert re.search(rf'\bafter: "{last_seen}"', errors[0]["message"]), errors[0]["message"]
    # What the error says is enough to carry on without a gap.
    expected = await status_changes_after(pool, tenant.id, stalled.last_read, lead_id)
    async with connect(api.session, own_gateway.url, tenant.read_key) as ws:
        sub = await subscribe(ws, CHANGES, {"leadId": lead_id, "after": str(last_seen)})
        rest = event_ids(await changes_until_quiet(sub, len(expected) - len(delivered)))
    assert [*delivered, *rest] == expected
    assert errors[0].get("extensions", {}).get("code") == "SUBSCRIBER_TOO_SLOW", errors[0]


# --- the per-connection cap -----------------------------------------------------------------


async def test_subscriptions_beyond_the_per_connection_cap_are_refused(
    api: Api, server: TestServer, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    pipeline = await Pipeline.load(pool, tenant)
    cursor = await latest_event_id(pool, tenant.id)
    async with connect(api.session, ws_url(server), tenant.read_key) as ws:
        subs = [
            await subscribe(ws, CHANGES, {"after": str(cursor)}, op_id=str(n))
            for n in range(1, MAX_SUBSCRIPTIONS_PER_CONNECTION + 1)
        ]
        await subscribe(ws, CHANGES, {"after": str(cursor)}, op_id="over")
        await pipeline.move(api.session, api.base, pipeline.leads[0])
        by_op: dict[str, list[dict[str, Any]]] = {}
        while len(by_op) < len(subs) + 1:
            message = await asyncio.wait_for(ws.receive_json(), 5)
            by_op.setdefault(message.get("id", ""), []).append(message)

    assert [m["type"] for m in by_op["over"]] == ["error"]
    assert "limit" in by_op["over"][0]["payload"][0]["message"].lower()
    assert all([m["type"] for m in by_op[s.op_id]] == ["next"] for s in subs)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variables",
    [
        {"leadId": "not-a-uuid"},
        {"after": "9999999999999999999"},  # 19 digits, beyond bigint
        {"after": "\u00b2"},  # str.isdigit() but not int()
    ],
    ids=["leadId", "after-overflow", "after-superscript"],
)
async def test_a_malformed_subscription_argument_is_a_validation_error_as_over_http(
    api: Api, server: TestServer, tenant: Tenant, variables: dict[str, str]
) -> None:
    async with connect(api.session, ws_url(server), tenant.read_key) as ws:
        await subscribe(ws, CHANGES, variables)
        message = await asyncio.wait_for(ws.receive_json(), 5)

    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert [e.get("extensions", {}).get("code") for e in errors] == ["VALIDATION_ERROR"], errors
