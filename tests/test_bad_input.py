"""Bad input to the read APIs is answered with the right code, never with a 500."""

from __future__ import annotations

from typing import Any, Final

import asyncpg
import orjson
import pytest

from tests.support import Api, Tenant, bearer, error_codes, make_tenant

LEADS: Final = """
query Leads($page: Int! = 1, $limit: Int! = 20, $search: String, $filter: LeadFilter) {
  leads(page: $page, limit: $limit, search: $search, filter: $filter) {
    total page limit hasMore nodes { id businessName }
  }
}
"""

# Every tsquery operator and quoting character, alone and combined, non-ASCII text, and
# 10 KB long inputs of words, of one word and of operators.
SEARCHES: Final = {
    "ampersand": "&",
    "pipe": "|",
    "bang": "!",
    "open-paren": "(",
    "close-paren": ")",
    "colon": ":",
    "star": "*",
    "quote": "'",
    "backslash": "\\",
    "double-quote": '"',
    "followed-by": "<->",
    "operators": "a & b | !c",
    "prefix-syntax": "acme:* & (x | y)",
    "unbalanced-quote": "'acme' & '",
    "apostrophe-name": "O'Neil",
    "quoted-phrase": 'say "hello"',
    "backslash-word": "back\\slash",
    "umlaut": "Müller",
    "kanji": "東京",
    "emoji": "🚀🔥",
    "nul": "\x00",
    "like-wildcards": "%_",
    "10kb-one-word": "x" * 10_240,
    "10kb-of-words": "ab " * 3_414,
    "10kb-of-operators": "&|!():*'\\\"" * 1_024,
}


@pytest.fixture(scope="module")
async def tenant(pool: asyncpg.Pool) -> Tenant:
    """One organization for the whole module: nothing here writes, so it can be shared."""
    return await make_tenant(pool, leads=30)


def field_names(error: dict[str, Any]) -> list[str]:
    return [f["field"] for f in error["extensions"].get("fields", [])]


async def post_graphql_body(api: Api, key: str, body: str) -> tuple[int, str, str]:
    """POST a raw body to /graphql: status, content type and text."""
    headers = {**bearer(key), "Content-Type": "application/json"}
    async with api.session.post(f"{api.base}/graphql", data=body, headers=headers) as resp:
        return resp.status, resp.content_type, await resp.text()


async def get_leads_raw(api: Api, key: str, params: dict[str, str]) -> tuple[int, str, str]:
    """GET /v1/leads with query parameters: status, content type and text."""
    async with api.session.get(f"{api.base}/v1/leads", params=params, headers=bearer(key)) as resp:
        return resp.status, resp.content_type, await resp.text()


def assert_valid_page(page: dict[str, Any]) -> None:
    assert isinstance(page["total"], int)
    assert page["total"] >= 0
    assert page["page"] == 1
    assert page["limit"] == 20
    assert page["hasMore"] is (page["total"] > 20)


# ---- GraphQL: paging arguments ---------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 101, -1])
async def test_graphql_limit_out_of_range_is_a_validation_error_naming_limit(
    api: Api, tenant: Tenant, limit: int
) -> None:
    status, body = await api.graphql(tenant.read_key, LEADS, {"limit": limit})

    assert status == 200
    assert body.get("data") is None
    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert field_names(body["errors"][0]) == ["limit"]


@pytest.mark.parametrize("page", [0, -1, 1_000_001])
async def test_graphql_page_out_of_range_is_a_validation_error_naming_page(
    api: Api, tenant: Tenant, page: int
) -> None:
    status, body = await api.graphql(tenant.read_key, LEADS, {"page": page})

    assert status == 200
    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert field_names(body["errors"][0]) == ["page"]


async def test_graphql_limit_and_page_both_out_of_range_name_both(api: Api, tenant: Tenant) -> None:
    _, body = await api.graphql(tenant.read_key, LEADS, {"page": 0, "limit": 0})

    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert sorted(field_names(body["errors"][0])) == ["limit", "page"]


@pytest.mark.parametrize(
    "query",
    [
        '{ leads(limit: "abc") { total } }',
        "{ leads(limit: 1.5) { total } }",
        "{ leads(page: 3000000000) { total } }",
    ],
    ids=["string", "float", "beyond-32-bits"],
)
async def test_graphql_paging_literal_that_is_not_a_32_bit_integer_is_a_validation_error(
    api: Api, tenant: Tenant, query: str
) -> None:
    # The document parses but does not validate: understood and refused, like a REST body
    # failing validation (VALIDATION_ERROR); only what does not parse is a BAD_REQUEST.
    status, body = await api.graphql(tenant.read_key, query)

    assert status in (200, 400)
    assert body.get("data") is None
    assert error_codes(body) == ["VALIDATION_ERROR"]


async def test_graphql_limit_variable_that_is_not_an_integer_is_a_client_error(
    api: Api, tenant: Tenant
) -> None:
    status, body = await api.graphql(tenant.read_key, LEADS, {"limit": "abc"})

    assert status in (200, 400, 422)
    assert body.get("data") is None
    assert error_codes(body) == ["VALIDATION_ERROR"]


@pytest.mark.parametrize("field", ["stageId", "advisorId"])
async def test_graphql_malformed_filter_id_is_a_validation_error_naming_it(
    api: Api, tenant: Tenant, field: str
) -> None:
    _, body = await api.graphql(tenant.read_key, LEADS, {"filter": {field: "not-a-uuid"}})

    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert field_names(body["errors"][0]) == [f"filter.{field}"]


async def test_graphql_filter_tag_with_a_nul_character_is_not_an_internal_error(
    api: Api, tenant: Tenant
) -> None:
    # PostgreSQL text cannot hold NUL: no tag can match, and the request must not crash.
    status, body = await api.graphql(tenant.read_key, LEADS, {"filter": {"tag": "a\x00b"}})

    assert status == 200
    assert "INTERNAL" not in error_codes(body)
    if body.get("data") is not None:
        assert body["data"]["leads"]["total"] == 0
    else:
        assert error_codes(body) == ["VALIDATION_ERROR"]


# ---- GraphQL: documents and bodies -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["{not json", "", '{"query": ', "{'query': '{ stages { id } }'}"],
    ids=["garbage", "empty", "truncated", "single-quoted"],
)
async def test_graphql_malformed_json_body_is_a_400_bad_request(
    api: Api, tenant: Tenant, body: str
) -> None:
    status, content_type, text = await post_graphql_body(api, tenant.read_key, body)

    assert (status, content_type) == (400, "application/json"), text
    answer = orjson.loads(text)
    assert answer.get("data") is None
    assert error_codes(answer) == ["BAD_REQUEST"]
    assert answer["errors"][0]["message"]
    assert answer["errors"][0]["extensions"]["requestId"]


@pytest.mark.parametrize(
    "body", ['"a string"', "1", "null", "true"], ids=["string", "number", "null", "boolean"]
)
async def test_graphql_json_body_that_is_not_an_object_is_a_400_bad_request(
    api: Api, tenant: Tenant, body: str
) -> None:
    status, content_type, text = await post_graphql_body(api, tenant.read_key, body)

    assert (status, content_type) == (400, "application/json"), text
    assert error_codes(orjson.loads(text)) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    "body",
    [
        {"variables": {}},
        {"query": 5},
        {"query": "{ stages { id } }", "variables": [1]},
    ],
    ids=["no-query", "query-not-a-string", "variables-not-an-object"],
)
async def test_graphql_request_of_the_wrong_shape_is_a_400_bad_request(
    api: Api, tenant: Tenant, body: dict[str, Any]
) -> None:
    status, content_type, text = await post_graphql_body(
        api, tenant.read_key, orjson.dumps(body).decode()
    )

    assert (status, content_type) == (400, "application/json"), text
    assert error_codes(orjson.loads(text)) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    "query",
    ["{ leads { total ", "query {", "}}}", "{ leads(limit: ) { total } }", "mutation"],
)
async def test_graphql_document_that_does_not_parse_is_a_bad_request(
    api: Api, tenant: Tenant, query: str
) -> None:
    status, body = await api.graphql(tenant.read_key, query)

    assert status in (200, 400)
    assert body.get("data") is None
    assert error_codes(body) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    "query",
    [
        "{ leads { total nope } }",
        "{ nosuch }",
        "{ leads(bogus: 1) { total } }",
        "{ leads }",
        "{ lead { id } }",
        "query($x: Int) { stages { id } }",
    ],
    ids=[
        "unknown-field",
        "unknown-root-field",
        "unknown-argument",
        "missing-selection",
        "missing-required-argument",
        "unused-variable",
    ],
)
async def test_graphql_document_that_does_not_validate_is_a_validation_error(
    api: Api, tenant: Tenant, query: str
) -> None:
    status, body = await api.graphql(tenant.read_key, query)

    assert status in (200, 400)
    assert body.get("data") is None
    assert error_codes(body)
    assert set(error_codes(body)) == {"VALIDATION_ERROR"}


@pytest.mark.parametrize("search", list(SEARCHES.values()), ids=list(SEARCHES))
async def test_graphql_any_search_text_returns_a_valid_page(
    api: Api, tenant: Tenant, search: str
) -> None:
    status, body = await api.graphql(tenant.read_key, LEADS, {"search": search})

    assert status == 200
    assert "errors" not in body, body["errors"]
    assert_valid_page(body["data"]["leads"])


# ---- REST ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"page": "0"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "99999999999999999999999"}, "page"),
    ],
    ids=[
        "limit-0",
        "limit-101",
        "limit-negative",
        "limit-abc",
        "limit-float",
        "limit-empty",
        "page-0",
        "page-abc",
        "page-huge",
    ],
)
async def test_rest_bad_paging_parameter_is_a_422_naming_it(
    api: Api, tenant: Tenant, params: dict[str, str], field: str
) -> None:
    status, content_type, text = await get_leads_raw(api, tenant.read_key, params)

    assert (status, content_type) == (422, "application/json"), text
    body = orjson.loads(text)
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert [f["field"] for f in body["error"]["fields"]] == [field]
    assert all(f["message"] for f in body["error"]["fields"])
    assert body["meta"]["requestId"]


async def test_rest_bad_page_and_limit_are_both_named(api: Api, tenant: Tenant) -> None:
    status, _, text = await get_leads_raw(api, tenant.read_key, {"page": "0", "limit": "999"})

    assert status == 422
    fields = orjson.loads(text)["error"]["fields"]
    assert sorted(f["field"] for f in fields) == ["limit", "page"]


@pytest.mark.parametrize("search", list(SEARCHES.values()), ids=list(SEARCHES))
async def test_rest_any_search_text_returns_a_valid_page(
    api: Api, tenant: Tenant, search: str
) -> None:
    status, content_type, text = await get_leads_raw(api, tenant.read_key, {"search": search})

    assert (status, content_type) == (200, "application/json"), text[:200]
    body = orjson.loads(text)
    assert_valid_page(body["meta"])
    assert len(body["data"]) <= 20
