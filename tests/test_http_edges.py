"""Credentials and headers at the HTTP edge: unambiguous, bounded, answered in the envelope."""

from __future__ import annotations

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.support import Api, Tenant, error_codes


async def test_two_authorization_headers_are_refused_as_ambiguous(api: Api, tenant: Tenant) -> None:
    headers = CIMultiDict(
        [("Authorization", f"Bearer {tenant.read_key}"), ("Authorization", "Bearer lw_live_x")]
    )
    async with api.session.post(
        f"{api.base}/graphql", json={"query": "{ stages { id } }"}, headers=headers
    ) as resp:
        body = await resp.json()
        assert resp.status == 401
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "one Authorization header" in body["errors"][0]["message"]


async def test_two_authorization_headers_are_refused_on_rest_too(api: Api, tenant: Tenant) -> None:
    headers = CIMultiDict(
        [("Authorization", f"Bearer {tenant.read_key}")] * 2,
    )
    async with api.session.get(f"{api.base}/v1/leads", headers=headers) as resp:
        body = await resp.json()
        assert resp.status == 401
    assert body["error"]["code"] == "UNAUTHENTICATED"


async def test_a_16_kb_header_is_a_typed_json_error_not_a_plain_text_page(
    api: Api, tenant: Tenant
) -> None:
    headers = {"Authorization": f"Bearer {tenant.read_key}", "X-Padding": "a" * 16 * 1024}
    async with api.session.post(
        f"{api.base}/graphql", json={"query": "{ stages { id } }"}, headers=headers
    ) as resp:
        assert resp.status == 431
        assert resp.content_type == "application/json"
        assert resp.headers["X-Request-Id"]
        body = await resp.json()
    assert error_codes(body) == ["HEADERS_TOO_LARGE"]


async def test_many_headers_together_over_the_limit_are_refused_on_rest(
    api: Api, tenant: Tenant
) -> None:
    headers = {f"X-Padding-{i}": "a" * 4000 for i in range(10)}
    async with api.session.get(f"{api.base}/v1/leads", headers=headers) as resp:
        assert resp.status == 431
        body = await resp.json()
    assert body["error"]["code"] == "HEADERS_TOO_LARGE"
    assert body["meta"]["requestId"] == resp.headers["X-Request-Id"]


async def test_a_websocket_handshake_with_two_authorization_headers_is_refused(
    api: Api, tenant: Tenant
) -> None:
    headers = CIMultiDict([("Authorization", f"Bearer {tenant.read_key}")] * 2)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.session.ws_connect(
            f"{api.base}/graphql", protocols=["graphql-transport-ws"], headers=headers
        )
    assert refused.value.status == 401
