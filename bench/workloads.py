"""The workloads: their GraphQL documents, the bodies wrk sends, and the cases it runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from fixture import COMMON_TERM, NO_MATCH_TERM, Fixture
from loadgen import Case
from stack import Server

GATEWAY: Final = "gateway"
FLOOR: Final = "floor"
FLOOR_COPY: Final = "floor A/A copy"
FLOOR_MAINTAINED: Final = "floor, maintained total"
POSTGRAPHILE: Final = "PostGraphile 4"
POSTGRAPHILE5: Final = "PostGraphile 5"
# The gateway on asyncio's own event loop (LEADGATE_UVLOOP=0) beside the default, uvloop.
GATEWAY_ASYNCIO: Final = "gateway, asyncio loop"
LIST: Final = "list"
LIST_NO_TOTAL: Final = "list, no total"

# Every scalar field of Lead, its stage and its primary advisor: the list query.
LEAD_SELECTION: Final = (
    "id businessName contactFirstName contactLastName email phone industry monthlyRevenue "
    "requestedAmount source priority isDoNotCall dncReason dncAt tags customFields externalIds "
    "leadScore contactId lastContactedAt stageChangedAt convertedAt convertedAccountId "
    "convertedContactId importJobId createdBy createdAt updatedAt "
    "stage { id stageKey stageLabel color semanticSlot position } "
    "primaryAdvisor { id name email }"
)
# PostGraphile's names for the same fields (relations through the composite foreign keys).
POSTGRAPHILE_SELECTION: Final = LEAD_SELECTION.replace(
    "stage {", "pipelineStageByOrganizationIdAndStageId {"
).replace("primaryAdvisor {", "advisorByOrganizationIdAndPrimaryAdvisorId {")
# A list view with a search box: what a person scanning results sees.
SEARCH_SELECTION: Final = "id businessName email stage { stageKey } primaryAdvisor { name }"

CREATE_INPUT: Final = {
    "businessName": "Bench Bakery LLC",
    "contactFirstName": "Jane",
    "contactLastName": "Doe",
    "email": "jane.doe@benchbakery.example",
    "monthlyRevenue": "85000",
    "source": "API",
    "priority": "HIGH",
    "tags": ["bench"],
}


def list_query(limit: int, *, total: bool = True) -> dict[str, Any]:
    counted = "total " if total else ""
    return {"query": f"{{ leads(limit: {limit}) {{ {counted}nodes {{ {LEAD_SELECTION} }} }} }}"}


def postgraphile_list_query(org: str, *, total: bool = True) -> dict[str, Any]:
    """The list query in PostGraphile's schema (the same in versions 4 and 5)."""
    counted = "totalCount " if total else ""
    return {
        "query": "query ($org: UUID!) { allLeads(first: 20, orderBy: [CREATED_AT_DESC, ID_DESC], "
        f"condition: {{organizationId: $org}}) {{ {counted}nodes {{ {POSTGRAPHILE_SELECTION} }} "
        "} }",
        "variables": {"org": org},
    }


def lead_query(lead_id: str) -> dict[str, Any]:
    return {
        "query": f"query ($id: ID!) {{ lead(id: $id) {{ {LEAD_SELECTION} }} }}",
        "variables": {"id": lead_id},
    }


def search_query(term: str) -> dict[str, Any]:
    return {
        "query": "query ($search: String) { leads(limit: 20, search: $search) "
        f"{{ total nodes {{ {SEARCH_SELECTION} }} }} }}",
        "variables": {"search": term},
    }


def create_mutation(key: str, email: str = str(CREATE_INPUT["email"])) -> dict[str, Any]:
    return {
        "query": "mutation ($input: CreateLeadInput!, $key: String) { "
        "createLead(input: $input, idempotencyKey: $key) { id businessName stage { stageKey } } }",
        "variables": {"input": {**CREATE_INPUT, "email": email}, "key": key},
    }


def floor_create(key: str) -> dict[str, Any]:
    return {"input": CREATE_INPUT, "idempotencyKey": key}


def move_mutation(lead_id: str, stage_id: str) -> dict[str, Any]:
    return {
        "query": "mutation ($id: ID!, $stage: ID!) { moveLead(id: $id, stageId: $stage) "
        "{ id stage { stageKey } stageChangedAt } }",
        "variables": {"id": lead_id, "stage": stage_id},
    }


def dump(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def write_bodies(fixture: Fixture, body_dir: Path) -> dict[str, Path]:
    """The request bodies wrk sends, one file per workload."""
    body_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {
        "list.json": dump(list_query(20)),
        "list-no-total.json": dump(list_query(20, total=False)),
        "postgraphile-list.json": dump(postgraphile_list_query(fixture.org)),
        "postgraphile-list-no-total.json": dump(postgraphile_list_query(fixture.org, total=False)),
        "lead-lines.txt": "\n".join(dump(lead_query(i)) for i in fixture.lookup_ids),
        "search-common.json": dump(search_query(COMMON_TERM)),
        "search-rare.json": dump(search_query(fixture.rare_term)),
        "search-none.json": dump(search_query(NO_MATCH_TERM)),
        "create-template.json": dump(create_mutation("@KEY@")),
        # Every lead its own email: creates of one email queue on the duplicate check's lock.
        "create-distinct-template.json": dump(
            create_mutation("@KEY@", email="bench-@KEY@@benchbakery.example")
        ),
        "floor-create-template.json": dump(floor_create("@KEY@")),
        # Every lead to the first working stage, then every lead back: no move is a no-op.
        "move-lines.txt": "\n".join(
            [dump(move_mutation(i, fixture.stage_ids[1])) for i in fixture.move_ids]
            + [dump(move_mutation(i, fixture.stage_ids[2])) for i in fixture.move_ids]
        ),
    }
    paths = {}
    for name, text in files.items():
        path = body_dir / name
        path.write_text(text + "\n")
        paths[name] = path
    return paths


def list_case(
    target: str,
    url: str,
    bodies: dict[str, Path],
    authorization: str,
    connections: int,
    *,
    total: bool = True,
) -> Case:
    """The 20 newest leads with every field, their stage and advisor, and the total (unless
    `total` is false)."""
    body = bodies["list.json" if total else "list-no-total.json"]
    return Case(
        LIST if total else LIST_NO_TOTAL,
        target,
        url,
        "static.lua",
        (str(body), authorization),
        connections,
    )


def create_case(
    target: str,
    url: str,
    bodies: dict[str, Path],
    authorization: str,
    connections: int,
    *,
    template: str = "create-template.json",
) -> Case:
    """createLead with a fresh idempotency key per request (and email, with the distinct
    template)."""
    return Case(
        "createLead",
        target,
        url,
        "dynamic.lua",
        ("counter", str(bodies[template]), authorization),
        connections,
        unique_suffix=True,
    )


def build_cases(
    servers: dict[str, Server], fixture: Fixture, bodies: dict[str, Path], connections: int
) -> tuple[list[list[Case]], list[list[Case]]]:
    """The reads and the writes, each in groups whose targets are interleaved in a round."""
    gql = servers[GATEWAY].base_url + "/graphql"
    auth = f"Bearer {fixture.key}"
    write_auth = f"Bearer {fixture.write_key}"
    c = connections

    def static(workload: str, target: str, url: str, body: str, a: str, conns: int = c) -> Case:
        return Case(workload, target, url, "static.lua", (str(bodies[body]), a), conns)

    def postgraphile(target: str, *, total: bool) -> Case:
        # No tenant authentication: the organization is the query's condition.
        return static(
            LIST if total else LIST_NO_TOTAL,
            target,
            servers[target].base_url + "/graphql",
            "postgraphile-list.json" if total else "postgraphile-list-no-total.json",
            "",
        )

    asyncio_gql = servers[GATEWAY_ASYNCIO].base_url + "/graphql"
    listing = [
        list_case(GATEWAY, gql, bodies, auth, c),
        list_case(GATEWAY_ASYNCIO, asyncio_gql, bodies, auth, c),
        list_case(FLOOR, servers[FLOOR].base_url + "/graphql", bodies, auth, c),
        list_case(FLOOR_COPY, servers[FLOOR_COPY].base_url + "/graphql", bodies, auth, c),
        *(
            [
                list_case(
                    FLOOR_MAINTAINED,
                    servers[FLOOR].base_url + "/graphql-maintained-total",
                    bodies,
                    auth,
                    c,
                )
            ]
            if fixture.maintained_total
            else []
        ),
        postgraphile(POSTGRAPHILE, total=True),
        postgraphile(POSTGRAPHILE5, total=True),
    ]
    listing_no_total = [
        list_case(GATEWAY, gql, bodies, auth, c, total=False),
        list_case(GATEWAY_ASYNCIO, asyncio_gql, bodies, auth, c, total=False),
        list_case(
            FLOOR, servers[FLOOR].base_url + "/graphql-no-total", bodies, auth, c, total=False
        ),
        postgraphile(POSTGRAPHILE, total=False),
        postgraphile(POSTGRAPHILE5, total=False),
    ]
    lookup = [
        Case(
            "lead(id)",
            GATEWAY,
            gql,
            "dynamic.lua",
            ("lines", str(bodies["lead-lines.txt"]), auth),
            n,
        )
        for n in (c, 1)
    ]
    search = [
        static(f"search {kind}", GATEWAY, gql, f"search-{kind}.json", auth, n)
        for n in (c, 1)
        for kind in ("common", "rare", "none")
    ]
    create = [
        create_case(GATEWAY, gql, bodies, write_auth, c),
        Case(
            "createLead",
            FLOOR,
            servers[FLOOR].base_url + "/create",
            "dynamic.lua",
            ("counter", str(bodies["floor-create-template.json"]), auth),
            c,
            unique_suffix=True,
        ),
    ]
    move = [
        Case(
            "moveLead",
            GATEWAY,
            gql,
            "dynamic.lua",
            ("lines", str(bodies["move-lines.txt"]), auth),
            c,
            before="reset-moves",
        )
    ]
    return [listing, listing_no_total, lookup, search], [create, move]
