"""API keys at the edge: who gets in, who is turned away and how, and what is stored."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any, Final

import asyncpg
import pytest

from leadgate.db.statements import StatementCounter
from leadgate.services import auth
from tests.support import Api, Tenant, bearer, error_codes, fewest_statements, header

STAGES: Final = {"query": "{ stages { id } }"}
# How long a revoked key may keep working (the key cache's time to live is below it).
REVOCATION_DELAY: Final = 5.0


async def graphql_as(
    api: Api, headers: dict[str, str]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    return await api.rest("POST", "/graphql", None, json=STAGES, headers=headers)


async def rest_as(api: Api, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
    return await api.rest("GET", "/v1/leads?limit=1", None, headers=headers)


def assert_graphql_unauthenticated(
    status: int, body: dict[str, Any], headers: dict[str, str]
) -> None:
    assert status == 401
    assert body.get("data") is None
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["requestId"] == header(headers, "X-Request-Id")
    assert (header(headers, "WWW-Authenticate") or "").startswith("Bearer")


def assert_rest_unauthenticated(status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    assert status == 401
    assert set(body) == {"error", "meta"}
    assert body["error"]["code"] == "UNAUTHENTICATED"
    assert body["error"]["message"]
    assert body["meta"] == {"requestId": header(headers, "X-Request-Id")}
    assert (header(headers, "WWW-Authenticate") or "").startswith("Bearer")


# Authorization header values (None: no header), some built from the tenant's valid key.
REFUSED: Final[dict[str, Callable[[Tenant], str | None]]] = {
    "missing": lambda t: None,
    "empty": lambda t: "",
    "bearer-without-token": lambda t: "Bearer",
    "bearer-blank-token": lambda t: "Bearer    ",
    "basic": lambda t: "Basic dXNlcjpwYXNzd29yZA==",
    "basic-with-a-valid-key": lambda t: f"Basic {t.read_key}",
    "valid-key-without-scheme": lambda t: t.read_key,
    "short-key": lambda t: "Bearer lw_live_short",
    "foreign-prefix": lambda t: f"Bearer sk_live_{secrets.token_urlsafe(32)}",
    "unknown-environment": lambda t: f"Bearer lw_prod_{secrets.token_urlsafe(32)}",
    "bad-characters": lambda t: f"Bearer lw_live_{'!' * 43}",
    "well-formed-unknown": lambda t: f"Bearer lw_live_{secrets.token_urlsafe(32)}",
    "valid-key-with-extra": lambda t: f"Bearer {t.read_key}x",
    "valid-key-truncated": lambda t: f"Bearer {t.read_key[:-1]}",
}


def authorization(tenant: Tenant, case: str) -> dict[str, str]:
    value = REFUSED[case](tenant)
    return {} if value is None else {"Authorization": value}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_graphql_refuses_a_missing_or_invalid_key_with_401(
    api: Api, tenant: Tenant, case: str
) -> None:
    assert_graphql_unauthenticated(*await graphql_as(api, authorization(tenant, case)))


@pytest.mark.parametrize("case", list(REFUSED))
async def test_rest_refuses_a_missing_or_invalid_key_with_401(
    api: Api, tenant: Tenant, case: str
) -> None:
    assert_rest_unauthenticated(*await rest_as(api, authorization(tenant, case)))


async def test_a_revoked_key_is_refused_on_both_apis(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    created = await auth.create_api_key(pool, organization_id=tenant.id, can_write=True)
    await auth.revoke_api_key(pool, created.id)

    assert_graphql_unauthenticated(*await graphql_as(api, bearer(created.key)))
    assert_rest_unauthenticated(*await rest_as(api, bearer(created.key)))


async def test_a_key_stops_working_within_five_seconds_of_its_revocation(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    created = await auth.create_api_key(pool, organization_id=tenant.id, can_write=False)
    status, _, _ = await graphql_as(api, bearer(created.key))
    assert status == 200  # validated, and so cached

    await auth.revoke_api_key(pool, created.id)
    revoked_at = time.monotonic()
    while True:
        status, _, _ = await graphql_as(api, bearer(created.key))
        if status != 200 or time.monotonic() - revoked_at > REVOCATION_DELAY + 1:
            break
        await asyncio.sleep(0.1)
    refused_after = time.monotonic() - revoked_at

    assert status == 401
    assert refused_after <= REVOCATION_DELAY
    assert_rest_unauthenticated(*await rest_as(api, bearer(created.key)))


async def test_a_graphql_post_claiming_a_websocket_upgrade_still_needs_a_key(
    api: Api,
) -> None:
    response = await graphql_as(api, {"Upgrade": "websocket", "Connection": "Upgrade"})

    assert_graphql_unauthenticated(*response)


async def test_a_graphql_query_over_get_needs_a_key(api: Api) -> None:
    async with api.session.get(
        f"{api.base}/graphql", params=STAGES, headers={"Accept": "application/json"}
    ) as resp:
        status, body, headers = resp.status, await resp.json(), dict(resp.headers)

    assert_graphql_unauthenticated(status, body, headers)


@pytest.mark.parametrize("live", [True, False], ids=["lw_live", "lw_test"])
async def test_a_valid_live_or_test_key_is_accepted_on_both_apis(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, live: bool
) -> None:
    created = await auth.create_api_key(pool, organization_id=tenant.id, can_write=False, live=live)
    assert created.key.startswith("lw_live_" if live else "lw_test_")

    graphql_status, graphql_body, _ = await graphql_as(api, bearer(created.key))
    rest_status, rest_body, _ = await rest_as(api, bearer(created.key))

    assert graphql_status == 200
    assert len(graphql_body["data"]["stages"]) == 6
    assert rest_status == 200
    assert rest_body["meta"]["total"] == 30


async def test_a_read_only_key_can_read_both_apis(api: Api, tenant: Tenant) -> None:
    graphql_status, graphql_body = await api.graphql(
        tenant.read_key, "{ leads(limit: 1) { total } stages { id } advisors { id } }"
    )
    rest_status, rest_body, _ = await api.rest("GET", "/v1/leads", tenant.read_key)

    assert graphql_status == 200
    assert "errors" not in graphql_body
    assert graphql_body["data"]["leads"]["total"] == 30
    assert rest_status == 200
    assert rest_body["meta"]["total"] == 30


async def test_the_bearer_scheme_is_case_insensitive(api: Api, tenant: Tenant) -> None:
    status, _, _ = await graphql_as(api, {"Authorization": f"bearer {tenant.read_key}"})

    assert status == 200


async def test_a_warm_key_costs_no_statement_for_authentication(
    api: Api, tenant: Tenant, statements: StatementCounter
) -> None:
    await api.graphql(tenant.read_key, STAGES["query"])  # warms the key cache

    async def send() -> None:
        status, body = await api.graphql(tenant.read_key, STAGES["query"])
        assert status == 200
        assert len(body["data"]["stages"]) == 6

    assert await fewest_statements(statements, send) == 1


async def test_only_the_sha256_of_a_key_is_stored(pool: asyncpg.Pool, tenant: Tenant) -> None:
    created = await auth.create_api_key(pool, organization_id=tenant.id, can_write=True)

    row = await pool.fetchrow("SELECT * FROM api_keys WHERE id = $1", created.id)

    assert bytes(row["key_hash"]) == hashlib.sha256(created.key.encode()).digest()
    secret = created.key.removeprefix("lw_live_")
    for column, value in row.items():
        text = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
        assert created.key.encode() not in text, column
        assert secret.encode() not in text, column


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})],
)
async def test_health_endpoints_need_no_key(api: Api, path: str, expected: dict[str, str]) -> None:
    status, body, _ = await api.rest("GET", path, None)

    assert status == 200
    assert body == expected
