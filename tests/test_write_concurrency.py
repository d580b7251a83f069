"""Concurrent writes (issue 3): none is lost, a lead's events tell one story, none hangs.

One storm of concurrent updateLead (GraphQL and REST PATCH), no-op updates and moveLead runs
once against one lead; each storm test states one property of what it left behind.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from leadgate.config import Settings
from tests.support import Api, Tenant, error_codes, make_tenant

CREATE = """
mutation Create($input: CreateLeadInput!) {
  createLead(input: $input) { id stage { id } }
}
"""
UPDATE = """
mutation Update($id: ID!, $input: UpdateLeadInput!) {
  updateLead(id: $id, input: $input) { id }
}
"""
MOVE = """
mutation Move($id: ID!, $stage: ID!) {
  moveLead(id: $id, stageId: $stage) { id }
}
"""
# Each round: one update (GraphQL or REST), one move; every NO_OP_EVERY rounds a no-op update.
ROUNDS = 20
NO_OP_EVERY = 4
INDUSTRY = "Storm testing"
# Well above Settings.lock_timeout_ms (2 s), well below "hangs".
NO_HANG_SECONDS = 5.0


@dataclass(frozen=True)
class Storm:
    """What the concurrent writes answered, and what they left in the database."""

    tenant: Tenant
    lead_id: str
    initial_stage: str
    failures: list[Any]
    # lead_events rows of the lead, by sequence: (id, sequence, type, payload).
    events: list[asyncpg.Record]
    event_sequence: int
    # The lead as GET /v1/leads/{id} shows it afterwards.
    final: dict[str, Any]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e["payload"] for e in self.events if e["type"] == type_]


async def graphql_write(api: Api, key: str, query: str, variables: dict[str, Any]) -> Any:
    """None when the write succeeded, else what it answered."""
    status, body = await api.graphql(key, query, variables)
    return None if status == 200 and "errors" not in body else (status, body)


async def rest_update(api: Api, key: str, lead_id: str, values: dict[str, Any]) -> Any:
    status, body, _ = await api.rest("PATCH", f"/v1/leads/{lead_id}", key, json=values)
    return None if status == 200 else (status, body)


@pytest.fixture(scope="module")
async def storm(api: Api, pool: asyncpg.Pool) -> Storm:
    tenant = await make_tenant(pool)
    key = tenant.write_key
    _, body = await api.graphql(
        key, CREATE, {"input": {"businessName": "Storm", "industry": INDUSTRY}}
    )
    lead_id = body["data"]["createLead"]["id"]
    initial_stage = body["data"]["createLead"]["stage"]["id"]

    stages = [str(s) for s in tenant.stage_ids]
    writes: list[Coroutine[Any, Any, Any]] = []
    for i in range(ROUNDS):
        values = {"customFields": {"n": i}, "tags": [f"t{i}"]}
        writes.append(
            rest_update(api, key, lead_id, values)
            if i % 2
            else graphql_write(api, key, UPDATE, {"id": lead_id, "input": values})
        )
        stage = stages[(i + 1) % len(stages)]
        writes.append(graphql_write(api, key, MOVE, {"id": lead_id, "stage": stage}))
        if i % NO_OP_EVERY == 0:
            # The value the lead already has: changes nothing.
            no_op = {"id": lead_id, "input": {"industry": INDUSTRY}}
            writes.append(graphql_write(api, key, UPDATE, no_op))
    answers = await asyncio.gather(*writes)

    events = await pool.fetch(
        "SELECT id, sequence, type, payload FROM lead_events"
        " WHERE organization_id = $1 AND lead_id = $2 ORDER BY sequence",
        tenant.id,
        uuid.UUID(lead_id),
    )
    event_sequence = await pool.fetchval(
        "SELECT event_sequence FROM leads WHERE organization_id = $1 AND id = $2",
        tenant.id,
        uuid.UUID(lead_id),
    )
    status, final, _ = await api.rest("GET", f"/v1/leads/{lead_id}", tenant.read_key)
    assert status == 200, final
    return Storm(
        tenant=tenant,
        lead_id=lead_id,
        initial_stage=initial_stage,
        failures=[a for a in answers if a is not None],
        events=events,
        event_sequence=event_sequence,
        final=final["data"]["attributes"],
    )


async def test_every_concurrent_write_to_one_lead_succeeds(storm: Storm) -> None:
    assert storm.failures == []


async def test_event_sequences_run_from_one_without_gap_or_duplicate(storm: Storm) -> None:
    sequences = [e["sequence"] for e in storm.events]

    assert sequences == list(range(1, len(sequences) + 1))
    assert storm.event_sequence == len(sequences)
    assert storm.events[0]["type"] == "lead.created"


async def test_event_ids_follow_the_sequence(storm: Storm) -> None:
    ids = [e["id"] for e in storm.events]

    assert ids == sorted(ids)


async def test_each_stage_change_starts_at_the_stage_the_previous_one_reached(
    storm: Storm,
) -> None:
    changes = storm.of_type("lead.status_changed")
    assert changes, "no move changed the stage"

    current = storm.initial_stage
    for change in changes:
        assert change["previousStage"]["id"] == current
        assert change["stage"]["id"] != current
        current = change["stage"]["id"]


async def test_the_final_stage_is_the_last_stage_change(storm: Storm) -> None:
    last = storm.of_type("lead.status_changed")[-1]

    assert storm.final["stage"]["id"] == last["stage"]["id"]


async def test_only_updates_that_change_something_record_an_event(storm: Storm) -> None:
    updates = storm.of_type("lead.updated")

    assert len(updates) == ROUNDS
    assert all(set(u["changes"]) == {"customFields", "tags"} for u in updates)


async def test_each_update_starts_from_the_previous_updates_result(storm: Storm) -> None:
    fields: dict[str, Any] = {}
    tags: list[str] = []
    for update in storm.of_type("lead.updated"):
        assert update["changes"]["customFields"]["from"] == fields
        assert update["changes"]["tags"]["from"] == tags
        fields = update["changes"]["customFields"]["to"]
        tags = update["changes"]["tags"]["to"]

    assert (storm.final["customFields"], storm.final["tags"]) == (fields, tags)
    written = sorted(u["changes"]["customFields"]["to"]["n"] for u in storm.of_type("lead.updated"))
    assert written == list(range(ROUNDS))


async def test_each_event_shows_the_lead_with_every_earlier_change(storm: Storm) -> None:
    expected: dict[str, Any] = {"stage": storm.initial_stage, "customFields": {}, "tags": []}
    for event in storm.events:
        payload = event["payload"]
        if event["type"] == "lead.updated":
            for field, change in payload["changes"].items():
                expected[field] = change["to"]
        elif event["type"] == "lead.status_changed":
            expected["stage"] = payload["stage"]["id"]
        lead = payload["lead"]["attributes"]
        shown = {
            "stage": lead["stage"]["id"],
            "customFields": lead["customFields"],
            "tags": lead["tags"],
        }
        assert shown == expected, f"event {event['sequence']} ({event['type']})"
        assert lead["industry"] == INDUSTRY


async def test_ten_concurrent_creates_without_keys_make_ten_leads(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    name = f"Parallel {uuid.uuid4().hex[:12]}"
    variables = {"input": {"businessName": name}}

    answers = await asyncio.gather(
        *(api.graphql(tenant.write_key, CREATE, variables) for _ in range(10))
    )

    ids = {body["data"]["createLead"]["id"] for _, body in answers}
    rows = await pool.fetch(
        "SELECT l.id, count(e.id) AS events FROM leads AS l"
        " LEFT JOIN lead_events AS e ON e.organization_id = l.organization_id AND e.lead_id = l.id"
        " WHERE l.organization_id = $1 AND l.business_name = $2 GROUP BY l.id",
        tenant.id,
        name,
    )
    assert len(ids) == 10
    assert {str(r["id"]) for r in rows} == ids
    assert all(r["events"] == 1 for r in rows)


@pytest.mark.parametrize("api_kind", ["rest", "graphql"])
async def test_a_write_to_a_lead_locked_elsewhere_answers_a_typed_error_within_the_lock_timeout(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, settings: Settings, api_kind: str
) -> None:
    status, created, _ = await api.rest(
        "POST", "/v1/leads", tenant.write_key, json={"businessName": "Busy"}
    )
    assert status == 201, created
    lead_id = created["data"]["id"]
    change = {"industry": "Changed while busy"}
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            # Another transaction (a long import, a slow writer) holds the lead.
            await conn.execute(
                "SELECT 1 FROM leads WHERE organization_id = $1 AND id = $2 FOR UPDATE",
                tenant.id,
                uuid.UUID(lead_id),
            )
            started = time.monotonic()
            if api_kind == "rest":
                status, body, _ = await api.rest(
                    "PATCH", f"/v1/leads/{lead_id}", tenant.write_key, json=change
                )
                code = body["error"]["code"]
            else:
                status, body = await api.graphql(
                    tenant.write_key, UPDATE, {"id": lead_id, "input": change}
                )
                (code,) = error_codes(body)
            elapsed = time.monotonic() - started
    finally:
        await conn.close()

    assert elapsed < NO_HANG_SECONDS
    assert code != "INTERNAL", body
    if api_kind == "rest":
        assert 400 <= status < 500, body
    events = await pool.fetchval(
        "SELECT count(*) FROM lead_events WHERE organization_id = $1 AND lead_id = $2",
        tenant.id,
        uuid.UUID(lead_id),
    )
    assert events == 1
