"""The write API: createLead, updateLead, moveLead, assignLead and POST/PATCH /v1/leads.

Both APIs sit behind one small adapter (`GraphQLWrites`, `RestWrites`) so a rule shared by
both is one test run against each; test_write_validation and test_write_fuzz use it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.support import REST_ATTRIBUTES, Api, Tenant, error_codes, header

LEAD_FIELDS: Final = """
    id businessName contactFirstName contactLastName email phone industry monthlyRevenue
    requestedAmount source priority tags customFields contactId stageChangedAt createdAt
    updatedAt stage { id stageKey } primaryAdvisor { id name }
"""
CREATE_LEAD: Final = f"""
mutation ($input: CreateLeadInput!) {{ createLead(input: $input) {{ {LEAD_FIELDS} }} }}
"""
UPDATE_LEAD: Final = f"""
mutation ($id: ID!, $input: UpdateLeadInput!) {{
    updateLead(id: $id, input: $input) {{ {LEAD_FIELDS} }}
}}
"""
MOVE_LEAD: Final = f"""
mutation ($id: ID!, $stageId: ID!) {{ moveLead(id: $id, stageId: $stageId) {{ {LEAD_FIELDS} }} }}
"""
ASSIGN_LEAD: Final = f"""
mutation ($id: ID!, $advisorId: ID) {{
    assignLead(id: $id, advisorId: $advisorId) {{ {LEAD_FIELDS} }}
}}
"""
HISTORY: Final = "query ($id: ID!) { lead(id: $id) { history { type sequence data } } }"
_ENUM_VALUES: Final = {
    "source": {"manual", "csv_import", "api", "web_form", "referral", "dialer"},
    "priority": {"low", "normal", "high", "urgent"},
}
_TIMES: Final = ("stageChangedAt", "createdAt", "updatedAt")


@dataclass(frozen=True)
class Outcome:
    """One write's answer in a shape both APIs share.

    `lead` uses the REST attribute names plus `id`, `stageId`, `stageKey`, with enums in lower
    case and times parsed; `fields` holds each `(field, message)` of a validation error.
    """

    status: int
    lead: dict[str, Any] | None
    codes: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]
    message: str

    @property
    def field_names(self) -> set[str]:
        return {field for field, _ in self.fields}

    def names(self, field: str) -> bool:
        """The error points at `field`: in `fields`, or (schema errors) in the message."""
        return field in self.field_names or field in self.message


class Writes(Protocol):
    @property
    def name(self) -> str: ...

    async def create(self, key: str, body: Any) -> Outcome: ...

    async def update(self, key: str, lead_id: str, body: Any) -> Outcome: ...


def _with_times(lead: dict[str, Any]) -> dict[str, Any]:
    for name in _TIMES:
        lead[name] = datetime.fromisoformat(lead[name])
    return lead


def graphql_lead(node: dict[str, Any]) -> dict[str, Any]:
    lead = {k: v for k, v in node.items() if k not in ("stage", "primaryAdvisor")}
    lead["source"] = node["source"].lower()
    lead["priority"] = node["priority"].lower()
    lead["stageId"] = node["stage"]["id"]
    lead["stageKey"] = node["stage"]["stageKey"]
    advisor = node["primaryAdvisor"]
    lead["primaryAdvisorId"] = advisor["id"] if advisor else None
    lead["primaryAdvisorName"] = advisor["name"] if advisor else None
    return _with_times(lead)


def rest_lead(data: dict[str, Any]) -> dict[str, Any]:
    attributes = dict(data["attributes"])
    stage = attributes.pop("stage")
    return _with_times(
        {"id": data["id"], **attributes, "stageId": stage["id"], "stageKey": stage["stageKey"]}
    )


def graphql_outcome(status: int, body: dict[str, Any], field: str) -> Outcome:
    errors = body.get("errors") or []
    fields = tuple(
        (f["field"], f["message"]) for e in errors for f in e["extensions"].get("fields", [])
    )
    node = (body.get("data") or {}).get(field)
    return Outcome(
        status=status,
        lead=graphql_lead(node) if node and not errors else None,
        codes=tuple(error_codes(body)),
        fields=fields,
        message=" | ".join(e["message"] for e in errors),
    )


def rest_outcome(status: int, body: dict[str, Any]) -> Outcome:
    if "error" not in body:
        return Outcome(status=status, lead=rest_lead(body["data"]), codes=(), fields=(), message="")
    error = body["error"]
    fields = tuple((f["field"], f["message"]) for f in error.get("fields", []))
    return Outcome(
        status=status, lead=None, codes=(error["code"],), fields=fields, message=error["message"]
    )


def graphql_input(body: Any) -> Any:
    """The same body with REST enum values (`api`) spelled as GraphQL enum names (`API`)."""
    if not isinstance(body, dict):
        return body
    return {
        k: v.upper() if k in _ENUM_VALUES and isinstance(v, str) and v in _ENUM_VALUES[k] else v
        for k, v in body.items()
    }


@dataclass(frozen=True)
class GraphQLWrites:
    api: Api
    name: str = "graphql"

    async def create(self, key: str, body: Any) -> Outcome:
        status, answer = await self.api.graphql(key, CREATE_LEAD, {"input": graphql_input(body)})
        return graphql_outcome(status, answer, "createLead")

    async def update(self, key: str, lead_id: str, body: Any) -> Outcome:
        variables = {"id": lead_id, "input": graphql_input(body)}
        status, answer = await self.api.graphql(key, UPDATE_LEAD, variables)
        return graphql_outcome(status, answer, "updateLead")


@dataclass(frozen=True)
class RestWrites:
    api: Api
    name: str = "rest"

    async def create(self, key: str, body: Any) -> Outcome:
        status, answer, _ = await self.api.rest("POST", "/v1/leads", key, json=body)
        return rest_outcome(status, answer)

    async def update(self, key: str, lead_id: str, body: Any) -> Outcome:
        status, answer, _ = await self.api.rest("PATCH", f"/v1/leads/{lead_id}", key, json=body)
        return rest_outcome(status, answer)


WRITE_APIS: Final[dict[str, Callable[[Api], Writes]]] = {
    "graphql": GraphQLWrites,
    "rest": RestWrites,
}


async def write_counts(pool: asyncpg.Pool, organization_id: UUID) -> tuple[int, int]:
    """(leads, lead_events) of one organization: what a failed write must leave alone."""
    row = await pool.fetchrow(
        """
        SELECT
            (SELECT count(*) FROM leads WHERE organization_id = $1) AS leads,
            (SELECT count(*) FROM lead_events WHERE organization_id = $1) AS events
        """,
        organization_id,
    )
    assert row is not None
    return row["leads"], row["events"]


async def lead_row(pool: asyncpg.Pool, organization_id: UUID, lead_id: str) -> dict[str, Any]:
    """The stored row, every column, as JSON."""
    row: dict[str, Any] | None = await pool.fetchval(
        "SELECT to_jsonb(l) FROM leads AS l WHERE l.organization_id = $1 AND l.id = $2",
        organization_id,
        UUID(lead_id),
    )
    assert row is not None
    return row


async def some_lead_id(pool: asyncpg.Pool, organization_id: UUID) -> str:
    """One of the organization's demo leads."""
    lead_id = await pool.fetchval(
        "SELECT id FROM leads WHERE organization_id = $1 ORDER BY id LIMIT 1", organization_id
    )
    return str(lead_id)


async def history(api: Api, key: str, lead_id: str) -> list[dict[str, Any]]:
    status, body = await api.graphql(key, HISTORY, {"id": lead_id})
    assert status == 200, body
    assert "errors" not in body, body
    events: list[dict[str, Any]] = body["data"]["lead"]["history"]
    return events


async def created(writes: Writes, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    outcome = await writes.create(tenant.write_key, body)
    assert outcome.lead is not None, outcome
    return outcome.lead


@pytest.fixture(params=sorted(WRITE_APIS))
def writes(request: pytest.FixtureRequest, api: Api) -> Writes:
    return WRITE_APIS[request.param](api)


FULL_BODY: Final = {
    "businessName": "Acme Corp",
    "contactFirstName": "Jane",
    "contactLastName": "Doe",
    "email": "jane@acme.com",
    "phone": "555-0100",
    "industry": "Technology",
    "monthlyRevenue": "85000",
    "requestedAmount": "250000",
    "source": "api",
    "priority": "high",
    "tags": ["technology", "high-value"],
    "customFields": {"broker": "B-17", "years": 4},
}


# --- create -----------------------------------------------------------------------------------


async def test_create_returns_the_lead_with_every_field_it_was_given(
    writes: Writes, tenant: Tenant
) -> None:
    lead = await created(writes, tenant, FULL_BODY)

    assert {k: lead[k] for k in FULL_BODY} == FULL_BODY
    assert UUID(lead["id"])


async def test_post_leads_answers_201_in_the_spec_envelope(api: Api, tenant: Tenant) -> None:
    status, body, headers = await api.rest("POST", "/v1/leads", tenant.write_key, json=FULL_BODY)

    assert status == 201, body
    assert body["data"]["type"] == "lead"
    assert UUID(body["data"]["id"])
    assert set(body["data"]["attributes"]) == REST_ATTRIBUTES
    assert set(body["data"]["attributes"]["stage"]) >= {
        "id",
        "stageKey",
        "stageLabel",
        "color",
        "semanticSlot",
    }
    assert body["meta"]["requestId"] == header(headers, "X-Request-Id")


async def test_created_lead_is_readable_with_get(api: Api, tenant: Tenant) -> None:
    _, posted, _ = await api.rest("POST", "/v1/leads", tenant.write_key, json=FULL_BODY)

    status, body, _ = await api.rest("GET", f"/v1/leads/{posted['data']['id']}", tenant.read_key)

    assert status == 200
    assert body["data"] == posted["data"]


async def test_create_defaults_to_the_first_stage_manual_source_and_normal_priority(
    writes: Writes, tenant: Tenant
) -> None:
    lead = await created(writes, tenant, {"businessName": "Defaults Inc"})

    assert lead["stageKey"] == "new_lead"
    assert lead["stageId"] == str(tenant.stage_ids[0])
    assert (lead["source"], lead["priority"]) == ("manual", "normal")
    assert (lead["tags"], lead["customFields"], lead["primaryAdvisorId"]) == ([], {}, None)


async def test_create_accepts_an_empty_body(writes: Writes, tenant: Tenant) -> None:
    lead = await created(writes, tenant, {})

    assert lead["businessName"] is None
    assert lead["stageKey"] == "new_lead"


async def test_create_in_a_given_stage_puts_the_lead_there(writes: Writes, tenant: Tenant) -> None:
    lead = await created(writes, tenant, {"stageId": str(tenant.stage_ids[2])})

    assert lead["stageId"] == str(tenant.stage_ids[2])
    assert lead["stageKey"] == "qualified"


async def test_assign_to_advisor_on_create_sets_the_primary_advisor(
    writes: Writes, tenant: Tenant
) -> None:
    advisor = str(tenant.advisor_ids[1])

    lead = await created(writes, tenant, {"assignToAdvisorId": advisor})

    assert lead["primaryAdvisorId"] == advisor
    assert lead["primaryAdvisorName"]


async def test_create_records_a_lead_created_event_with_sequence_1(
    writes: Writes, api: Api, tenant: Tenant
) -> None:
    lead = await created(writes, tenant, {"businessName": "Evented"})

    events = await history(api, tenant.read_key, lead["id"])

    assert [(e["type"], e["sequence"]) for e in events] == [("lead.created", 1)]
    assert events[0]["data"]["lead"]["id"] == lead["id"]


# --- update -----------------------------------------------------------------------------------


async def test_update_changes_the_given_fields_and_returns_the_lead(
    writes: Writes, tenant: Tenant
) -> None:
    lead = await created(writes, tenant, FULL_BODY)

    outcome = await writes.update(
        tenant.write_key, lead["id"], {"priority": "urgent", "requestedAmount": "500000"}
    )

    assert outcome.lead is not None, outcome
    assert outcome.lead["priority"] == "urgent"
    assert outcome.lead["requestedAmount"] == "500000"
    assert outcome.lead["businessName"] == "Acme Corp"


async def test_patch_lead_answers_200_in_the_spec_envelope(api: Api, tenant: Tenant) -> None:
    _, posted, _ = await api.rest("POST", "/v1/leads", tenant.write_key, json=FULL_BODY)
    lead_id = posted["data"]["id"]

    status, body, headers = await api.rest(
        "PATCH", f"/v1/leads/{lead_id}", tenant.write_key, json={"priority": "urgent"}
    )

    assert status == 200, body
    assert body["data"]["id"] == lead_id
    assert body["data"]["type"] == "lead"
    assert body["data"]["attributes"]["priority"] == "urgent"
    assert body["meta"]["requestId"] == header(headers, "X-Request-Id")


async def test_update_advances_updated_at(writes: Writes, tenant: Tenant) -> None:
    lead = await created(writes, tenant, FULL_BODY)

    outcome = await writes.update(tenant.write_key, lead["id"], {"phone": "555-0199"})

    assert outcome.lead is not None, outcome
    assert outcome.lead["updatedAt"] > lead["updatedAt"]
    assert outcome.lead["createdAt"] == lead["createdAt"]


async def test_update_records_lead_updated_with_from_and_to_of_only_the_changed_fields(
    writes: Writes, api: Api, tenant: Tenant
) -> None:
    lead = await created(writes, tenant, FULL_BODY)

    await writes.update(
        tenant.write_key,
        lead["id"],
        {"priority": "urgent", "businessName": "Acme Corp", "tags": ["technology"]},
    )

    newest = (await history(api, tenant.read_key, lead["id"]))[0]
    assert (newest["type"], newest["sequence"]) == ("lead.updated", 2)
    assert newest["data"]["changes"] == {
        "priority": {"from": "high", "to": "urgent"},
        "tags": {"from": ["technology", "high-value"], "to": ["technology"]},
    }


async def test_update_that_changes_nothing_records_no_event_and_keeps_updated_at(
    writes: Writes, api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    lead = await created(writes, tenant, FULL_BODY)
    before = await lead_row(pool, tenant.id, lead["id"])

    outcome = await writes.update(
        tenant.write_key, lead["id"], {"businessName": "  Acme Corp ", "priority": "high"}
    )

    assert outcome.lead is not None, outcome
    assert outcome.lead["updatedAt"] == lead["updatedAt"]
    assert await lead_row(pool, tenant.id, lead["id"]) == before
    assert [e["type"] for e in await history(api, tenant.read_key, lead["id"])] == ["lead.created"]


# --- move and assign (GraphQL only: REST has no move or assign endpoint) -----------------------


async def test_move_lead_changes_the_stage_and_stage_changed_at(api: Api, tenant: Tenant) -> None:
    lead = await created(GraphQLWrites(api), tenant, {"businessName": "Mover"})

    status, body = await api.graphql(
        tenant.write_key, MOVE_LEAD, {"id": lead["id"], "stageId": str(tenant.stage_ids[1])}
    )

    assert status == 200
    assert "errors" not in body, body
    moved = graphql_lead(body["data"]["moveLead"])
    assert moved["stageKey"] == "contacted"
    assert moved["stageChangedAt"] > lead["stageChangedAt"]
    assert moved["updatedAt"] > lead["updatedAt"]


async def test_move_lead_records_status_changed_with_previous_and_new_stage(
    api: Api, tenant: Tenant
) -> None:
    lead = await created(GraphQLWrites(api), tenant, {"businessName": "Mover"})

    await api.graphql(
        tenant.write_key, MOVE_LEAD, {"id": lead["id"], "stageId": str(tenant.stage_ids[3])}
    )

    newest = (await history(api, tenant.read_key, lead["id"]))[0]
    assert (newest["type"], newest["sequence"]) == ("lead.status_changed", 2)
    assert newest["data"]["previousStage"]["stageKey"] == "new_lead"
    assert newest["data"]["stage"]["stageKey"] == "application"
    assert newest["data"]["stage"]["id"] == str(tenant.stage_ids[3])


async def test_move_lead_to_its_current_stage_is_a_no_op(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    lead = await created(GraphQLWrites(api), tenant, {"businessName": "Stayer"})
    before = await lead_row(pool, tenant.id, lead["id"])

    status, body = await api.graphql(
        tenant.write_key, MOVE_LEAD, {"id": lead["id"], "stageId": lead["stageId"]}
    )

    assert status == 200
    assert "errors" not in body, body
    assert graphql_lead(body["data"]["moveLead"])["stageChangedAt"] == lead["stageChangedAt"]
    assert await lead_row(pool, tenant.id, lead["id"]) == before
    assert [e["type"] for e in await history(api, tenant.read_key, lead["id"])] == ["lead.created"]


async def test_assign_lead_sets_the_advisor_and_records_lead_assigned(
    api: Api, tenant: Tenant
) -> None:
    lead = await created(GraphQLWrites(api), tenant, {"businessName": "Assignee"})
    advisor = str(tenant.advisor_ids[0])

    status, body = await api.graphql(
        tenant.write_key, ASSIGN_LEAD, {"id": lead["id"], "advisorId": advisor}
    )

    assert status == 200
    assert "errors" not in body, body
    assert graphql_lead(body["data"]["assignLead"])["primaryAdvisorId"] == advisor
    newest = (await history(api, tenant.read_key, lead["id"]))[0]
    assert newest["type"] == "lead.assigned"
    assert (newest["data"]["previousAdvisorId"], newest["data"]["advisorId"]) == (None, advisor)


async def test_assign_lead_to_null_unassigns(api: Api, tenant: Tenant) -> None:
    advisor = str(tenant.advisor_ids[0])
    lead = await created(GraphQLWrites(api), tenant, {"assignToAdvisorId": advisor})

    status, body = await api.graphql(
        tenant.write_key, ASSIGN_LEAD, {"id": lead["id"], "advisorId": None}
    )

    assert status == 200
    assert "errors" not in body, body
    assert graphql_lead(body["data"]["assignLead"])["primaryAdvisorId"] is None
    newest = (await history(api, tenant.read_key, lead["id"]))[0]
    assert newest["type"] == "lead.assigned"
    assert (newest["data"]["previousAdvisorId"], newest["data"]["advisorId"]) == (advisor, None)


async def test_history_is_newest_first_with_per_lead_sequence_1_2_3(
    api: Api, tenant: Tenant
) -> None:
    lead = await created(GraphQLWrites(api), tenant, {"businessName": "Busy"})
    lead_id = lead["id"]
    await GraphQLWrites(api).update(tenant.write_key, lead_id, {"priority": "high"})
    await api.graphql(
        tenant.write_key, MOVE_LEAD, {"id": lead_id, "stageId": str(tenant.stage_ids[1])}
    )
    await api.graphql(
        tenant.write_key, ASSIGN_LEAD, {"id": lead_id, "advisorId": str(tenant.advisor_ids[0])}
    )

    events = await history(api, tenant.read_key, lead_id)

    assert [(e["type"], e["sequence"]) for e in events] == [
        ("lead.assigned", 4),
        ("lead.status_changed", 3),
        ("lead.updated", 2),
        ("lead.created", 1),
    ]


async def test_move_lead_to_an_unknown_or_foreign_stage_is_the_same_validation_error(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    lead_id = await some_lead_id(pool, tenant.id)
    before = await lead_row(pool, tenant.id, lead_id)

    answers = [
        await api.graphql(tenant.write_key, MOVE_LEAD, {"id": lead_id, "stageId": stage})
        for stage in (str(uuid4()), str(other_tenant.stage_ids[1]))
    ]

    (_, unknown), (_, foreign) = answers
    assert error_codes(unknown) == ["VALIDATION_ERROR"]
    assert unknown["errors"][0]["extensions"]["fields"][0]["field"] == "stageId"
    assert foreign["errors"][0]["message"] == unknown["errors"][0]["message"]
    assert (
        foreign["errors"][0]["extensions"]["fields"] == unknown["errors"][0]["extensions"]["fields"]
    )
    assert await lead_row(pool, tenant.id, lead_id) == before


async def test_assign_lead_to_an_unknown_or_foreign_advisor_is_the_same_validation_error(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    lead_id = await some_lead_id(pool, tenant.id)
    before = await lead_row(pool, tenant.id, lead_id)

    answers = [
        await api.graphql(tenant.write_key, ASSIGN_LEAD, {"id": lead_id, "advisorId": advisor})
        for advisor in (str(uuid4()), str(other_tenant.advisor_ids[0]))
    ]

    (_, unknown), (_, foreign) = answers
    assert error_codes(unknown) == ["VALIDATION_ERROR"]
    assert unknown["errors"][0]["extensions"]["fields"][0]["field"] == "advisorId"
    assert foreign["errors"][0]["message"] == unknown["errors"][0]["message"]
    assert await lead_row(pool, tenant.id, lead_id) == before


# --- who may write what -----------------------------------------------------------------------

Variables = Callable[[str, Tenant], dict[str, Any]]
GRAPHQL_WRITES: Final[dict[str, tuple[str, Variables]]] = {
    "createLead": (CREATE_LEAD, lambda lead_id, t: {"input": {"businessName": "Nope"}}),
    "updateLead": (UPDATE_LEAD, lambda lead_id, t: {"id": lead_id, "input": {"phone": "1"}}),
    "moveLead": (MOVE_LEAD, lambda lead_id, t: {"id": lead_id, "stageId": str(t.stage_ids[4])}),
    "assignLead": (
        ASSIGN_LEAD,
        lambda lead_id, t: {"id": lead_id, "advisorId": str(t.advisor_ids[2])},
    ),
}


@pytest.mark.parametrize("mutation", sorted(GRAPHQL_WRITES))
async def test_read_only_key_gets_forbidden_on_every_mutation(
    mutation: str, api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    query, variables = GRAPHQL_WRITES[mutation]
    lead_id = await some_lead_id(pool, tenant.id)
    before = (await write_counts(pool, tenant.id), await lead_row(pool, tenant.id, lead_id))

    status, body = await api.graphql(tenant.read_key, query, variables(lead_id, tenant))

    assert status == 200
    assert error_codes(body) == ["FORBIDDEN"]
    assert body.get("data") is None
    assert (await write_counts(pool, tenant.id), await lead_row(pool, tenant.id, lead_id)) == before


async def test_read_only_key_gets_403_on_post(api: Api, pool: asyncpg.Pool, tenant: Tenant) -> None:
    before = await write_counts(pool, tenant.id)

    status, body, _ = await api.rest("POST", "/v1/leads", tenant.read_key, json=FULL_BODY)

    assert status == 403
    assert body["error"]["code"] == "FORBIDDEN"
    assert await write_counts(pool, tenant.id) == before


async def test_read_only_key_gets_403_on_patch(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    lead_id = await some_lead_id(pool, tenant.id)
    before = await lead_row(pool, tenant.id, lead_id)

    status, body, _ = await api.rest(
        "PATCH", f"/v1/leads/{lead_id}", tenant.read_key, json={"phone": "1"}
    )

    assert status == 403
    assert body["error"]["code"] == "FORBIDDEN"
    assert await lead_row(pool, tenant.id, lead_id) == before


@pytest.mark.parametrize("mutation", ["updateLead", "moveLead", "assignLead"])
async def test_another_organizations_lead_is_not_found_by_mutations_and_stays_unchanged(
    mutation: str, api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    query, variables = GRAPHQL_WRITES[mutation]
    foreign_id = await some_lead_id(pool, other_tenant.id)
    before = (
        await write_counts(pool, other_tenant.id),
        await lead_row(pool, other_tenant.id, foreign_id),
    )

    # The caller's own stage and advisor ids: only the lead is foreign.
    status, body = await api.graphql(tenant.write_key, query, variables(foreign_id, tenant))

    assert status == 200
    assert error_codes(body) == ["NOT_FOUND"]
    after = (
        await write_counts(pool, other_tenant.id),
        await lead_row(pool, other_tenant.id, foreign_id),
    )
    assert after == before


async def test_another_organizations_lead_is_404_on_patch_and_stays_unchanged(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign_id = await some_lead_id(pool, other_tenant.id)
    before = (
        await write_counts(pool, other_tenant.id),
        await lead_row(pool, other_tenant.id, foreign_id),
    )

    status, body, _ = await api.rest(
        "PATCH", f"/v1/leads/{foreign_id}", tenant.write_key, json={"businessName": "Mine now"}
    )

    assert status == 404
    assert body["error"]["code"] == "NOT_FOUND"
    after = (
        await write_counts(pool, other_tenant.id),
        await lead_row(pool, other_tenant.id, foreign_id),
    )
    assert after == before


async def test_unknown_lead_id_is_not_found_on_update(writes: Writes, tenant: Tenant) -> None:
    outcome = await writes.update(tenant.write_key, str(uuid4()), {"phone": "1"})

    assert outcome.codes == ("NOT_FOUND",)


@pytest.mark.parametrize("mutation", ["updateLead", "moveLead", "assignLead"])
@pytest.mark.parametrize("lead_id", ["not-a-uuid", "1234", "x" * 300])
async def test_malformed_lead_id_is_not_found_on_mutations(
    mutation: str, lead_id: str, api: Api, tenant: Tenant
) -> None:
    query, variables = GRAPHQL_WRITES[mutation]

    status, body = await api.graphql(tenant.write_key, query, variables(lead_id, tenant))

    assert status == 200
    assert error_codes(body) == ["NOT_FOUND"]


@pytest.mark.parametrize("lead_id", ["not-a-uuid", "1234", "x" * 300])
async def test_malformed_lead_id_is_404_on_patch(api: Api, tenant: Tenant, lead_id: str) -> None:
    status, body, _ = await api.rest(
        "PATCH", f"/v1/leads/{lead_id}", tenant.write_key, json={"phone": "1"}
    )

    assert status == 404
    assert body["error"]["code"] == "NOT_FOUND"
