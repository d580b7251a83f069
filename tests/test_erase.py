"""eraseLead (issue 12 #2): a lead's personal data removed for good — the row, the stored
idempotent responses that show it, the personal fields of its past events — leaving a
`lead.erased` event without personal data; pending webhook deliveries are cancelled. Only a
write key or an admin may erase; another organization's lead is NOT_FOUND; a replay answers
the same without a second event."""

from __future__ import annotations

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
from tests.support import Api, Tenant, create_lead, error_codes, header, make_tenant, ok
from tests.test_webhooks import create_endpoint
from tests.webhook_receiver import Receiver, Reply

SECRET: Final = "a-development-secret-for-erase-tests-32b"
ERASE: Final = """
mutation($id: ID!, $key: String) { eraseLead(id: $id, idempotencyKey: $key) { id erasedAt } }
"""
CREATE: Final = """
mutation($input: CreateLeadInput!, $key: String) {
  createLead(input: $input, idempotencyKey: $key) { id }
}
"""
UPDATE: Final = """
mutation($id: ID!, $input: UpdateLeadInput!, $key: String) {
  updateLead(id: $id, input: $input, idempotencyKey: $key) { id }
}
"""
DNC: Final = "mutation($id: ID!, $r: String) { markDoNotCall(id: $id, reason: $r) { id } }"
# Every column that can hold text: each is searched for each erased value.
TEXT_COLUMNS: Final = """
SELECT table_name, column_name, data_type
FROM information_schema.columns
WHERE table_schema = 'public'
  AND data_type IN ('text', 'character varying', 'character', 'bytea', 'jsonb', 'json',
                    'ARRAY', 'tsvector')
ORDER BY table_name, column_name
"""


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool, name="Erasure Lending")


@pytest.fixture
async def other_tenant(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool, name="Other Erasure Lending")


@dataclasses.dataclass(frozen=True)
class Person:
    """Personal values unique to one test, so a trace of them can only be this lead's."""

    business_name: str
    first_name: str
    last_name: str
    email: str
    phone: str
    new_email: str

    @classmethod
    def unique(cls) -> Person:
        tag = uuid.uuid4().hex[:10]
        return cls(
            business_name=f"Erasable Bakery {tag}",
            first_name=f"Zelda{tag}",
            last_name=f"Quux{tag}",
            email=f"zelda.{tag}@erasable.example.org",
            phone=f"+1555{int(tag, 16) % 10**9:09d}",
            new_email=f"q.{tag}@other-erasable.example.org",
        )

    def values(self) -> list[str]:
        return [
            self.business_name,
            self.first_name,
            self.last_name,
            self.email,
            self.phone,
            self.new_email,
        ]


async def traces(pool: asyncpg.Pool, values: list[str]) -> list[str]:
    """Every `table.column` of the database holding any of `values` (in any row)."""
    found = []
    async with pool.acquire() as conn:
        columns = await conn.fetch(TEXT_COLUMNS)
        for c in columns:
            table, column = c["table_name"], c["column_name"]
            if c["data_type"] == "bytea":
                test = f"position(convert_to(v, 'UTF8') IN t.\"{column}\") > 0"
            else:
                test = f'position(lower(v) IN lower(t."{column}"::text)) > 0'
            hits = await conn.fetchval(
                f'SELECT count(*) FROM "{table}" AS t, unnest($1::text[]) AS v WHERE {test}',  # noqa: S608 - names from the catalog
                values,
            )
            if hits:
                found.append(f"{table}.{column}")
    return found


async def personal_lead(api: Api, tenant: Tenant, person: Person) -> str:
    """A lead of `person` with a history: created and updated under idempotency keys,
    marked do-not-call with a reason quoting the email."""
    created = await ok(
        api,
        tenant.write_key,
        CREATE,
        {
            "input": {
                "businessName": person.business_name,
                "contactFirstName": person.first_name,
                "contactLastName": person.last_name,
                "email": person.email,
                "phone": person.phone,
                "customFields": {"note": f"met {person.first_name} at the fair"},
            },
            "key": f"create-{person.email}",
        },
    )
    lead_id: str = created["createLead"]["id"]
    await ok(
        api,
        tenant.write_key,
        UPDATE,
        {"id": lead_id, "input": {"email": person.new_email}, "key": f"update-{person.email}"},
    )
    status, body, _ = await api.rest(
        "PATCH",
        f"/v1/leads/{lead_id}",
        tenant.write_key,
        json={"industry": "Bakery"},
        headers={"Idempotency-Key": f"rest-{person.email}"},
    )
    assert status == 200, body
    await ok(api, tenant.write_key, DNC, {"id": lead_id, "r": f"{person.new_email} asked"})
    return lead_id


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    # Every attempt answers 503 with a retry an hour away: deliveries stay pending.
    async with Receiver(default=Reply(503, {"Retry-After": "3600"})) as opened:
        yield opened


async def test_erase_leaves_no_trace_of_the_leads_personal_data_in_any_column(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    await create_endpoint(api, tenant, receiver.url, ["lead.created", "lead.updated"])
    person = Person.unique()
    lead_id = await personal_lead(api, tenant, person)
    await receiver.wait_for_count(1)
    assert await traces(pool, person.values()), "the scan finds the values before erasure"

    data = await ok(api, tenant.write_key, ERASE, {"id": lead_id})
    assert data["eraseLead"]["id"] == lead_id

    assert await traces(pool, person.values()) == []
    async with pool.acquire() as conn:
        events = await conn.fetch(
            "SELECT type, payload FROM lead_events WHERE organization_id = $1 AND lead_id = $2"
            " ORDER BY sequence",
            tenant.id,
            uuid.UUID(lead_id),
        )
    assert [e["type"] for e in events] == [
        "lead.created",
        "lead.updated",
        "lead.updated",
        "lead.dnc_changed",
        "lead.erased",
    ]
    assert events[-1]["payload"] == {
        "lead": {"id": lead_id, "type": "lead"},
        "erasedAt": data["eraseLead"]["erasedAt"],
    }


async def test_erase_cancels_pending_deliveries_and_sends_lead_erased(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    async with Receiver(default=Reply(503, {"Retry-After": "3600"})) as failing:
        await create_endpoint(api, tenant, failing.url, ["lead.created", "lead.updated"])
        lead_id = await personal_lead(api, tenant, Person.unique())
        await failing.wait_for_count(1)
    async with Receiver() as receiving:
        await create_endpoint(api, tenant, receiving.url, ["lead.erased"])
        status, body, _ = await api.rest("POST", f"/v1/leads/{lead_id}/erase", tenant.write_key)
        assert status == 200, body
        assert body["data"]["id"] == lead_id
        (received,) = await receiving.wait_for_count(1)
    assert received.json["type"] == "lead.erased"
    assert received.json["data"] == {
        "id": lead_id,
        "type": "lead",
        "erasedAt": body["data"]["erasedAt"],
    }
    async with pool.acquire() as conn:
        statuses = await conn.fetch(
            "SELECT d.status, d.error, e.type FROM webhook_deliveries AS d"
            " JOIN lead_events AS e ON e.organization_id = d.organization_id AND e.id = d.event_id"
            " WHERE d.organization_id = $1 AND e.type <> 'lead.erased'",
            tenant.id,
        )
    assert statuses, "the failing endpoint had deliveries"
    assert {(s["status"], s["error"]) for s in statuses} == {
        ("failed", "cancelled: the lead was erased")
    }


async def test_an_erased_lead_is_gone_from_both_apis_and_the_total(
    api: Api, tenant: Tenant
) -> None:
    kept = await create_lead(api, tenant)
    erased = await create_lead(api, tenant)
    await ok(api, tenant.write_key, ERASE, {"id": erased})
    status, body, _ = await api.rest("GET", f"/v1/leads/{erased}", tenant.read_key)
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
    _, graphql_body = await api.graphql(tenant.read_key, ERASE, {"id": erased})
    assert error_codes(graphql_body) == ["FORBIDDEN"]
    _, again = await api.graphql(tenant.write_key, ERASE, {"id": erased})
    assert error_codes(again) == ["NOT_FOUND"]
    status, page, _ = await api.rest("GET", "/v1/leads?includeArchived=true", tenant.read_key)
    assert ([d["id"] for d in page["data"]], page["meta"]["total"]) == ([kept], 1)


async def test_read_only_keys_may_not_erase(api: Api, tenant: Tenant) -> None:
    lead_id = await create_lead(api, tenant)
    _, body = await api.graphql(tenant.read_key, ERASE, {"id": lead_id})
    assert error_codes(body) == ["FORBIDDEN"]
    status, rest_body, _ = await api.rest("POST", f"/v1/leads/{lead_id}/erase", tenant.read_key)
    assert (status, rest_body["error"]["code"]) == (403, "FORBIDDEN")
    status, _, _ = await api.rest("GET", f"/v1/leads/{lead_id}", tenant.read_key)
    assert status == 200


async def test_another_organizations_lead_is_not_found_to_erase(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await create_lead(api, other_tenant)
    _, body = await api.graphql(tenant.write_key, ERASE, {"id": theirs})
    assert error_codes(body) == ["NOT_FOUND"]
    status, rest_body, _ = await api.rest("POST", f"/v1/leads/{theirs}/erase", tenant.write_key)
    assert (status, rest_body["error"]["code"]) == (404, "NOT_FOUND")
    status, _, _ = await api.rest("GET", f"/v1/leads/{theirs}", other_tenant.read_key)
    assert status == 200


async def test_a_replayed_erase_answers_the_same_with_one_lead_erased_event(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    lead_id = await create_lead(api, tenant)
    variables = {"id": lead_id, "key": "erase-once"}
    first = await ok(api, tenant.write_key, ERASE, variables)
    _, replay = await api.graphql(tenant.write_key, ERASE, variables)
    assert replay["data"] == first
    assert replay["extensions"]["idempotentReplayed"] is True

    rest_lead = await create_lead(api, tenant)
    key = {"Idempotency-Key": "rest-erase-once"}
    path = f"/v1/leads/{rest_lead}/erase"
    status, original, _ = await api.rest("POST", path, tenant.write_key, headers=key)
    assert status == 200, original
    again, replayed, headers = await api.rest("POST", path, tenant.write_key, headers=key)
    assert (again, replayed) == (200, original)
    assert header(headers, "Idempotent-Replayed") == "true"
    async with pool.acquire() as conn:
        erased = await conn.fetchval(
            "SELECT count(*) FROM lead_events WHERE organization_id = $1 AND type = 'lead.erased'",
            tenant.id,
        )
    assert erased == 2


@pytest.fixture(scope="module")
async def token_api(settings: Settings) -> AsyncIterator[Api]:
    """A gateway that also takes HS256 development tokens (no dispatcher of its own)."""
    changed = dataclasses.replace(settings, jwt_secret=SECRET, dispatcher_enabled=False)
    server = TestServer(create_app(changed), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Api(session=session, base=str(server.make_url("")).rstrip("/"))
    await server.close()


def user_token(org: uuid.UUID, role: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": f"user-{role}",
        "org_id": str(org),
        "role": role,
        "iat": now,
        "exp": now + 300,
    }
    return jwt.encode(claims, SECRET, "HS256")


async def test_users_need_the_admin_role_to_erase(token_api: Api, tenant: Tenant) -> None:
    lead_id = await create_lead(token_api, tenant)
    editor = user_token(tenant.id, "editor")
    _, body = await token_api.graphql(editor, ERASE, {"id": lead_id})
    assert error_codes(body) == ["FORBIDDEN"]
    admin = user_token(tenant.id, "admin")
    data = await ok(token_api, admin, ERASE, {"id": lead_id})
    assert data["eraseLead"]["id"] == lead_id


async def test_the_event_feed_shows_an_erased_leads_scrubbed_history_with_no_lead(
    api: Api, tenant: Tenant
) -> None:
    person = Person.unique()
    lead_id = await personal_lead(api, tenant, person)
    await ok(api, tenant.write_key, ERASE, {"id": lead_id})
    query = "{ events(limit: 100) { type data lead { id } } }"
    events = (await ok(api, tenant.read_key, query))["events"]
    assert [e["type"] for e in events][-1] == "lead.erased"
    assert {e["lead"] is None for e in events} == {True}
    assert not any(v in str(events) for v in person.values())
    status, body, _ = await api.rest("GET", "/v1/events", tenant.read_key)
    assert status == 200, body
    assert body["data"][-1]["type"] == "lead.erased"
    assert not any(v in str(body) for v in person.values())
