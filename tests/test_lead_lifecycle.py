"""The lead lifecycle (issue 12 #1, #2): convert and reopen, do-not-call, logged contacts,
archive and restore, on both APIs, each validated, refused to read-only keys and to other
organizations, idempotent, and each with its event and webhook (erasure: tests/test_erase.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from tests.support import (
    Api,
    Tenant,
    create_lead,
    error_codes,
    header,
    history,
    make_tenant,
    move_lead,
    ok,
)
from tests.test_subscriptions import ws_url
from tests.test_webhooks import create_endpoint
from tests.webhook_receiver import Receiver
from tests.ws_client import connect, subscribe

LEAD: Final = """
id isDoNotCall dncReason dncAt phone lastContactedAt archivedAt
convertedAt convertedAccountId convertedContactId stage { id semanticSlot }
"""
CONVERT: Final = f"""
mutation($id: ID!, $account: ID, $contact: ID, $key: String) {{
  convertLead(id: $id, accountId: $account, contactId: $contact, idempotencyKey: $key) {{
    {LEAD}
  }}
}}
"""
REOPEN: Final = (
    f"mutation($id: ID!, $key: String) {{ reopenLead(id: $id, idempotencyKey: $key) {{ {LEAD} }} }}"  # noqa: E501
)
MARK_DNC: Final = f"""
mutation($id: ID!, $reason: String, $key: String) {{
  markDoNotCall(id: $id, reason: $reason, idempotencyKey: $key) {{ {LEAD} }}
}}
"""
CLEAR_DNC: Final = f"mutation($id: ID!, $key: String) {{ clearDoNotCall(id: $id, idempotencyKey: $key) {{ {LEAD} }} }}"  # noqa: E501
LOG_CONTACT: Final = f"""
mutation($id: ID!, $at: DateTime, $key: String) {{
  logContact(id: $id, at: $at, idempotencyKey: $key) {{ {LEAD} }}
}}
"""
ARCHIVE: Final = f"mutation($id: ID!, $key: String) {{ archiveLead(id: $id, idempotencyKey: $key) {{ {LEAD} }} }}"  # noqa: E501
RESTORE: Final = f"mutation($id: ID!, $key: String) {{ restoreLead(id: $id, idempotencyKey: $key) {{ {LEAD} }} }}"  # noqa: E501
GET: Final = f"query($id: ID!) {{ lead(id: $id) {{ {LEAD} }} }}"
LIST: Final = """
query($search: String, $all: Boolean! = false) {
  leads(limit: 100, search: $search, includeArchived: $all) { total nodes { id } }
  leadsConnection(first: 100, search: $search, includeArchived: $all) {
    totalCount edges { node { id } }
  }
}
"""
PHONE: Final = 'mutation($id: ID!) { updateLead(id: $id, input: {phone: "+15550101"}) { id } }'

# Every lifecycle write: (GraphQL mutation, its field, REST method, REST action, REST body).
WRITES: Final = {
    "convert": (CONVERT, "convertLead", "POST", "convert", {}),
    "reopen": (REOPEN, "reopenLead", "POST", "reopen", {}),
    "markDoNotCall": (MARK_DNC, "markDoNotCall", "POST", "dnc", {"reason": "asked"}),
    "clearDoNotCall": (CLEAR_DNC, "clearDoNotCall", "DELETE", "dnc", None),
    "logContact": (LOG_CONTACT, "logContact", "POST", "contact", {}),
    "archive": (ARCHIVE, "archiveLead", "POST", "archive", {}),
    "restore": (RESTORE, "restoreLead", "POST", "restore", {}),
}
# The GraphQL variables that match each REST body above.
VARIABLES: Final[dict[str, dict[str, Any]]] = {"markDoNotCall": {"reason": "asked"}}


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> Tenant:
    """A fresh organization without leads: lists and totals hold only what a test makes."""
    return await make_tenant(pool, name="Lifecycle Lending")


@pytest.fixture
async def other_tenant(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool, name="Other Lifecycle Lending")


async def rest(
    api: Api, key: str, method: str, lead_id: str, action: str, body: Any = None, **headers: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    return await api.rest(
        method, f"/v1/leads/{lead_id}/{action}", key, json=body, headers=headers or None
    )


async def event_types(api: Api, tenant: Tenant, lead_id: str) -> list[str]:
    return [e["type"] for e in await history(api, tenant, lead_id)]


async def won_stage(pool: asyncpg.Pool, tenant: Tenant) -> str:
    async with pool.acquire() as conn:
        stage = await conn.fetchval(
            "SELECT id FROM pipeline_stages WHERE organization_id = $1 AND semantic_slot = 'won'"
            " ORDER BY position LIMIT 1",
            tenant.id,
        )
    return str(stage)


# --- convert and reopen ---------------------------------------------------------------------


async def test_convert_lead_sets_the_conversion_and_moves_the_lead_to_won(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    lead_id = await create_lead(api, tenant)
    account, contact = str(uuid.uuid4()), str(uuid.uuid4())
    data = await ok(
        api, tenant.write_key, CONVERT, {"id": lead_id, "account": account, "contact": contact}
    )
    lead = data["convertLead"]
    assert lead["convertedAt"] is not None
    assert (lead["convertedAccountId"], lead["convertedContactId"]) == (account, contact)
    assert lead["stage"] == {"id": await won_stage(pool, tenant), "semanticSlot": "won"}
    assert await event_types(api, tenant, lead_id) == ["lead.created", "lead.converted"]


async def test_convert_over_rest_answers_the_converted_lead(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    lead_id = await create_lead(api, tenant)
    account = str(uuid.uuid4())
    status, body, _ = await rest(
        api, tenant.write_key, "POST", lead_id, "convert", {"accountId": account}
    )
    assert status == 200, body
    attributes = body["data"]["attributes"]
    assert attributes["convertedAccountId"] == account
    assert attributes["convertedContactId"] is None
    assert attributes["stage"]["id"] == await won_stage(pool, tenant)


async def test_a_converted_lead_cannot_be_converted_again_until_reopened(
    api: Api, tenant: Tenant
) -> None:
    lead_id = await create_lead(api, tenant)
    await ok(api, tenant.write_key, CONVERT, {"id": lead_id})
    status, body, _ = await rest(api, tenant.write_key, "POST", lead_id, "convert", {})
    assert (status, body["error"]["code"]) == (422, "VALIDATION_ERROR")
    reopened = (await ok(api, tenant.write_key, REOPEN, {"id": lead_id}))["reopenLead"]
    assert reopened["convertedAt"] is None
    assert reopened["stage"]["semanticSlot"] == "won", "reopening leaves the stage"
    await ok(api, tenant.write_key, CONVERT, {"id": lead_id})
    assert await event_types(api, tenant, lead_id) == [
        "lead.created",
        "lead.converted",
        "lead.reopened",
        "lead.converted",
    ]


async def test_a_converted_lead_cannot_move_out_of_won_until_reopened(
    api: Api, tenant: Tenant
) -> None:
    lead_id = await create_lead(api, tenant)
    await ok(api, tenant.write_key, CONVERT, {"id": lead_id})
    status, body, _ = await api.rest(
        "POST",
        f"/v1/leads/{lead_id}/move",
        tenant.write_key,
        json={"stageId": str(tenant.stage_ids[0])},
    )
    assert (status, body["error"]["fields"][0]["field"]) == (422, "stageId")
    await ok(api, tenant.write_key, REOPEN, {"id": lead_id})
    await move_lead(api, tenant, lead_id, 0)


async def test_reopening_a_lead_that_is_not_converted_changes_nothing(
    api: Api, tenant: Tenant
) -> None:
    lead_id = await create_lead(api, tenant)
    status, _, _ = await rest(api, tenant.write_key, "POST", lead_id, "reopen")
    assert status == 200
    assert await event_types(api, tenant, lead_id) == ["lead.created"]


async def test_convert_refuses_ids_that_are_not_uuids(api: Api, tenant: Tenant) -> None:
    lead_id = await create_lead(api, tenant)
    status, body = await api.graphql(
        tenant.write_key, CONVERT, {"id": lead_id, "account": "not-a-uuid"}
    )
    assert error_codes(body) == ["VALIDATION_ERROR"], (status, body)
    status, rest_body, _ = await rest(
        api, tenant.write_key, "POST", lead_id, "convert", {"contactId": 7}
    )
    assert (status, rest_body["error"]["fields"][0]["field"]) == (422, "contactId")
    status, rest_body, _ = await rest(
        api, tenant.write_key, "POST", lead_id, "convert", {"account": str(uuid.uuid4())}
    )
    assert (status, rest_body["error"]["fields"][0]["field"]) == (422, "account")


# --- do-not-call ----------------------------------------------------------------------------


async def test_mark_and_clear_do_not_call_keep_the_lead_listed_with_its_phone(
    api: Api, tenant: Tenant
) -> None:
    lead_id = await create_lead(api, tenant)
    await ok(api, tenant.write_key, PHONE, {"id": lead_id})
    marked = (await ok(api, tenant.write_key, MARK_DNC, {"id": lead_id, "reason": "  asked us  "}))[
        "markDoNotCall"
    ]
    assert (marked["isDoNotCall"], marked["dncReason"], marked["phone"]) == (
        True,
        "asked us",
        "+15550101",
    )
    assert marked["dncAt"] is not None
    listed = await ok(api, tenant.read_key, LIST)
    assert [n["id"] for n in listed["leads"]["nodes"]] == [lead_id]
    status, body, _ = await rest(api, tenant.write_key, "DELETE", lead_id, "dnc")
    assert status == 200, body
    attributes = body["data"]["attributes"]
    assert (attributes["isDoNotCall"], attributes["dncReason"], attributes["dncAt"]) == (
        False,
        None,
        None,
    )
    assert await event_types(api, tenant, lead_id) == [
        "lead.created",
        "lead.updated",
        "lead.dnc_changed",
        "lead.dnc_changed",
    ]


async def test_do_not_call_over_rest_takes_an_optional_reason(api: Api, tenant: Tenant) -> None:
    lead_id = await create_lead(api, tenant)
    status, body, _ = await rest(api, tenant.write_key, "POST", lead_id, "dnc")
    assert status == 200, body
    assert (body["data"]["attributes"]["isDoNotCall"], body["data"]["attributes"]["dncReason"]) == (
        True,
        None,
    )


async def test_a_do_not_call_reason_must_be_short_plain_text(api: Api, tenant: Tenant) -> None:
    lead_id = await create_lead(api, tenant)
    for reason in ("x" * 501, "bell\x07"):
        status, body = await api.graphql(
            tenant.write_key, MARK_DNC, {"id": lead_id, "reason": reason}
        )
        assert error_codes(body) == ["VALIDATION_ERROR"], (status, body)
    status, rest_body, _ = await rest(
        api, tenant.write_key, "POST", lead_id, "dnc", {"reason": ["list"]}
    )
    assert (status, rest_body["error"]["fields"][0]["field"]) == (422, "reason")
    assert await event_types(api, tenant, lead_id) == ["lead.created"]


# --- logged contacts ------------------------------------------------------------------------


async def test_log_contact_sets_last_contacted_at_to_the_latest_contact(
    api: Api, tenant: Tenant
) -> None:
    lead_id = await create_lead(api, tenant)
    latest = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await ok(api, tenant.write_key, LOG_CONTACT, {"id": lead_id, "at": latest.isoformat()})
    status, body, _ = await rest(
        api, tenant.write_key, "POST", lead_id, "contact", {"at": "2025-06-01T00:00:00+02:00"}
    )
    assert status == 200, body
    assert body["data"]["attributes"]["lastContactedAt"] == "2026-01-02T03:04:05.000Z"
    events = await history(api, tenant, lead_id)
    assert [e["type"] for e in events] == ["lead.created", "lead.contacted", "lead.contacted"]


async def test_log_contact_without_at_means_now(api: Api, tenant: Tenant) -> None:
    lead_id = await create_lead(api, tenant)
    before = datetime.now(UTC) - timedelta(seconds=1)
    status, body, _ = await rest(api, tenant.write_key, "POST", lead_id, "contact")
    assert status == 200, body
    at = datetime.fromisoformat(body["data"]["attributes"]["lastContactedAt"])
    assert before <= at <= datetime.now(UTC) + timedelta(seconds=1)


async def test_a_contact_in_the_future_is_refused_beyond_a_minute_of_skew(
    api: Api, tenant: Tenant
) -> None:
    lead_id = await create_lead(api, tenant)
    soon = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()
    await ok(api, tenant.write_key, LOG_CONTACT, {"id": lead_id, "at": soon})
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    status, body = await api.graphql(tenant.write_key, LOG_CONTACT, {"id": lead_id, "at": later})
    assert error_codes(body) == ["VALIDATION_ERROR"], (status, body)
    for at in (later, "yesterday", "2026-01-01T00:00:00"):
        code, rest_body, _ = await rest(
            api, tenant.write_key, "POST", lead_id, "contact", {"at": at}
        )
        assert (code, rest_body["error"]["fields"][0]["field"]) == (422, "at"), at
    assert await event_types(api, tenant, lead_id) == ["lead.created", "lead.contacted"]


# --- archive and restore --------------------------------------------------------------------


async def test_archive_hides_a_lead_from_lists_search_and_totals_until_restored(
    api: Api, tenant: Tenant
) -> None:
    kept = await create_lead(api, tenant, "Kept Bakery")
    archived = await create_lead(api, tenant, "Archived Bakery")
    lead = (await ok(api, tenant.write_key, ARCHIVE, {"id": archived}))["archiveLead"]
    assert lead["archivedAt"] is not None

    for variables in ({}, {"search": "bakery"}):
        listed = await ok(api, tenant.read_key, LIST, variables)
        assert [n["id"] for n in listed["leads"]["nodes"]] == [kept]
        assert listed["leads"]["total"] == 1
        assert [e["node"]["id"] for e in listed["leadsConnection"]["edges"]] == [kept]
        assert listed["leadsConnection"]["totalCount"] == 1
        everything = await ok(api, tenant.read_key, LIST, {**variables, "all": True})
        assert {n["id"] for n in everything["leads"]["nodes"]} == {kept, archived}
        assert everything["leads"]["total"] == everything["leadsConnection"]["totalCount"] == 2

    status, page, _ = await api.rest("GET", "/v1/leads", tenant.read_key)
    assert ([d["id"] for d in page["data"]], page["meta"]["total"]) == ([kept], 1)
    status, page, _ = await api.rest("GET", "/v1/leads?includeArchived=true", tenant.read_key)
    assert page["meta"]["total"] == 2
    status, page, _ = await api.rest("GET", "/v1/leads?includeArchived=yes", tenant.read_key)
    assert (status, page["error"]["fields"][0]["field"]) == (422, "includeArchived")
    status, one, _ = await api.rest("GET", f"/v1/leads/{archived}", tenant.read_key)
    assert status == 200
    assert one["data"]["attributes"]["archivedAt"] == lead["archivedAt"]
    assert (await ok(api, tenant.read_key, GET, {"id": archived}))["lead"]["archivedAt"]

    status, body, _ = await rest(api, tenant.write_key, "POST", archived, "restore")
    assert (status, body["data"]["attributes"]["archivedAt"]) == (200, None)
    listed = await ok(api, tenant.read_key, LIST)
    assert listed["leads"]["total"] == listed["leadsConnection"]["totalCount"] == 2
    assert await event_types(api, tenant, archived) == [
        "lead.created",
        "lead.archived",
        "lead.restored",
    ]


async def test_the_maintained_total_counts_unarchived_leads_only(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    first = await create_lead(api, tenant)
    await create_lead(api, tenant)
    await rest(api, tenant.write_key, "POST", first, "archive")
    await rest(api, tenant.write_key, "POST", first, "archive")  # a no-op: counted once
    async with pool.acquire() as conn:
        maintained = await conn.fetchval(
            "SELECT total FROM lead_counts WHERE organization_id = $1", tenant.id
        )
        counted = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE organization_id = $1 AND archived_at IS NULL",
            tenant.id,
        )
    assert maintained == counted == 1
    assert await event_types(api, tenant, first) == ["lead.created", "lead.archived"]


async def test_subscriptions_see_nothing_of_an_archived_lead_but_its_archiving(
    api: Api, tenant: Tenant, server: TestServer
) -> None:
    archived = await create_lead(api, tenant, "Archived Bakery")
    kept = await create_lead(api, tenant, "Kept Bakery")
    await ok(api, tenant.write_key, ARCHIVE, {"id": archived})
    await ok(api, tenant.write_key, PHONE, {"id": archived})  # unseen: the lead is archived
    await ok(api, tenant.write_key, PHONE, {"id": kept})
    first = (await history(api, tenant, archived))[0]["id"]
    query = "subscription($after: ID) { leadEvents(after: $after) { type lead { id } } }"
    seen: list[tuple[str, str]] = []
    async with connect(api.session, ws_url(server), tenant.read_key) as ws:
        sub = await subscribe(ws, query, {"after": str(int(first) - 1)})
        while not seen or seen[-1] != ("lead.updated", kept):
            event = (await sub.next())["data"]["leadEvents"]
            seen.append((event["type"], event["lead"]["id"]))
    assert seen == [
        ("lead.created", kept),
        ("lead.archived", archived),
        ("lead.updated", kept),
    ]


# --- every lifecycle write ------------------------------------------------------------------


@pytest.mark.parametrize("name", WRITES)
async def test_read_only_keys_are_forbidden_every_lifecycle_write(
    api: Api, tenant: Tenant, name: str
) -> None:
    query, _, method, action, body = WRITES[name]
    lead_id = await create_lead(api, tenant)
    _, graphql_body = await api.graphql(
        tenant.read_key, query, {"id": lead_id, **VARIABLES.get(name, {})}
    )
    assert error_codes(graphql_body) == ["FORBIDDEN"]
    status, rest_body, _ = await rest(api, tenant.read_key, method, lead_id, action, body)
    assert (status, rest_body["error"]["code"]) == (403, "FORBIDDEN")
    assert await event_types(api, tenant, lead_id) == ["lead.created"]


@pytest.mark.parametrize("name", WRITES)
async def test_another_organizations_lead_is_not_found_by_every_lifecycle_write(
    api: Api, tenant: Tenant, other_tenant: Tenant, name: str
) -> None:
    query, _, method, action, body = WRITES[name]
    theirs = await create_lead(api, other_tenant)
    _, graphql_body = await api.graphql(
        tenant.write_key, query, {"id": theirs, **VARIABLES.get(name, {})}
    )
    assert error_codes(graphql_body) == ["NOT_FOUND"]
    status, rest_body, _ = await rest(api, tenant.write_key, method, theirs, action, body)
    assert (status, rest_body["error"]["code"]) == (404, "NOT_FOUND")
    assert await event_types(api, other_tenant, theirs) == ["lead.created"]


async def prepared(api: Api, tenant: Tenant, name: str) -> str:
    """A lead on which `name` changes something (reopen needs a conversion, and so on)."""
    lead_id = await create_lead(api, tenant)
    before = {"reopen": CONVERT, "clearDoNotCall": MARK_DNC, "restore": ARCHIVE}.get(name)
    if before is not None:
        await ok(api, tenant.write_key, before, {"id": lead_id})
    return lead_id


@pytest.mark.parametrize("name", WRITES)
async def test_a_replayed_lifecycle_write_answers_the_same_without_a_second_event(
    api: Api, tenant: Tenant, name: str
) -> None:
    query, field, method, action, body = WRITES[name]
    lead_id = await prepared(api, tenant, name)
    variables = {"id": lead_id, "key": f"gql-{name}", **VARIABLES.get(name, {})}
    first = await ok(api, tenant.write_key, query, variables)
    status, replay = await api.graphql(tenant.write_key, query, variables)
    assert replay["data"] == first, replay
    assert replay["extensions"]["idempotentReplayed"] is True
    events = await event_types(api, tenant, lead_id)

    rest_lead = await prepared(api, tenant, name)
    key = {"Idempotency-Key": f"rest-{name}"}
    status, original, _ = await rest(api, tenant.write_key, method, rest_lead, action, body, **key)
    assert status == 200, original
    again, replayed, headers = await rest(
        api, tenant.write_key, method, rest_lead, action, body, **key
    )
    assert (again, replayed) == (200, original)
    assert header(headers, "Idempotent-Replayed") == "true"
    assert await event_types(api, tenant, rest_lead) == events
    # Same key, another request: refused.
    status, reused, _ = await rest(api, tenant.write_key, method, lead_id, action, body, **key)
    assert (status, reused["error"]["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as opened:
        yield opened


async def test_every_lifecycle_event_is_delivered_to_webhooks(
    api: Api, tenant: Tenant, receiver: Receiver
) -> None:
    types = [
        "lead.converted",
        "lead.reopened",
        "lead.dnc_changed",
        "lead.contacted",
        "lead.archived",
        "lead.restored",
    ]
    await create_endpoint(api, tenant, receiver.url, types)
    lead_id = await create_lead(api, tenant)
    for name in ("convert", "reopen", "markDoNotCall", "logContact", "archive", "restore"):
        query = WRITES[name][0]
        await ok(api, tenant.write_key, query, {"id": lead_id, **VARIABLES.get(name, {})})
    received = await receiver.wait_for_count(len(types))
    bodies = sorted((r.json for r in received), key=lambda b: types.index(b["type"]))
    assert [b["type"] for b in bodies] == types
    assert {b["data"]["id"] for b in bodies} == {lead_id}
    assert bodies[0]["data"]["attributes"]["convertedAt"] is not None
    assert bodies[2]["data"]["isDoNotCall"] is True
    assert bodies[3]["data"]["contactedAt"] == bodies[3]["data"]["attributes"]["lastContactedAt"]
    assert bodies[4]["data"]["attributes"]["archivedAt"] is not None
