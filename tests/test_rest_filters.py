"""GET /v1/leads: GraphQL's LeadFilter criteria as query parameters, and nothing else.

Each filter returns exactly the matching leads (newest first, counted in meta.total), filters
combine, REST and GraphQL agree, and an unknown, repeated or malformed parameter is a 422
VALIDATION_ERROR naming it rather than a silently wider page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode
from uuid import UUID

import asyncpg
import pytest

from tests.support import Api, Tenant, make_tenant


@dataclass(frozen=True)
class Made:
    """A lead as created, with what the filters look at."""

    id: str
    stage: int
    priority: str
    source: str
    tags: tuple[str, ...]
    advisor: int | None


# (stage index, priority, source, tags, advisor index), created in this order.
LEADS: Final = [
    (0, "high", "api", ("vip",), 0),
    (1, "high", "referral", ("vip", "rush"), 1),
    (1, "low", "api", (), None),
    (0, "urgent", "web_form", ("rush",), 0),
    (2, "normal", "manual", ("vip",), 1),
    (1, "high", "api", ("rush",), 0),
]

LEADS_QUERY: Final = """
query($filter: LeadFilter) { leads(limit: 100, filter: $filter) { total nodes { id } } }
"""


@dataclass(frozen=True)
class Pipeline:
    tenant: Tenant
    leads: list[Made]  # newest first, as the API lists them

    def stage(self, index: int) -> str:
        return str(self.tenant.stage_ids[index])

    def advisor(self, index: int) -> str:
        return str(self.tenant.advisor_ids[index])

    def matching(self, holds: Callable[[Made], bool]) -> list[str]:
        return [lead.id for lead in self.leads if holds(lead)]


@pytest.fixture
async def pipeline(api: Api, pool: asyncpg.Pool) -> Pipeline:
    """A fresh organization with the leads of LEADS, made over REST."""
    tenant = await make_tenant(pool, name="Filter Lending")
    made: list[Made] = []
    for stage, priority, source, tags, advisor in LEADS:
        body: dict[str, Any] = {
            "businessName": f"Lead {len(made)}",
            "stageId": str(tenant.stage_ids[stage]),
            "priority": priority,
            "source": source,
            "tags": list(tags),
        }
        if advisor is not None:
            body["assignToAdvisorId"] = str(tenant.advisor_ids[advisor])
        status, answer, _ = await api.rest("POST", "/v1/leads", tenant.write_key, json=body)
        assert status == 201, answer
        made.append(Made(answer["data"]["id"], stage, priority, source, tags, advisor))
    return Pipeline(tenant=tenant, leads=made[::-1])


async def listed(api: Api, key: str, params: dict[str, str]) -> tuple[list[str], dict[str, Any]]:
    status, body, _ = await api.rest("GET", f"/v1/leads?{urlencode(params)}", key)
    assert status == 200, body
    return [item["id"] for item in body["data"]], body["meta"]


async def refused(api: Api, key: str, query: str) -> dict[str, str]:
    """The 422's field → message, for a raw query string."""
    status, body, _ = await api.rest("GET", f"/v1/leads?{query}", key)
    assert status == 422, body
    assert body["error"]["code"] == "VALIDATION_ERROR", body
    return {f["field"]: f["message"] for f in body["error"]["fields"]}


# --- filters ------------------------------------------------------------------------------

FILTERS: Final[dict[str, Callable[[Pipeline], tuple[str, Callable[[Made], bool]]]]] = {
    "stageId": lambda p: (p.stage(1), lambda m: m.stage == 1),
    "priority": lambda _: ("high", lambda m: m.priority == "high"),
    "advisorId": lambda p: (p.advisor(0), lambda m: m.advisor == 0),
    "tag": lambda _: ("vip", lambda m: "vip" in m.tags),
    "source": lambda _: ("api", lambda m: m.source == "api"),
}


@pytest.mark.parametrize("name", sorted(FILTERS))
async def test_each_filter_returns_exactly_the_matching_leads_newest_first(
    api: Api, pipeline: Pipeline, name: str
) -> None:
    value, holds = FILTERS[name](pipeline)

    ids, meta = await listed(api, pipeline.tenant.read_key, {name: value, "limit": "100"})

    expected = pipeline.matching(holds)
    assert 0 < len(expected) < len(pipeline.leads)  # the filter really narrows
    assert ids == expected
    assert meta["total"] == len(expected)


async def test_filters_combine_and_every_criterion_must_hold(api: Api, pipeline: Pipeline) -> None:
    params = {"stageId": pipeline.stage(1), "priority": "high", "tag": "rush", "source": "api"}

    ids, meta = await listed(api, pipeline.tenant.read_key, params)

    assert ids == pipeline.matching(
        lambda m: m.stage == 1 and m.priority == "high" and "rush" in m.tags and m.source == "api"
    )
    assert meta["total"] == len(ids) == 1


async def test_a_filtered_list_pages_with_the_filtered_total(api: Api, pipeline: Pipeline) -> None:
    matching = pipeline.matching(lambda m: m.priority == "high")

    first, meta = await listed(api, pipeline.tenant.read_key, {"priority": "high", "limit": "2"})
    second, _ = await listed(
        api, pipeline.tenant.read_key, {"priority": "high", "limit": "2", "page": "2"}
    )

    assert (meta["total"], meta["hasMore"]) == (len(matching), True)
    assert first + second == matching


async def test_rest_filters_return_the_same_leads_as_the_graphql_filter(
    api: Api, pipeline: Pipeline
) -> None:
    rest = {"stageId": pipeline.stage(1), "advisorId": pipeline.advisor(0), "priority": "high"}
    graphql = {"stageId": pipeline.stage(1), "advisorId": pipeline.advisor(0), "priority": "HIGH"}

    ids, meta = await listed(api, pipeline.tenant.read_key, {**rest, "limit": "100"})
    status, body = await api.graphql(pipeline.tenant.read_key, LEADS_QUERY, {"filter": graphql})

    assert status == 200 and "errors" not in body, body
    assert ids == [node["id"] for node in body["data"]["leads"]["nodes"]]
    assert meta["total"] == body["data"]["leads"]["total"]
    assert ids  # stage 1, advisor 0, high: the last lead made


async def test_another_organizations_stage_matches_none_of_yours(
    api: Api, pipeline: Pipeline, other_tenant: Tenant
) -> None:
    ids, meta = await listed(
        api, pipeline.tenant.read_key, {"stageId": str(other_tenant.stage_ids[1])}
    )

    assert (ids, meta["total"]) == ([], 0)


# --- strictness ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["stage", "stage_id", "foo", "Priority", "filter[tag]"])
async def test_an_unknown_query_parameter_is_a_validation_error_naming_it(
    api: Api, tenant: Tenant, name: str
) -> None:
    fields = await refused(api, tenant.read_key, urlencode({name: "x", "limit": "5"}))

    assert set(fields) == {name}
    assert "is not a parameter" in fields[name]


async def test_a_repeated_parameter_is_a_validation_error(api: Api, tenant: Tenant) -> None:
    fields = await refused(api, tenant.read_key, "tag=a&tag=b")

    assert set(fields) == {"tag"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("stageId=not-a-uuid", "stageId"),
        ("advisorId=123", "advisorId"),
        ("stageId=", "stageId"),
        ("priority=HIGH", "priority"),
        ("priority=bogus", "priority"),
        ("source=web-form", "source"),
        ("source=", "source"),
        ("tag=", "tag"),
        ("tag=a%00b", "tag"),
        ("tag=a%07", "tag"),
    ],
)
async def test_a_malformed_filter_value_is_a_validation_error_naming_the_parameter(
    api: Api, tenant: Tenant, query: str, field: str
) -> None:
    assert set(await refused(api, tenant.read_key, query)) == {field}


async def test_every_bad_parameter_is_reported_together(api: Api, tenant: Tenant) -> None:
    fields = await refused(
        api, tenant.read_key, f"foo=1&priority=x&limit=0&advisorId=nope&stageId={UUID(int=1)}"
    )

    assert set(fields) == {"foo", "priority", "limit", "advisorId"}
