"""Actor on every write (issue 10 #3): each event records who made it happen (the API key, or
the token's user) and the request that did (its X-Request-Id), and shows it on
`LeadEvent.actor`, in subscriptions, in webhook bodies and in `GET /v1/events`; a lead's
`createdBy` is the creating actor's id."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.services import auth
from tests.support import Api, Tenant, create_lead, header, make_tenant, ok
from tests.test_subscriptions import ws_url
from tests.test_webhooks import create_endpoint
from tests.webhook_receiver import Receiver
from tests.ws_client import connect, subscribe

SECRET: Final = "a-development-secret-for-actor-tests-32b"
CREATE: Final = """
mutation($name: String!, $key: String) {
  createLead(input: {businessName: $name}, idempotencyKey: $key) { id createdBy }
}
"""
MOVE: Final = "mutation($id: ID!, $stage: ID!) { moveLead(id: $id, stageId: $stage) { id } }"
ACTORS: Final = """
query($id: ID!) {
  lead(id: $id) { createdBy history { type actor { type id requestId } } }
}
"""


@dataclasses.dataclass(frozen=True)
class Writer:
    """A tenant and one write key of it whose id the test knows."""

    tenant: Tenant
    key: str
    key_id: str


@pytest.fixture
async def writer(pool: asyncpg.Pool) -> Writer:
    tenant = await make_tenant(pool, leads=1, name="Actor Lending")
    created = await auth.create_api_key(pool, organization_id=tenant.id, can_write=True)
    return Writer(tenant=tenant, key=created.key, key_id=str(created.id))


@pytest.fixture(scope="module")
async def token_api(settings: Settings) -> AsyncIterator[Api]:
    """A gateway that also takes HS256 development tokens (no dispatcher of its own)."""
    changed = dataclasses.replace(settings, jwt_secret=SECRET, dispatcher_enabled=False)
    server = TestServer(create_app(changed), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Api(session=session, base=str(server.make_url("")).rstrip("/"))
    await server.close()


def user_token(org: uuid.UUID, subject: str, role: str = "editor") -> str:
    now = int(time.time())
    claims = {"sub": subject, "org_id": str(org), "role": role, "iat": now, "exp": now + 300}
    return jwt.encode(claims, SECRET, "HS256")


async def graphql(
    api: Api, credential: str, query: str, variables: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The data of a request that must succeed, and its response's X-Request-Id."""
    async with api.session.post(
        f"{api.base}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {credential}"},
    ) as resp:
        body = await resp.json()
        request_id = resp.headers["X-Request-Id"]
    assert resp.status == 200, body
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data, request_id


async def actors(api: Api, tenant: Tenant, lead_id: str) -> dict[str, Any]:
    """The lead's createdBy and its events' (type, actor), oldest first."""
    lead = (await ok(api, tenant.read_key, ACTORS, {"id": lead_id}))["lead"]
    return {
        "createdBy": lead["createdBy"],
        "events": [(e["type"], e["actor"]) for e in reversed(lead["history"])],
    }


async def test_a_rest_write_with_an_api_key_records_the_key_and_the_responses_request_id(
    api: Api, writer: Writer
) -> None:
    status, body, headers = await api.rest(
        "POST", "/v1/leads", writer.key, json={"businessName": "Keyed Bakery"}
    )
    assert status == 201, body
    lead_id = body["data"]["id"]

    found = await actors(api, writer.tenant, lead_id)

    actor = {"type": "api_key", "id": writer.key_id, "requestId": header(headers, "X-Request-Id")}
    assert found == {"createdBy": writer.key_id, "events": [("lead.created", actor)]}
    assert body["data"]["attributes"]["createdBy"] == writer.key_id


async def test_a_graphql_write_records_the_request_id_of_its_response(
    api: Api, writer: Writer
) -> None:
    created, create_id = await graphql(api, writer.key, CREATE, {"name": "Moving Bakery"})
    lead_id = created["createLead"]["id"]
    stage = str(writer.tenant.stage_ids[2])

    _, move_id = await graphql(api, writer.key, MOVE, {"id": lead_id, "stage": stage})

    assert create_id != move_id
    assert (await actors(api, writer.tenant, lead_id))["events"] == [
        ("lead.created", {"type": "api_key", "id": writer.key_id, "requestId": create_id}),
        ("lead.status_changed", {"type": "api_key", "id": writer.key_id, "requestId": move_id}),
    ]
    assert created["createLead"]["createdBy"] == writer.key_id


async def test_a_write_with_a_user_token_records_the_user_and_makes_them_the_creator(
    token_api: Api, writer: Writer
) -> None:
    subject = f"auth0|{uuid.uuid4().hex}"  # a `sub` is any string, not a UUID
    token = user_token(writer.tenant.id, subject)

    created, request_id = await graphql(token_api, token, CREATE, {"name": "Token Bakery"})

    lead_id = created["createLead"]["id"]
    assert created["createLead"]["createdBy"] == subject
    assert await actors(token_api, writer.tenant, lead_id) == {
        "createdBy": subject,
        "events": [("lead.created", {"type": "user", "id": subject, "requestId": request_id})],
    }
    _, rest, _ = await token_api.rest("GET", f"/v1/leads/{lead_id}", token)
    assert rest["data"]["attributes"]["createdBy"] == subject


async def test_an_idempotent_replay_records_no_second_event_and_keeps_the_first_actor(
    api: Api, writer: Writer
) -> None:
    variables = {"name": "Once Bakery", "key": f"actor-{uuid.uuid4()}"}
    first, first_id = await graphql(api, writer.key, CREATE, variables)

    again, again_id = await graphql(api, writer.key, CREATE, variables)

    lead_id = first["createLead"]["id"]
    assert again["createLead"]["id"] == lead_id
    assert again_id != first_id
    assert (await actors(api, writer.tenant, lead_id))["events"] == [
        ("lead.created", {"type": "api_key", "id": writer.key_id, "requestId": first_id}),
    ]


async def test_rest_events_carry_the_actor(api: Api, writer: Writer) -> None:
    status, body, headers = await api.rest(
        "POST", "/v1/leads", writer.key, json={"businessName": "Listed Bakery"}
    )
    assert status == 201, body

    _, events, _ = await api.rest("GET", "/v1/events", writer.tenant.read_key)

    (event,) = [e for e in events["data"] if e["leadId"] == body["data"]["id"]]
    assert event["actor"] == {
        "type": "api_key",
        "id": writer.key_id,
        "requestId": header(headers, "X-Request-Id"),
    }


async def test_the_webhook_body_carries_the_actor_beside_its_data(
    api: Api, token_api: Api, writer: Writer, pool: asyncpg.Pool
) -> None:
    subject = f"user-{uuid.uuid4().hex[:8]}"
    async with Receiver(()) as receiver:
        try:
            await create_endpoint(api, writer.tenant, receiver.url, ["lead.created"])
            token = user_token(writer.tenant.id, subject)
            _, request_id = await graphql(token_api, token, CREATE, {"name": "Hooked Bakery"})

            (request,) = await receiver.wait_for_count(1)
        finally:
            async with pool.acquire() as conn:
                await conn.execute("DELETE FROM webhook_endpoints WHERE url = $1", receiver.url)

    body = request.json
    assert body["actor"] == {"type": "user", "id": subject, "requestId": request_id}
    assert "actor" not in body["data"]
    assert body["data"]["attributes"]["createdBy"] == subject


EVENT_STREAM: Final = """
subscription($leadId: ID) {
  leadEvents(leadId: $leadId) { type actor { type id requestId } }
}
"""
STAGE_STREAM: Final = """
subscription($leadId: ID) {
  leadStageChanged(leadId: $leadId) { toStage { stageKey } actor { type id requestId } }
}
"""


async def test_subscriptions_show_who_made_each_event(
    api: Api, server: TestServer, writer: Writer
) -> None:
    lead_id = await create_lead(api, writer.tenant, "Streamed Bakery")
    stage = str(writer.tenant.stage_ids[3])
    # One connection each: a client reading one operation's messages skips the other's.
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), writer.tenant.read_key) as events_ws,
        connect(session, ws_url(server), writer.tenant.read_key) as moves_ws,
    ):
        events = await subscribe(events_ws, EVENT_STREAM, {"leadId": lead_id})
        moves = await subscribe(moves_ws, STAGE_STREAM, {"leadId": lead_id})
        await asyncio.sleep(0.2)  # both subscriptions registered before the write
        _, request_id = await graphql(api, writer.key, MOVE, {"id": lead_id, "stage": stage})

        event = (await events.next())["data"]["leadEvents"]
        moved = (await moves.next())["data"]["leadStageChanged"]

    actor = {"type": "api_key", "id": writer.key_id, "requestId": request_id}
    assert event == {"type": "lead.status_changed", "actor": actor}
    assert moved == {"toStage": {"stageKey": "application"}, "actor": actor}


async def test_events_from_before_actors_were_recorded_show_a_null_actor(
    api: Api, writer: Writer, pool: asyncpg.Pool
) -> None:
    lead_id = await create_lead(api, writer.tenant, "Old Bakery")
    async with pool.acquire() as conn:
        # What migration 0006 leaves on the events that were already there.
        await conn.execute(
            "UPDATE lead_events SET actor = NULL WHERE organization_id = $1 AND lead_id = $2",
            writer.tenant.id,
            uuid.UUID(lead_id),
        )

    found = await actors(api, writer.tenant, lead_id)
    _, events, _ = await api.rest("GET", "/v1/events", writer.tenant.read_key)

    assert found["events"] == [("lead.created", None)]
    assert [e["actor"] for e in events["data"] if e["leadId"] == lead_id] == [None]


async def test_the_database_refuses_an_actor_of_another_shape(
    api: Api, writer: Writer, pool: asyncpg.Pool
) -> None:
    lead_id = await create_lead(api, writer.tenant, "Checked Bakery")
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "UPDATE lead_events SET actor = $3 WHERE organization_id = $1 AND lead_id = $2",
                writer.tenant.id,
                uuid.UUID(lead_id),
                {"type": "robot", "id": "x", "requestId": "y"},
            )
