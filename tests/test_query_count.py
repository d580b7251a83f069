from __future__ import annotations

from tests.support import Api, Tenant, bearer
import asyncpg


async def raw(api, method, path, key, data):
    async with api.session.request(method, api.base + path, data=data, headers={**bearer(key), "Content-Type": "application/json"}) as r:
        return r.status, r.headers.get("Content-Type"), (await r.text())[:300]


async def test_explore(api: Api, tenant: Tenant, pool: asyncpg.Pool) -> None:
    for data in ['[1,2]', '{"query": 5}', '{"variables": {}}', '"x"', '1', 'null', '', '{"query": "{ stages { id } }", "variables": [1]}', '{"query": "{ stages { id } }", "variables": "x"}', '{"query": "{ stages { id } }", "operationName": 5}', '{"query": "{ stages { id } }", "extensions": 5}']:
        print(repr(data), await raw(api, "POST", "/graphql", tenant.read_key, data))
    print(await pool.fetch("select to_tsvector('simple', '東京 Ramen Müller-Lüdenscheidt 🚀 Café'), current_setting('lc_ctype'), version()"))
    s, body = await api.graphql(tenant.read_key, 'query($s: String) { leads(search: $s) { total } }', {"s": "Müller"})
    print(body, await pool.fetchval("select count(*) from leads where organization_id=$1 and contact_last_name='Müller'", tenant.id))
    s, body = await api.graphql(tenant.read_key, '{ leads(page: 3000000000) { total } }')
    print(body)
    print(await raw(api, "DELETE", "/v1/leads", tenant.read_key, None))
    print(await raw(api, "GET", "/v1/leads?limit=%00", tenant.read_key, None))
    print(await raw(api, "GET", "/v1/leads?search=%00%ff", tenant.read_key, None))
    print(await raw(api, "GET", "/v1/leads/%00", tenant.read_key, None))
