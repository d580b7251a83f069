"""Helpers the tests share: a tenant with data, small HTTP clients for both APIs, and the few
GraphQL calls several modules make (create and move a lead, read its events)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import aiohttp
import asyncpg

from leadgate.db.statements import StatementCounter
from leadgate.services import auth, demo_data
from leadgate.services.organizations import create_organization
from leadgate.store import catalog

# Every attribute of a lead in the spec's REST shape ("Get a Lead" plus the fields it lists).
REST_ATTRIBUTES: Final = frozenset(
    {
        "businessName",
        "contactFirstName",
        "contactLastName",
        "email",
        "phone",
        "industry",
        "monthlyRevenue",
        "requestedAmount",
        "source",
        "priority",
        "isDoNotCall",
        "dncReason",
        "dncAt",
        "tags",
        "customFields",
        "externalIds",
        "leadScore",
        "stage",
        "primaryAdvisorId",
        "primaryAdvisorName",
        "contactId",
        "lastContactedAt",
        "stageChangedAt",
        "convertedAt",
        "convertedAccountId",
        "convertedContactId",
        "importJobId",
        # mergeLeads (issue 12 #5)
        "mergedInto",
        "createdBy",
        "createdAt",
        "updatedAt",
        # archiveLead (issue 12 #2)
        "archivedAt",
    }
)


@dataclass(frozen=True)
class Tenant:
    """A fresh organization: its keys, pipeline and advisors."""

    id: UUID
    write_key: str
    read_key: str
    stage_ids: list[UUID]
    advisor_ids: list[UUID]


async def make_tenant(pool: asyncpg.Pool, *, leads: int = 0, name: str = "Test Lending") -> Tenant:
    org_id = await create_organization(pool, name)
    advisor_ids = await demo_data.ensure_advisors(pool, org_id)
    if leads:
        await demo_data.add_demo_leads(pool, org_id, leads, seed=7)
    write = await auth.create_api_key(pool, organization_id=org_id, can_write=True)
    read = await auth.create_api_key(pool, organization_id=org_id, can_write=False)
    async with pool.acquire() as conn:
        stages = await catalog.stages(conn, org_id)
    return Tenant(
        id=org_id,
        write_key=write.key,
        read_key=read.key,
        stage_ids=[s.id for s in stages],
        advisor_ids=advisor_ids,
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Api:
    """Real HTTP against the test server."""

    session: aiohttp.ClientSession
    base: str

    async def graphql(
        self,
        key: str | None,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        all_headers = {**(bearer(key) if key else {}), **(headers or {})}
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        async with self.session.post(
            f"{self.base}/graphql", json=payload, headers=all_headers
        ) as resp:
            return resp.status, await resp.json()

    async def rest(
        self,
        method: str,
        path: str,
        key: str | None,
        *,
        json: Any = None,
        data: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        all_headers = {**(bearer(key) if key else {}), **(headers or {})}
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, f"{self.base}{path}", json=json, data=data, headers=all_headers
        ) as resp:
            return resp.status, await resp.json(), dict(resp.headers)


# Background work on a gateway's pool (its webhook dispatcher polls each second) can only add
# statements to a measurement, so the least of a few runs is the request's own cost.
MEASUREMENTS: Final = 3


async def fewest_statements(counter: StatementCounter, send: Callable[[], Awaitable[Any]]) -> int:
    """The statements one `send` costs: the least of MEASUREMENTS runs."""
    costs = []
    for _ in range(MEASUREMENTS):
        before = counter.total
        await send()
        costs.append(counter.total - before)
    return min(costs)


def header(headers: dict[str, str], name: str) -> str | None:
    """A response header, whatever its case on the wire."""
    return {k.lower(): v for k, v in headers.items()}.get(name.lower())


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


# --- GraphQL calls several modules make -------------------------------------------------------

CREATE_LEAD: Final = "mutation($name: String!) { createLead(input: {businessName: $name}) { id } }"
MOVE_LEAD: Final = "mutation($id: ID!, $stage: ID!) { moveLead(id: $id, stageId: $stage) { id } }"
HISTORY: Final = "query($id: ID!) { lead(id: $id) { history { id type sequence } } }"
EVENTS: Final = """
query($after: ID, $types: [String!], $limit: Int! = 100) {
  events(after: $after, types: $types, limit: $limit) { id type sequence occurredAt data }
}
"""


async def ok(api: Api, key: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    """The `data` of a GraphQL request that must succeed."""
    status, body = await api.graphql(key, query, variables)
    assert status == 200, body
    assert "errors" not in body, body
    return body["data"]


async def create_lead(api: Api, tenant: Tenant, name: str = "Test Bakery") -> str:
    data = await ok(api, tenant.write_key, CREATE_LEAD, {"name": name})
    lead_id: str = data["createLead"]["id"]
    return lead_id


async def move_lead(api: Api, tenant: Tenant, lead_id: str, stage_index: int) -> None:
    stage = str(tenant.stage_ids[stage_index])
    await ok(api, tenant.write_key, MOVE_LEAD, {"id": lead_id, "stage": stage})


async def history(api: Api, tenant: Tenant, lead_id: str) -> list[dict[str, Any]]:
    """The lead's events, oldest first."""
    data = await ok(api, tenant.read_key, HISTORY, {"id": lead_id})
    return list(reversed(data["lead"]["history"]))
