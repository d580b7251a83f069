"""GraphQL-over-HTTP: every MUST and SHOULD audit of the `graphql-http` package's server suite
passes (run with Node by tests/js/audit.mjs), and the cases it leaves out hold over plain HTTP:
media-type negotiation with its status codes, several operations without `operationName`,
subscriptions over POST, mutations over GET.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from tests.support import Api, Tenant, bearer, error_codes, make_tenant

JS_DIR: Final = Path(__file__).with_name("js")
AUDIT_SCRIPT: Final = JS_DIR / "audit.mjs"
NPM_DEADLINE: Final = 180.0
AUDIT_DEADLINE: Final = 60.0
GRAPHQL_RESPONSE: Final = "application/graphql-response+json"
JSON: Final = "application/json"

# The MUST and SHOULD audits of graphql-http 1.23.1 (pinned in tests/js/package.json), by id.
# Pinned here so each is its own test case at collection; a test below checks the list
# against the installed package, so an upgrade that adds one cannot slip by unrun.
REQUIRED_AUDITS: Final = {
    "22EB": "SHOULD accept application/graphql-response+json and match the content-type",
    "4655": "MUST accept application/json and match the content-type",
    "47DE": "SHOULD accept */* and use application/json for the content-type",
    "80D8": "SHOULD assume application/json content-type when accept is missing",
    "82A3": "MUST use utf-8 encoding when responding",
    "BF61": "MUST accept utf-8 encoded request",
    "78D5": "MUST assume utf-8 in request if encoding is unspecified",
    "2C94": "MUST accept POST requests",
    "9ABE": "SHOULD respond with 4xx status code if content-type is not supplied on POST requests",
    "03D4": "MUST accept application/json POST requests",
    "34A2": "SHOULD allow string {query} parameter when accepting "
    "application/graphql-response+json",
    "13EE": "MUST allow string {query} parameter when accepting application/json",
    "8161": "SHOULD allow string {operationName} parameter when accepting "
    "application/graphql-response+json",
    "B8B3": "MUST allow string {operationName} parameter when accepting application/json",
    "94B0": "SHOULD allow null {variables} parameter when accepting "
    "application/graphql-response+json",
    "0220": "MUST allow null {variables} parameter when accepting application/json",
    "94B1": "SHOULD allow null {operationName} parameter when accepting "
    "application/graphql-response+json",
    "0221": "MUST allow null {operationName} parameter when accepting application/json",
    "94B2": "SHOULD allow null {extensions} parameter when accepting "
    "application/graphql-response+json",
    "0222": "MUST allow null {extensions} parameter when accepting application/json",
    "2EA1": "SHOULD allow map {variables} parameter when accepting "
    "application/graphql-response+json",
    "28B9": "MUST allow map {variables} parameter when accepting application/json",
    "428F": "SHOULD allow map {extensions} parameter when accepting "
    "application/graphql-response+json",
    "1B7A": "MUST allow map {extensions} parameter when accepting application/json",
    "BCF8": "SHOULD use 400 status code on JSON parsing failure when accepting application/json",
    "B7N8": "SHOULD use 400 status code on JSON parsing failure when accepting "
    "application/graphql-response+json",
    "572B": "SHOULD use 200 status code on document parsing failure when accepting "
    "application/json",
    "FDE2": "SHOULD use 200 status code on document validation failure when accepting "
    "application/json",
    "7B9B": "SHOULD use a status code of 200 on variable coercion failure when accepting "
    "application/json",
    "865D": "SHOULD use 4xx or 5xx status codes on document parsing failure when accepting "
    "application/graphql-response+json",
    "556A": "SHOULD use 400 status code on document parsing failure when accepting "
    "application/graphql-response+json",
    "D586": "SHOULD not contain the data entry on document parsing failure when accepting "
    "application/graphql-response+json",
    "51FE": "SHOULD use 4xx or 5xx status codes on document validation failure when accepting "
    "application/graphql-response+json",
    "74FF": "SHOULD use 400 status code on document validation failure when accepting "
    "application/graphql-response+json",
    "5E5B": "SHOULD not contain the data entry on document validation failure when accepting "
    "application/graphql-response+json",
    "86EE": "SHOULD use a status code of 400 on variable coercion failure when accepting "
    "application/graphql-response+json",
}

TWO_OPERATIONS: Final = """
mutation First { createLead(input: {businessName: "Must not be created"}) { id } }
query Second { stages { id } }
"""
SUBSCRIPTION: Final = "subscription { leadStageChanged { eventId } }"


@pytest.fixture(scope="module")
async def node_packages() -> None:
    """tests/js's pinned npm packages, installed on first use as the subscription tests do."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "these tests need Node.js and npm on PATH"
    if (JS_DIR / "node_modules" / "graphql-http").is_dir():
        return
    process = await asyncio.create_subprocess_exec(
        npm,
        "install",
        "--no-audit",
        "--no-fund",
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), NPM_DEADLINE)
    assert process.returncode == 0, output.decode()


async def run_audit_script(*args: str, key: str = "") -> list[dict[str, Any]]:
    """tests/js/audit.mjs's JSON lines."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(AUDIT_SCRIPT),
        *args,
        env={**os.environ, "LEADGATE_API_KEY": key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), AUDIT_DEADLINE)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return [json.loads(line) for line in stdout.decode().splitlines()]


@pytest.fixture(scope="module")
async def tenant(pool: asyncpg.Pool) -> Tenant:
    """One organization for the module: the audits only read."""
    return await make_tenant(pool, leads=3)


@pytest.fixture(scope="module")
async def audit_results(
    node_packages: None, server: TestServer, tenant: Tenant
) -> dict[str, dict[str, Any]]:
    """Every audit of the suite, run once against the session's gateway, by id."""
    results = await run_audit_script(str(server.make_url("/graphql")), key=tenant.read_key)
    return {result["id"]: result for result in results}


async def test_the_pinned_audits_are_every_must_and_should_audit_of_the_package(
    node_packages: None,
) -> None:
    listed = await run_audit_script("--list")

    required = {a["id"]: a["name"] for a in listed if a["name"].startswith(("MUST", "SHOULD"))}
    assert required == REQUIRED_AUDITS


@pytest.mark.parametrize("audit_id", list(REQUIRED_AUDITS), ids=list(REQUIRED_AUDITS))
async def test_graphql_http_audit_passes(
    audit_results: dict[str, dict[str, Any]], audit_id: str
) -> None:
    result = audit_results[audit_id]

    assert result["status"] == "ok", (
        f"{result['name']}: {result['reason']}\n"
        f"request:  {json.dumps(result['request'])}\n"
        f"response: {json.dumps(result['response'])}"
    )


# ---- the same rules over plain HTTP ----------------------------------------------------------


async def post(
    api: Api,
    key: str,
    payload: dict[str, Any],
    *,
    accept: str | None = None,
) -> tuple[int, CIMultiDict[str], dict[str, Any]]:
    """POST a GraphQL request: status, headers and the decoded body."""
    headers = bearer(key)
    if accept is not None:
        headers["Accept"] = accept
    async with api.session.post(f"{api.base}/graphql", json=payload, headers=headers) as resp:
        return resp.status, CIMultiDict(resp.headers), json.loads(await resp.read())


async def get(
    api: Api, key: str, params: dict[str, str], *, accept: str
) -> tuple[int, CIMultiDict[str], dict[str, Any]]:
    headers = {**bearer(key), "Accept": accept}
    async with api.session.get(f"{api.base}/graphql", params=params, headers=headers) as resp:
        return resp.status, CIMultiDict(resp.headers), json.loads(await resp.read())


def content_type(headers: CIMultiDict[str]) -> str:
    return headers.get("Content-Type", "").split(";")[0].strip()


async def lead_count(pool: asyncpg.Pool, tenant: Tenant) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM leads WHERE organization_id = $1", tenant.id
    )
    return count


@pytest.mark.parametrize(("accept", "status"), [(JSON, 200), (GRAPHQL_RESPONSE, 400)])
async def test_two_operations_without_an_operation_name_is_an_error_and_runs_neither(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, accept: str, status: int
) -> None:
    before = await lead_count(pool, tenant)

    got, headers, body = await post(api, tenant.write_key, {"query": TWO_OPERATIONS}, accept=accept)

    assert (got, content_type(headers)) == (status, accept), body
    assert body.get("data") is None, body
    assert len(error_codes(body)) == 1, body
    assert error_codes(body)[0] in {"BAD_REQUEST", "VALIDATION_ERROR"}, body
    assert "operation" in body["errors"][0]["message"].lower(), body
    assert headers.get("X-Request-Id")
    # Not "the first one": the mutation named first must not have run.
    assert await lead_count(pool, tenant) == before


async def test_two_operations_with_an_operation_name_run_the_named_one(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    before = await lead_count(pool, tenant)

    status, _, body = await post(
        api, tenant.write_key, {"query": TWO_OPERATIONS, "operationName": "Second"}
    )

    assert status == 200, body
    assert "errors" not in body, body
    assert len(body["data"]["stages"]) == len(tenant.stage_ids)
    assert await lead_count(pool, tenant) == before


@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_a_subscription_over_post_is_a_400_saying_to_use_a_websocket(
    api: Api, tenant: Tenant, accept: str
) -> None:
    status, headers, body = await post(api, tenant.read_key, {"query": SUBSCRIPTION}, accept=accept)

    assert status == 400, body
    assert error_codes(body) == ["BAD_REQUEST"], body
    message = body["errors"][0]["message"].lower()
    assert "subscription" in message, body
    assert "websocket" in message, body
    assert headers.get("X-Request-Id")


@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_a_mutation_over_get_is_a_405_allowing_post(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, accept: str
) -> None:
    before = await lead_count(pool, tenant)
    query = 'mutation { createLead(input: {businessName: "Over GET"}) { id } }'

    status, headers, body = await get(api, tenant.write_key, {"query": query}, accept=accept)

    assert status == 405, body
    assert "POST" in [m.strip() for m in headers.get("Allow", "").split(",")], headers
    assert error_codes(body) == ["METHOD_NOT_ALLOWED"], body
    assert headers.get("X-Request-Id")
    assert await lead_count(pool, tenant) == before


async def test_a_query_over_get_is_answered(api: Api, tenant: Tenant) -> None:
    status, headers, body = await get(
        api, tenant.read_key, {"query": "{ stages { id } }"}, accept=JSON
    )

    assert (status, content_type(headers)) == (200, JSON), body
    assert len(body["data"]["stages"]) == len(tenant.stage_ids)


@pytest.mark.parametrize(
    "accept",
    [GRAPHQL_RESPONSE, f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", f"{JSON};q=0.5, {GRAPHQL_RESPONSE}"],
    ids=["alone", "preferred", "higher-q"],
)
async def test_accepting_graphql_response_json_is_answered_in_it(
    api: Api, tenant: Tenant, accept: str
) -> None:
    status, headers, body = await post(
        api, tenant.read_key, {"query": "{ stages { id } }"}, accept=accept
    )

    assert (status, content_type(headers)) == (200, GRAPHQL_RESPONSE), body
    assert len(body["data"]["stages"]) == len(tenant.stage_ids)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"query": "{ stages { id "}, "BAD_REQUEST"),
        ({"query": "{ stages { nope } }"}, "VALIDATION_ERROR"),
        (
            {"query": "query($l: Int!) { leads(limit: $l) { total } }", "variables": {"l": "x"}},
            "VALIDATION_ERROR",
        ),
    ],
    ids=["parse", "validation", "variable-coercion"],
)
async def test_a_request_error_under_graphql_response_json_is_a_400_without_data(
    api: Api, tenant: Tenant, payload: dict[str, Any], code: str
) -> None:
    status, headers, body = await post(api, tenant.read_key, payload, accept=GRAPHQL_RESPONSE)

    assert (status, content_type(headers)) == (400, GRAPHQL_RESPONSE), body
    assert "data" not in body, body
    assert error_codes(body) == [code], body
    assert headers.get("X-Request-Id")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"query": "{ stages { id "}, "BAD_REQUEST"),
        ({"query": "{ stages { nope } }"}, "VALIDATION_ERROR"),
        (
            {"query": "query($l: Int!) { leads(limit: $l) { total } }", "variables": {"l": "x"}},
            "VALIDATION_ERROR",
        ),
    ],
    ids=["parse", "validation", "variable-coercion"],
)
async def test_a_request_error_under_application_json_keeps_200_for_older_clients(
    api: Api, tenant: Tenant, payload: dict[str, Any], code: str
) -> None:
    status, headers, body = await post(api, tenant.read_key, payload, accept=JSON)

    assert (status, content_type(headers)) == (200, JSON), body
    assert body.get("data") is None, body
    assert error_codes(body) == [code], body


async def test_a_field_error_under_graphql_response_json_keeps_data_and_200(
    api: Api, tenant: Tenant
) -> None:
    # Execution began: the response has data (one field null), so the status is 2xx.
    status, headers, body = await post(
        api,
        tenant.read_key,
        {"query": '{ stages { id } lead(id: "not-a-uuid") { id } }'},
        accept=GRAPHQL_RESPONSE,
    )

    assert (status, content_type(headers)) == (200, GRAPHQL_RESPONSE), body
    assert len(body["data"]["stages"]) == len(tenant.stage_ids)
    assert body["data"]["lead"] is None
    assert error_codes(body) == ["NOT_FOUND"], body


async def test_no_accept_header_is_answered_in_application_json(api: Api, tenant: Tenant) -> None:
    async with aiohttp.ClientSession(skip_auto_headers=["Accept"]) as session:
        resp = await session.post(
            f"{api.base}/graphql",
            json={"query": "{ stages { id } }"},
            headers=bearer(tenant.read_key),
        )
        async with resp:
            assert (resp.status, resp.content_type) == (200, JSON), await resp.text()
