"""Idempotency keys (DESIGN §5, issue 3): retries, races, scope, expiry and crashes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import orjson
import pytest

from leadgate.config import Settings
from leadgate.store import idempotency
from tests.support import Api, Tenant, bearer, error_codes

CREATE = """
mutation Create($input: CreateLeadInput!, $key: String) {
  createLead(input: $input, idempotencyKey: $key) { id businessName }
}
"""
CREATE_TWO = """
mutation CreateTwo($a: CreateLeadInput!, $b: CreateLeadInput!, $ka: String, $kb: String) {
  a: createLead(input: $a, idempotencyKey: $ka) { id }
  b: createLead(input: $b, idempotencyKey: $kb) { id }
}
"""
UPDATE = """
mutation Update($id: ID!, $input: UpdateLeadInput!, $key: String) {
  updateLead(id: $id, input: $input, idempotencyKey: $key) { id industry }
}
"""
MOVE = """
mutation Move($id: ID!, $stage: ID!, $key: String) {
  moveLead(id: $id, stageId: $stage, idempotencyKey: $key) { id stage { id } }
}
"""
RACERS = 50
T = TypeVar("T")
# Well above Settings.lock_timeout_ms (2 s), well below "hangs".
NO_HANG_SECONDS = 5.0


def unique_name() -> str:
    return f"Idempotent {uuid.uuid4().hex[:12]}"


def unique_key() -> str:
    return f"key-{uuid.uuid4()}"


def replayed(body: dict[str, Any]) -> bool:
    return bool(body.get("extensions", {}).get("idempotentReplayed"))


async def lead_ids_named(pool: asyncpg.Pool, tenant: Tenant, name: str) -> list[UUID]:
    rows = await pool.fetch(
        "SELECT id FROM leads WHERE organization_id = $1 AND business_name = $2",
        tenant.id,
        name,
    )
    return [r["id"] for r in rows]


async def event_types(pool: asyncpg.Pool, tenant: Tenant, lead_id: UUID | str) -> list[str]:
    rows = await pool.fetch(
        "SELECT type FROM lead_events WHERE organization_id = $1 AND lead_id = $2"
        " ORDER BY sequence",
        tenant.id,
        UUID(str(lead_id)),
    )
    return [r["type"] for r in rows]


async def stored_keys(pool: asyncpg.Pool, tenant: Tenant) -> set[str]:
    rows = await pool.fetch(
        "SELECT key FROM idempotency_keys WHERE organization_id = $1", tenant.id
    )
    return {r["key"] for r in rows}


async def age_key(pool: asyncpg.Pool, tenant: Tenant, key: str, hours: int) -> None:
    status = await pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - make_interval(hours => $3)"
        " WHERE organization_id = $1 AND key = $2",
        tenant.id,
        key,
        hours,
    )
    assert status == "UPDATE 1"


async def post_lead(
    api: Api, tenant: Tenant, body: dict[str, Any], key: str | None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await api.rest("POST", "/v1/leads", tenant.write_key, json=body, headers=headers)


async def post_lead_raw(
    api: Api, tenant: Tenant, body: dict[str, Any], key: str, request_id: str
) -> tuple[int, bytes, dict[str, str]]:
    """POST /v1/leads, answering the response body exactly as it came off the wire."""
    headers = {**bearer(tenant.write_key), "Idempotency-Key": key, "X-Request-Id": request_id}
    async with api.session.post(f"{api.base}/v1/leads", json=body, headers=headers) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def create_lead_id(api: Api, tenant: Tenant, name: str) -> str:
    status, body, _ = await post_lead(api, tenant, {"businessName": name}, None)
    assert status == 201, body
    lead_id: str = body["data"]["id"]
    return lead_id


@pytest.fixture
async def connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, outside the gateway's pool (another process, say)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        yield conn
    finally:
        if not conn.is_closed():
            conn.terminate()


# --- racing retries ----------------------------------------------------------------------


async def waiting_gateway_backends(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'leadgate' AND wait_event_type = 'Lock'"
    )
    return count


async def race_held_up(
    pool: asyncpg.Pool, connection: asyncpg.Connection, racers: Callable[[], Awaitable[list[T]]]
) -> list[T]:
    """Run `racers` while new leads cannot be inserted, so the first claim stays uncommitted
    and the others queue on it; let go once several wait (well within the lock timeout)."""
    async with connection.transaction():
        await connection.execute("LOCK TABLE leads IN SHARE MODE")
        task = asyncio.ensure_future(racers())
        for _ in range(50):
            queued = await waiting_gateway_backends(pool)
            if queued >= 3:
                break
            await asyncio.sleep(0.02)
    assert queued >= 3, "the racers never overlapped"
    return await task


async def test_fifty_concurrent_graphql_creates_with_one_key_make_exactly_one_lead(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, connection: asyncpg.Connection
) -> None:
    name, key = unique_name(), unique_key()
    variables = {"input": {"businessName": name}, "key": key}

    answers = await race_held_up(
        pool,
        connection,
        lambda: asyncio.gather(
            *(api.graphql(tenant.write_key, CREATE, variables) for _ in range(RACERS))
        ),
    )

    ids, fresh = set(), 0
    for status, body in answers:
        assert status == 200, body
        if "errors" in body:
            assert error_codes(body) == ["IDEMPOTENCY_KEY_IN_USE"], body
            continue
        ids.add(body["data"]["createLead"]["id"])
        fresh += not replayed(body)
    assert len(ids) == 1
    assert fresh == 1
    (lead_id,) = ids
    assert [str(i) for i in await lead_ids_named(pool, tenant, name)] == [lead_id]
    assert await event_types(pool, tenant, lead_id) == ["lead.created"]

    _, retry = await api.graphql(tenant.write_key, CREATE, variables)
    assert retry["data"]["createLead"]["id"] == lead_id
    assert replayed(retry)


async def test_fifty_concurrent_rest_posts_with_one_key_make_exactly_one_lead(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, connection: asyncpg.Connection
) -> None:
    name, key = unique_name(), unique_key()

    answers = await race_held_up(
        pool,
        connection,
        lambda: asyncio.gather(
            *(post_lead(api, tenant, {"businessName": name}, key) for _ in range(RACERS))
        ),
    )

    bodies, fresh = [], 0
    for status, body, headers in answers:
        if status == 409:
            assert body["error"]["code"] == "IDEMPOTENCY_KEY_IN_USE"
            continue
        assert status == 201, body
        bodies.append(body)
        fresh += headers.get("Idempotent-Replayed") != "true"
    assert fresh == 1
    assert all(body == bodies[0] for body in bodies)
    lead_id = bodies[0]["data"]["id"]
    assert [str(i) for i in await lead_ids_named(pool, tenant, name)] == [lead_id]
    assert await event_types(pool, tenant, lead_id) == ["lead.created"]

    status, retry, headers = await post_lead(api, tenant, {"businessName": name}, key)
    assert status == 201
    assert retry == bodies[0]
    assert headers.get("Idempotent-Replayed") == "true"


# --- what a replay answers ---------------------------------------------------------------


async def test_rest_replay_answers_the_original_body_byte_for_byte(
    api: Api, tenant: Tenant
) -> None:
    body, key = (
        {"businessName": unique_name(), "tags": ["b", "a"], "industry": "Retail"},
        unique_key(),
    )

    status, original, headers = await post_lead_raw(api, tenant, body, key, "first-request-1")
    assert status == 201
    assert "Idempotent-Replayed" not in headers
    status, replay, headers = await post_lead_raw(api, tenant, body, key, "second-request-2")

    assert status == 201
    assert headers.get("Idempotent-Replayed") == "true"
    assert orjson.loads(replay)["meta"]["requestId"] == "first-request-1"
    assert orjson.loads(replay) == orjson.loads(original)
    assert replay == original


async def test_graphql_replay_of_an_update_writes_no_second_event(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    lead_id, key = await create_lead_id(api, tenant, unique_name()), unique_key()
    variables = {"id": lead_id, "input": {"industry": "Bakeries"}, "key": key}

    _, first = await api.graphql(tenant.write_key, UPDATE, variables)
    _, second = await api.graphql(tenant.write_key, UPDATE, variables)

    assert first["data"]["updateLead"] == {"id": lead_id, "industry": "Bakeries"}
    assert not replayed(first)
    assert second["data"]["updateLead"] == {"id": lead_id, "industry": "Bakeries"}
    assert replayed(second)
    assert await event_types(pool, tenant, lead_id) == ["lead.created", "lead.updated"]


async def test_graphql_replay_of_a_move_writes_no_second_event(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    lead_id, key = await create_lead_id(api, tenant, unique_name()), unique_key()
    stage = str(tenant.stage_ids[2])
    variables = {"id": lead_id, "stage": stage, "key": key}

    _, first = await api.graphql(tenant.write_key, MOVE, variables)
    _, second = await api.graphql(tenant.write_key, MOVE, variables)

    assert first["data"]["moveLead"]["stage"]["id"] == stage
    assert second["data"]["moveLead"]["stage"]["id"] == stage
    assert replayed(second)
    assert await event_types(pool, tenant, lead_id) == ["lead.created", "lead.status_changed"]


async def test_a_key_from_rest_post_replays_through_graphql_create_with_the_same_input(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    name, key = unique_name(), unique_key()
    status, created, _ = await post_lead(api, tenant, {"businessName": name, "tags": ["x"]}, key)
    assert status == 201

    variables = {"input": {"businessName": name, "tags": ["x"]}, "key": key}
    _, body = await api.graphql(tenant.write_key, CREATE, variables)

    assert body["data"]["createLead"]["id"] == created["data"]["id"]
    assert replayed(body)
    assert len(await lead_ids_named(pool, tenant, name)) == 1


# --- same key, another request -----------------------------------------------------------


async def test_same_key_with_another_rest_body_is_reused_and_writes_nothing(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    key, other_name = unique_key(), unique_name()
    status, _, _ = await post_lead(api, tenant, {"businessName": unique_name()}, key)
    assert status == 201

    status, body, _ = await post_lead(api, tenant, {"businessName": other_name}, key)

    assert status == 422
    assert body["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await lead_ids_named(pool, tenant, other_name) == []


async def test_same_key_with_another_graphql_input_is_reused_and_writes_nothing(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    key, other_name = unique_key(), unique_name()
    variables = {"input": {"businessName": unique_name()}, "key": key}
    _, first = await api.graphql(tenant.write_key, CREATE, variables)
    assert "errors" not in first, first

    variables = {"input": {"businessName": other_name}, "key": key}
    _, body = await api.graphql(tenant.write_key, CREATE, variables)

    assert error_codes(body) == ["IDEMPOTENCY_KEY_REUSED"]
    assert await lead_ids_named(pool, tenant, other_name) == []


async def test_a_key_used_to_update_one_lead_is_reused_for_another_lead(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    first = await create_lead_id(api, tenant, unique_name())
    second = await create_lead_id(api, tenant, unique_name())
    key, change = unique_key(), {"industry": "Same change"}
    _, body = await api.graphql(
        tenant.write_key, UPDATE, {"id": first, "input": change, "key": key}
    )
    assert body["data"]["updateLead"]["industry"] == "Same change"

    _, body = await api.graphql(
        tenant.write_key, UPDATE, {"id": second, "input": change, "key": key}
    )

    assert error_codes(body) == ["IDEMPOTENCY_KEY_REUSED"]
    assert await event_types(pool, tenant, second) == ["lead.created"]


# --- scope -------------------------------------------------------------------------------


async def test_two_organizations_using_one_key_get_two_leads(
    api: Api, tenant: Tenant, other_tenant: Tenant, pool: asyncpg.Pool
) -> None:
    name, key = unique_name(), unique_key()

    status, ours, headers = await post_lead(api, tenant, {"businessName": name}, key)
    assert (status, headers.get("Idempotent-Replayed")) == (201, None)
    status, theirs, headers = await post_lead(api, other_tenant, {"businessName": name}, key)
    assert (status, headers.get("Idempotent-Replayed")) == (201, None)

    assert ours["data"]["id"] != theirs["data"]["id"]
    assert [str(i) for i in await lead_ids_named(pool, tenant, name)] == [ours["data"]["id"]]
    assert [str(i) for i in await lead_ids_named(pool, other_tenant, name)] == [
        theirs["data"]["id"]
    ]
    _, replay, _ = await post_lead(api, other_tenant, {"businessName": name}, key)
    assert replay == theirs


# --- what a key may be -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\tinside"], ids=["empty", "256", "tab"])
async def test_a_rest_key_that_is_empty_too_long_or_unprintable_is_a_bad_request(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, key: str
) -> None:
    name = unique_name()

    status, body, _ = await post_lead(api, tenant, {"businessName": name}, key)

    assert status == 400
    assert body["error"]["code"] == "BAD_REQUEST"
    assert await lead_ids_named(pool, tenant, name) == []
    assert await stored_keys(pool, tenant) == set()


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "nul\x00inside", "line\nbreak", "bell\x07"],
    ids=["empty", "256", "nul", "newline", "bell"],
)
async def test_a_graphql_key_argument_that_is_empty_too_long_or_unprintable_is_a_bad_request(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, key: str
) -> None:
    name = unique_name()

    _, body = await api.graphql(
        tenant.write_key, CREATE, {"input": {"businessName": name}, "key": key}
    )

    assert error_codes(body) == ["BAD_REQUEST"]
    assert await lead_ids_named(pool, tenant, name) == []
    assert await stored_keys(pool, tenant) == set()


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "256"])
async def test_a_graphql_key_header_that_is_empty_or_too_long_is_a_bad_request(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, key: str
) -> None:
    name = unique_name()

    _, body = await api.graphql(
        tenant.write_key,
        CREATE,
        {"input": {"businessName": name}},
        headers={"Idempotency-Key": key},
    )

    assert error_codes(body) == ["BAD_REQUEST"]
    assert await lead_ids_named(pool, tenant, name) == []


async def test_a_rest_key_of_255_characters_is_accepted(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    key, body = "k" * 255, {"businessName": unique_name()}

    status, created, _ = await post_lead(api, tenant, body, key)
    status_again, replay, headers = await post_lead(api, tenant, body, key)

    assert status == status_again == 201
    assert headers.get("Idempotent-Replayed") == "true"
    assert replay == created
    assert await stored_keys(pool, tenant) == {key}


async def test_a_graphql_key_of_255_characters_is_accepted(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    key = "g" * 255
    variables = {"input": {"businessName": unique_name()}, "key": key}

    _, created = await api.graphql(tenant.write_key, CREATE, variables)
    _, replay = await api.graphql(tenant.write_key, CREATE, variables)

    assert "errors" not in created, created
    assert replay["data"] == created["data"]
    assert replayed(replay)
    assert await stored_keys(pool, tenant) == {key}


# --- validation failures store nothing ---------------------------------------------------


@pytest.mark.parametrize("failure", ["html_name", "foreign_stage"])
async def test_after_a_rest_validation_failure_the_key_creates_the_lead(
    api: Api, tenant: Tenant, other_tenant: Tenant, pool: asyncpg.Pool, failure: str
) -> None:
    name, key = unique_name(), unique_key()
    invalid: dict[str, Any] = (
        {"businessName": "<b>bold</b>"}
        if failure == "html_name"
        # Checked inside the transaction, after the claim: the claim must roll back too.
        else {"businessName": name, "stageId": str(other_tenant.stage_ids[0])}
    )
    status, body, _ = await post_lead(api, tenant, invalid, key)
    assert (status, body["error"]["code"]) == (422, "VALIDATION_ERROR")
    assert await stored_keys(pool, tenant) == set()

    status, body, headers = await post_lead(api, tenant, {"businessName": name}, key)

    assert status == 201, body
    assert "Idempotent-Replayed" not in headers
    assert [str(i) for i in await lead_ids_named(pool, tenant, name)] == [body["data"]["id"]]


async def test_after_a_graphql_validation_failure_the_key_creates_the_lead(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    name, key = unique_name(), unique_key()
    invalid = {"input": {"businessName": name, "email": "not an address"}, "key": key}
    _, body = await api.graphql(tenant.write_key, CREATE, invalid)
    assert error_codes(body) == ["VALIDATION_ERROR"]

    _, body = await api.graphql(
        tenant.write_key, CREATE, {"input": {"businessName": name}, "key": key}
    )

    assert "errors" not in body, body
    assert not replayed(body)
    assert [str(i) for i in await lead_ids_named(pool, tenant, name)] == [
        body["data"]["createLead"]["id"]
    ]


# --- the GraphQL header and argument -----------------------------------------------------


async def test_the_graphql_key_header_replays_an_operation_with_one_mutation_field(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    name, headers = unique_name(), {"Idempotency-Key": unique_key()}
    variables = {"input": {"businessName": name}}

    _, first = await api.graphql(tenant.write_key, CREATE, variables, headers=headers)
    _, second = await api.graphql(tenant.write_key, CREATE, variables, headers=headers)

    assert "errors" not in first, first
    assert not replayed(first)
    assert second["data"] == first["data"]
    assert replayed(second)
    assert len(await lead_ids_named(pool, tenant, name)) == 1


async def test_the_graphql_key_header_on_two_mutation_fields_is_a_bad_request(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    a, b = unique_name(), unique_name()
    variables = {"a": {"businessName": a}, "b": {"businessName": b}}

    _, body = await api.graphql(
        tenant.write_key, CREATE_TWO, variables, headers={"Idempotency-Key": unique_key()}
    )

    assert body.get("data") is None
    assert set(error_codes(body)) == {"BAD_REQUEST"}
    assert await lead_ids_named(pool, tenant, a) == []
    assert await lead_ids_named(pool, tenant, b) == []


async def test_the_graphql_key_header_and_a_different_argument_are_a_bad_request(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    name = unique_name()

    _, body = await api.graphql(
        tenant.write_key,
        CREATE,
        {"input": {"businessName": name}, "key": unique_key()},
        headers={"Idempotency-Key": unique_key()},
    )

    assert error_codes(body) == ["BAD_REQUEST"]
    assert await lead_ids_named(pool, tenant, name) == []


async def test_the_idempotency_key_argument_applies_per_mutation_field(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    a, b = unique_name(), unique_name()
    variables = {
        "a": {"businessName": a},
        "b": {"businessName": b},
        "ka": unique_key(),
        "kb": unique_key(),
    }

    _, first = await api.graphql(tenant.write_key, CREATE_TWO, variables)
    _, second = await api.graphql(tenant.write_key, CREATE_TWO, variables)

    assert "errors" not in first, first
    assert first["data"]["a"]["id"] != first["data"]["b"]["id"]
    assert second["data"] == first["data"]
    assert replayed(second)
    assert [str(i) for i in await lead_ids_named(pool, tenant, a)] == [first["data"]["a"]["id"]]
    assert [str(i) for i in await lead_ids_named(pool, tenant, b)] == [first["data"]["b"]["id"]]


# --- expiry ------------------------------------------------------------------------------


async def test_an_expired_key_creates_a_new_lead(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    body, key = {"businessName": unique_name()}, unique_key()
    _, first, _ = await post_lead(api, tenant, body, key)
    await age_key(pool, tenant, key, hours=25)

    status, second, headers = await post_lead(api, tenant, body, key)

    assert status == 201
    assert "Idempotent-Replayed" not in headers
    assert second["data"]["id"] != first["data"]["id"]
    assert len(await lead_ids_named(pool, tenant, body["businessName"])) == 2
    _, replay, _ = await post_lead(api, tenant, body, key)
    assert replay == second


async def test_a_key_younger_than_its_ttl_still_replays(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    body, key = {"businessName": unique_name()}, unique_key()
    _, first, _ = await post_lead(api, tenant, body, key)
    await age_key(pool, tenant, key, hours=23)

    status, replay, headers = await post_lead(api, tenant, body, key)

    assert status == 201
    assert headers.get("Idempotent-Replayed") == "true"
    assert replay == first


async def test_purge_expired_deletes_expired_keys_only(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, settings: Settings
) -> None:
    expired, young, fresh = unique_key(), unique_key(), unique_key()
    for key in (expired, young, fresh):
        status, _, _ = await post_lead(api, tenant, {"businessName": unique_name()}, key)
        assert status == 201
    await age_key(pool, tenant, expired, hours=25)
    await age_key(pool, tenant, young, hours=23)

    async with pool.acquire() as conn:
        purged = await idempotency.purge_expired(conn, settings.idempotency_ttl_seconds)

    assert purged >= 1
    assert await stored_keys(pool, tenant) == {young, fresh}


# --- crashes and held claims -------------------------------------------------------------


@pytest.mark.parametrize("crash", ["client_vanishes", "backend_killed"])
async def test_a_claim_whose_transaction_crashed_leaves_the_key_retryable(
    api: Api,
    tenant: Tenant,
    pool: asyncpg.Pool,
    connection: asyncpg.Connection,
    settings: Settings,
    crash: str,
) -> None:
    name, key = unique_name(), unique_key()
    transaction = connection.transaction()
    await transaction.start()
    claimed = await idempotency.claim(
        connection,
        tenant.id,
        key,
        b"request mid-flight",
        ttl_seconds=settings.idempotency_ttl_seconds,
    )
    assert claimed is None
    if crash == "client_vanishes":
        connection.terminate()
    else:
        pid = connection.get_server_pid()
        assert await pool.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)

    status, body, headers = await post_lead(api, tenant, {"businessName": name}, key)

    assert status == 201, body
    assert "Idempotent-Replayed" not in headers
    assert [str(i) for i in await lead_ids_named(pool, tenant, name)] == [body["data"]["id"]]


async def test_a_held_claim_answers_in_use_within_the_lock_timeout_not_a_hang(
    api: Api,
    tenant: Tenant,
    pool: asyncpg.Pool,
    connection: asyncpg.Connection,
    settings: Settings,
) -> None:
    name, key = unique_name(), unique_key()
    transaction = connection.transaction()
    await transaction.start()
    await idempotency.claim(
        connection,
        tenant.id,
        key,
        b"request in flight",
        ttl_seconds=settings.idempotency_ttl_seconds,
    )

    started = time.monotonic()
    status, body, _ = await asyncio.wait_for(
        post_lead(api, tenant, {"businessName": name}, key), timeout=NO_HANG_SECONDS * 2
    )
    elapsed = time.monotonic() - started

    assert (status, body["error"]["code"]) == (409, "IDEMPOTENCY_KEY_IN_USE")
    assert elapsed < NO_HANG_SECONDS
    assert await lead_ids_named(pool, tenant, name) == []
    await transaction.rollback()
    status, body, _ = await post_lead(api, tenant, {"businessName": name}, key)
    assert status == 201, body
