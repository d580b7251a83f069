from __future__ import annotations

from tests.support import Api, Tenant


async def test_leads_query_returns_a_page_with_stages(api: Api, tenant: Tenant) -> None:
    status, body = await api.graphql(
        tenant.read_key,
        "{ leads(limit: 5) { total nodes { businessName stage { stageKey } } } }",
    )
    assert status == 200
    assert body["data"]["leads"]["total"] == 30
    assert len(body["data"]["leads"]["nodes"]) == 5
