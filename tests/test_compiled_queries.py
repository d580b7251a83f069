"""Compiled query plans answer exactly as strawberry's executor does."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.graphql.context import Context
from leadgate.graphql.schema import LeadgateSchema, RefusedResult, build_schema
from leadgate.services.auth import Authenticator
from tests.support import Api, Tenant

LEAD_FIELDS = """
  id businessName contactFirstName contactLastName email phone industry monthlyRevenue
  requestedAmount source priority isDoNotCall dncReason dncAt tags customFields externalIds
  leadScore contactId lastContactedAt stageChangedAt convertedAt convertedAccountId
  convertedContactId importJobId createdBy createdAt updatedAt
"""

QUERIES: dict[str, tuple[str, dict[str, Any] | None]] = {
    "the list query": (
        "{ leads(limit: 20) { total page limit hasMore nodes {"
        + LEAD_FIELDS
        + " stage { id stageKey stageLabel color semanticSlot position }"
        " primaryAdvisor { id name email } } } }",
        None,
    ),
    "aliases, typename and fragments": (
        """
        query Page($limit: Int!, $search: String) {
          first: leads(limit: $limit, search: $search) { ...pageFields }
          second: leads(page: 2, limit: 3) { total nodes { ... on Lead { id __typename } } }
          __typename
        }
        fragment pageFields on LeadPage { total hasMore nodes { id name: businessName
          stage { stageKey } stage { stageLabel } primaryAdvisor { name } } }
        """,
        {"limit": 5, "search": "a"},
    ),
    "filters and enums": (
        "query($f: LeadFilter) { leads(limit: 50, filter: $f) { total nodes { id priority } } }",
        {"f": {"priority": "HIGH"}},
    ),
    "history and events": (
        "{ leads(limit: 3) { nodes { id history(limit: 2) { id type sequence data } } }"
        " events(limit: 5) { id type occurredAt lead { id stage { stageKey } } } }",
        None,
    ),
    "stages and advisors": ("{ stages { id stageKey position } advisors { id name } }", None),
    "an unknown lead": (
        '{ lead(id: "00000000-0000-0000-0000-000000000000") { id } stages { id } }',
        None,
    ),
    "a malformed argument": ("{ leads(limit: 0) { total } }", None),
    "a bad variable": ("query($l: Int!) { leads(limit: $l) { total } }", {"l": "x"}),
    "a directive": (
        "query($t: Boolean!) { stages { id stageKey @include(if: $t) } }",
        {"t": False},
    ),
}


def context(server: TestServer, tenant_principal: Any) -> Context:
    app = server.app
    return Context(
        caller=tenant_principal,
        request_id="differential",
        reader=app[keys.LEAD_READER],
        writer=app[keys.LEAD_WRITER],
        feed=app[keys.EVENT_FEED],
        authenticator=app[keys.AUTHENTICATOR],
        webhooks=app[keys.WEBHOOKS],
    )


def outcome(result: Any) -> tuple[Any, list[tuple[Any, Any]]]:
    errors = [(e.message, (e.extensions or {}).get("code")) for e in result.errors or []]
    return result.data, errors


@pytest.fixture
async def principal(server: TestServer, tenant: Tenant, api: Api) -> Any:
    # A few events, so history and events have something to show.
    _, body = await api.graphql(tenant.read_key, "{ leads(limit: 2) { nodes { id } } }")
    for lead in body["data"]["leads"]["nodes"]:
        await api.graphql(
            tenant.write_key,
            "mutation($id: ID!, $s: ID!) { moveLead(id: $id, stageId: $s) { id } }",
            {"id": lead["id"], "s": str(tenant.stage_ids[2])},
        )
    authenticator: Authenticator = server.app[keys.AUTHENTICATOR]
    return await authenticator.authenticate(f"Bearer {tenant.read_key}")


@pytest.mark.parametrize("name", list(QUERIES))
async def test_a_compiled_plan_answers_exactly_as_strawberry(
    server: TestServer, principal: Any, name: str
) -> None:
    query, variables = QUERIES[name]
    compiled, plain = build_schema(compiled=True), build_schema(compiled=False)

    fast = await compiled.execute(query, variables, context(server, principal))
    slow = await plain.execute(query, variables, context(server, principal))

    assert outcome(fast) == outcome(slow)
    # What succeeds is answered by the plan itself, not by a fallback to strawberry; what the
    # gate refuses reaches neither.
    assert isinstance(compiled, LeadgateSchema)
    ran_and_failed = bool(fast.errors) and not isinstance(fast, RefusedResult)
    assert compiled.fallbacks == (1 if ran_and_failed else 0)


@pytest.mark.parametrize(
    ("name", "compiles"),
    [
        ("the list query", True),
        ("aliases, typename and fragments", True),
        ("history and events", True),
        ("a malformed argument", True),
        ("a directive", False),
        ("a bad variable", True),
    ],
)
def test_plain_query_documents_compile_and_others_are_left_to_strawberry(
    name: str, compiles: bool
) -> None:
    schema = build_schema(compiled=True)
    assert isinstance(schema, LeadgateSchema)
    query, _ = QUERIES[name]

    assert (schema.plan(query, None) is not None) is compiles


def test_mutations_and_introspection_are_never_compiled() -> None:
    schema = build_schema(compiled=True)
    assert isinstance(schema, LeadgateSchema)

    assert schema.plan('mutation { deleteWebhookEndpoint(id: "x") }', None) is None
    assert schema.plan("{ __schema { queryType { name } } }", None) is None


def test_a_subscription_document_compiles_so_each_event_is_completed_once() -> None:
    schema = build_schema(compiled=True)
    assert isinstance(schema, LeadgateSchema)

    document = "subscription { leadStageChanged { eventId lead { id } toStage { stageKey } } }"

    assert schema.plan(document, None) is not None
