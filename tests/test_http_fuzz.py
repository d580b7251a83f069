"""No untyped 500, ever, on any route: whatever a client sends at the raw HTTP layer (bytes for
bodies, headers and query strings, methods and paths), the answer is typed.

The invariant every response here must hold (`assert_typed`): the status is below 500, the
response carries `X-Request-Id`, the body is JSON in its API's envelope (GraphQL:
`{"errors": [{"extensions": {"code"}}]}`; REST under /v1: `{"error": {"code"}, "meta":
{"requestId"}}`), and every code is one of DESIGN §4's, INTERNAL excluded. Routes of neither
API (/healthz, unknown paths) may use either envelope.

Each named hostile input has its own example test first, so a failure reads as the case it is;
then hypothesis properties throw arbitrary input at the same routes (bounded: this file runs in
well under a minute). Requests whose header bytes aiohttp's client would refuse to send go
over a raw socket (`raw_exchange`).
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote_from_bytes

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from leadgate.domain.errors import AppError
from tests.support import Tenant, bearer, make_tenant

# DESIGN §4's table, every code.
DESIGN_CODES: Final = frozenset(
    {
        "BAD_REQUEST",
        "VALIDATION_ERROR",
        "QUERY_TOO_COMPLEX",
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "NOT_FOUND",
        "IDEMPOTENCY_KEY_IN_USE",
        "CONFLICT",
        "DUPLICATE_LEAD",
        "PAYLOAD_TOO_LARGE",
        "IDEMPOTENCY_KEY_REUSED",
        "RATE_LIMITED",
        "PERSISTED_QUERY_NOT_FOUND",
        "PERSISTED_QUERY_REQUIRED",
        "SERVICE_UNAVAILABLE",
        "SUBSCRIBER_TOO_SLOW",
        "INTERNAL",
    }
)


def subclasses(cls: type[AppError]) -> list[type[AppError]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in subclasses(direct))]


# The error tree of domain/errors.py holds every code (DESIGN §4 drawn in its docstring). A
# client may be told any of them but INTERNAL, a bug by definition.
TYPED_CODES: Final = (DESIGN_CODES | {c.code for c in subclasses(AppError)}) - {"INTERNAL"}
JSON_TYPES: Final = frozenset({"application/json", "application/graphql-response+json"})
TEN_MIB: Final = 10 * 1024 * 1024
EXCHANGE_DEADLINE: Final = 15.0
LEADS: Final = """
query Leads($page: Int! = 1, $limit: Int! = 20, $search: String, $filter: LeadFilter) {
  leads(page: $page, limit: $limit, search: $search, filter: $filter) { total nodes { id } }
}
"""
CREATE: Final = "mutation($input: CreateLeadInput!) { createLead(input: $input) { id } }"
STAGES: Final = "{ stages { id } }"
FUZZ: Final = settings(
    max_examples=200,
    deadline=None,
    # The module's tenant is shared by the examples: nothing here depends on its counts.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)


@dataclass(frozen=True)
class Reply:
    method: str
    path: str
    status: int
    headers: CIMultiDict[str]
    body: bytes
    # What was sent besides the method and path (headers of note, the start of the body), so
    # a failing example reads in full from its assertion message.
    sent: str = ""

    def __str__(self) -> str:
        shown = self.body[:300].decode("utf-8", "replace")
        return (
            f"{self.method} {self.path} [{self.sent}] → {self.status} "
            f"{self.headers.get('Content-Type', '(no content type)')}: {shown!r}"
        )


@dataclass(frozen=True)
class Target:
    """Where requests go: the session's gateway, and a tenant with one lead."""

    server: TestServer
    session: aiohttp.ClientSession
    tenant: Tenant
    lead_id: str

    @property
    def key(self) -> str:
        return self.tenant.write_key

    def path(self, template: str) -> str:
        return template.replace("{id}", self.lead_id)


@pytest.fixture(scope="module")
async def target(server: TestServer, pool: asyncpg.Pool) -> Any:
    tenant = await make_tenant(pool, leads=2)
    lead_id = await pool.fetchval(
        "SELECT id::text FROM leads WHERE organization_id = $1 LIMIT 1", tenant.id
    )
    # One connection per request: a hostile request may leave a connection unusable.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Target(server=server, session=session, tenant=tenant, lead_id=lead_id)


async def send(
    target: Target,
    method: str,
    path: str,
    *,
    body: bytes | io.BytesIO | None = None,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    key: str | None = "write",
) -> Reply:
    """One request through aiohttp's client; `path` may carry an encoded query string."""
    all_headers = {**(bearer(target.key) if key == "write" else {}), **(headers or {})}
    skip = []
    if content_type is None:
        skip.append("Content-Type")
    else:
        all_headers["Content-Type"] = content_type
    url = target.server.make_url(URL(path, encoded=True))
    async with target.session.request(
        method,
        url,
        data=body,
        headers=all_headers,
        skip_auto_headers=skip,
        timeout=aiohttp.ClientTimeout(total=EXCHANGE_DEADLINE),
    ) as resp:
        shown = body.getvalue()[:40] if isinstance(body, io.BytesIO) else preview(body or b"")
        sent = f"Content-Type: {content_type}; {headers or {}}; body {shown!r}"
        return Reply(method, path, resp.status, CIMultiDict(resp.headers), await resp.read(), sent)


async def raw_exchange(
    target: Target, method: str, path: str, header_lines: list[bytes], body: bytes = b""
) -> Reply:
    """One request written byte for byte on a socket, answered on a closing connection."""
    head = [
        f"{method} {path} HTTP/1.1".encode(),
        b"Host: 127.0.0.1",
        b"Connection: close",
        *header_lines,
    ]
    if body:
        head.append(f"Content-Length: {len(body)}".encode())
    reader, writer = await asyncio.open_connection(target.server.host, target.server.port)
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), EXCHANGE_DEADLINE)
    finally:
        writer.close()
        await writer.wait_closed()
    sent = f"headers {header_lines!r}; body {preview(body)!r}"
    return parse_reply(method, path, data, sent)


def preview(body: bytes) -> bytes:
    """The start and the end of a body (where the variables of a GraphQL request are)."""
    return body if len(body) <= 400 else body[:200] + b" ... " + body[-200:]


def parse_reply(method: str, path: str, data: bytes, sent: str) -> Reply:
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith(("HTTP/1.1 ", "HTTP/1.0 ")), f"no HTTP response: {data[:200]!r}"
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        payload = dechunk(payload)
    return Reply(method, path, int(status_line.split()[1]), headers, payload, sent)


def dechunk(data: bytes) -> bytes:
    body = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body, data = body + data[:size], data[size + 2 :]
    return body


def api_of(path: str) -> str | None:
    """The API whose envelope a path answers in; None for paths of neither."""
    route = path.split("?")[0]
    if route == "/v1" or route.startswith("/v1/"):
        return "rest"
    if route == "/graphql" or route.startswith("/graphql/"):
        return "graphql"
    return None


def graphql_codes(body: Any) -> list[Any] | None:
    """The codes of a GraphQL error envelope, or None when the body is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return None
    errors = body["errors"]
    if not errors or not all(isinstance(e, dict) for e in errors):
        return None
    return [(e.get("extensions") or {}).get("code") for e in errors]


def rest_codes(body: Any) -> list[Any] | None:
    """The code of a REST error envelope (as a list), or None when the body is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None
    if not isinstance(body.get("meta"), dict) or not body["meta"].get("requestId"):
        return None
    return [body["error"].get("code")]


def assert_typed(reply: Reply) -> list[str]:
    """DESIGN §4's invariant for one response (see the module docstring); its error codes."""
    assert reply.status < 500, str(reply)
    assert reply.headers.get("X-Request-Id"), f"no X-Request-Id: {reply}"
    media = reply.headers.get("Content-Type", "").split(";")[0].strip()
    assert media in JSON_TYPES, f"not JSON: {reply}"
    try:
        body = json.loads(reply.body)
    except ValueError as exc:
        raise AssertionError(f"body does not decode ({exc}): {reply}") from exc
    api = api_of(reply.path)
    found = {"graphql": graphql_codes(body), "rest": rest_codes(body)}
    if api is None:
        codes = found["graphql"] if found["graphql"] is not None else found["rest"]
    else:
        codes = found[api]
    if reply.status >= 400:
        assert codes is not None, f"not in the {api or 'API'} error envelope: {reply}"
    if codes is None:
        # A success: GraphQL answers with data, REST with its data envelope.
        assert isinstance(body, dict), str(reply)
        assert "data" in body, str(reply)
        return []
    assert all(isinstance(c, str) and c in TYPED_CODES for c in codes), str(reply)
    return list(codes)


def graphql_body(query: str, variables: str) -> bytes:
    """A GraphQL request body with variables given as raw JSON text."""
    return f'{{"query": {json.dumps(query)}, "variables": {variables}}}'.encode()


# ---- bodies that are not UTF-8 ---------------------------------------------------------------

NOT_UTF8: Final = b'{"query": "{ stages { id } }", "x": "\xff\xfe\xc3\x28"}'


async def test_a_graphql_body_that_is_not_utf8_is_a_400_bad_request(target: Target) -> None:
    reply = await send(target, "POST", "/graphql", body=NOT_UTF8)

    assert assert_typed(reply) == ["BAD_REQUEST"], str(reply)
    assert reply.status == 400, str(reply)


async def test_a_rest_create_body_that_is_not_utf8_is_a_400_bad_request(target: Target) -> None:
    reply = await send(target, "POST", "/v1/leads", body=b'{"businessName": "\xff\xfe"}')

    assert assert_typed(reply) == ["BAD_REQUEST"], str(reply)
    assert reply.status == 400, str(reply)


async def test_a_rest_update_body_that_is_not_utf8_is_a_400_bad_request(target: Target) -> None:
    reply = await send(
        target, "PATCH", target.path("/v1/leads/{id}"), body=b'{"businessName": "\xc3\x28"}'
    )

    assert assert_typed(reply) == ["BAD_REQUEST"], str(reply)
    assert reply.status == 400, str(reply)


# ---- JSON numbers beyond Python's int limit --------------------------------------------------

HUGE_NUMBER: Final = "1" + "0" * 5000


async def test_a_graphql_variable_beyond_the_int_limit_is_a_400_bad_request(
    target: Target,
) -> None:
    reply = await send(
        target, "POST", "/graphql", body=graphql_body(STAGES, f'{{"x": {HUGE_NUMBER}}}')
    )

    assert assert_typed(reply) == ["BAD_REQUEST"], str(reply)
    assert reply.status == 400, str(reply)


async def test_a_graphql_limit_variable_beyond_the_int_limit_is_refused(target: Target) -> None:
    reply = await send(
        target, "POST", "/graphql", body=graphql_body(LEADS, f'{{"limit": {HUGE_NUMBER}}}')
    )

    # Refused as JSON (400) or, by a parser that takes the number, as a variable (200).
    outcome = (reply.status, assert_typed(reply))
    assert outcome in [(400, ["BAD_REQUEST"]), (200, ["VALIDATION_ERROR"])], str(reply)


async def test_a_rest_create_field_beyond_the_int_limit_is_refused(target: Target) -> None:
    body = f'{{"businessName": "Big", "leadScore": {HUGE_NUMBER}}}'.encode()
    reply = await send(target, "POST", "/v1/leads", body=body)

    assert assert_typed(reply) in (["BAD_REQUEST"], ["VALIDATION_ERROR"]), str(reply)
    assert reply.status in (400, 422), str(reply)


async def test_a_rest_update_field_beyond_the_int_limit_is_refused(target: Target) -> None:
    body = f'{{"monthlyRevenue": {HUGE_NUMBER}}}'.encode()
    reply = await send(target, "PATCH", target.path("/v1/leads/{id}"), body=body)

    assert assert_typed(reply) in (["BAD_REQUEST"], ["VALIDATION_ERROR"]), str(reply)
    assert reply.status in (400, 422), str(reply)


# ---- pathologically nested JSON --------------------------------------------------------------

DEEP: Final = "[" * 100_000


async def test_a_graphql_body_of_deeply_nested_json_is_a_400_bad_request(target: Target) -> None:
    reply = await send(target, "POST", "/graphql", body=DEEP.encode())

    assert assert_typed(reply) == ["BAD_REQUEST"], str(reply)
    assert reply.status == 400, str(reply)


async def test_graphql_variables_of_deeply_nested_json_are_a_400_bad_request(
    target: Target,
) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    reply = await send(target, "POST", "/graphql", body=graphql_body(STAGES, f'{{"x": {nested}}}'))

    assert assert_typed(reply) == ["BAD_REQUEST"], str(reply)
    assert reply.status == 400, str(reply)


async def test_a_rest_create_body_of_deeply_nested_json_is_a_400_bad_request(
    target: Target,
) -> None:
    body = ('{"customFields": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}").encode()
    reply = await send(target, "POST", "/v1/leads", body=body)

    assert assert_typed(reply) == ["BAD_REQUEST"], str(reply)
    assert reply.status == 400, str(reply)


async def test_a_rest_update_body_of_deeply_nested_json_is_a_400_bad_request(
    target: Target,
) -> None:
    reply = await send(target, "PATCH", target.path("/v1/leads/{id}"), body=DEEP.encode())

    assert assert_typed(reply) == ["BAD_REQUEST"], str(reply)
    assert reply.status == 400, str(reply)


# ---- lone surrogates -------------------------------------------------------------------------

SURROGATE: Final = '"a\\ud800b"'  # JSON text: a lone high surrogate, escaped
WTF8_SURROGATE: Final = b"\xed\xa0\x80"  # U+D800 as UTF-8 would spell it: not valid UTF-8


async def test_a_lone_surrogate_in_a_graphql_search_variable_is_typed(target: Target) -> None:
    reply = await send(
        target, "POST", "/graphql", body=graphql_body(LEADS, f'{{"search": {SURROGATE}}}')
    )

    assert_typed(reply)


async def test_a_lone_surrogate_in_a_graphql_filter_is_typed(target: Target) -> None:
    reply = await send(
        target,
        "POST",
        "/graphql",
        body=graphql_body(LEADS, f'{{"filter": {{"tag": {SURROGATE}}}}}'),
    )

    assert_typed(reply)


async def test_a_lone_surrogate_in_a_graphql_mutation_input_is_typed(target: Target) -> None:
    variables = f'{{"input": {{"businessName": {SURROGATE}, "tags": [{SURROGATE}]}}}}'
    reply = await send(target, "POST", "/graphql", body=graphql_body(CREATE, variables))

    assert_typed(reply)


async def test_a_lone_surrogate_in_a_graphql_document_is_typed(target: Target) -> None:
    body = b'{"query": "{ leads(search: \\"\\ud800\\") { total } }"}'
    reply = await send(target, "POST", "/graphql", body=body)

    assert_typed(reply)


async def test_a_lone_surrogate_in_a_rest_create_body_is_typed(target: Target) -> None:
    reply = await send(
        target, "POST", "/v1/leads", body=f'{{"businessName": {SURROGATE}}}'.encode()
    )

    assert_typed(reply)
    assert reply.status in (400, 422), str(reply)


async def test_a_lone_surrogate_in_a_rest_update_body_is_typed(target: Target) -> None:
    body = f'{{"tags": [{SURROGATE}]}}'.encode()
    reply = await send(target, "PATCH", target.path("/v1/leads/{id}"), body=body)

    assert_typed(reply)
    assert reply.status in (400, 422), str(reply)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/leads?search={s}",
        "/v1/leads?tag={s}",
        "/v1/leads?stageId={s}",
        "/v1/leads?page={s}",
        "/v1/events?types={s}",
        "/v1/events?after={s}",
        "/v1/leads/{s}",
    ],
)
async def test_a_lone_surrogate_in_a_rest_query_parameter_or_path_is_typed(
    target: Target, path: str
) -> None:
    reply = await send(target, "GET", path.replace("{s}", quote_from_bytes(WTF8_SURROGATE)))

    assert_typed(reply)


@pytest.mark.parametrize(
    ("name", "method", "path"),
    [
        ("Idempotency-Key", "POST", "/v1/leads"),
        ("Idempotency-Key", "POST", "/graphql"),
        ("X-Request-Id", "GET", "/v1/leads"),
        ("Accept", "POST", "/graphql"),
        ("Authorization", "GET", "/v1/leads"),
        ("Authorization", "POST", "/graphql"),
    ],
)
async def test_a_lone_surrogate_in_a_header_is_typed(
    target: Target, name: str, method: str, path: str
) -> None:
    value = b"key-" + WTF8_SURROGATE
    if name == "Authorization":
        value = b"Bearer lw_live_" + WTF8_SURROGATE
    lines = [f"{name}: ".encode() + value, b"Content-Type: application/json"]
    if name != "Authorization":
        lines.append(f"Authorization: Bearer {target.key}".encode())
    body = (
        b'{"businessName": "Header"}' if path == "/v1/leads" else b'{"query": "{ stages { id } }"}'
    )
    reply = await raw_exchange(target, method, path, lines, body if method == "POST" else b"")

    assert_typed(reply)


async def test_a_header_with_a_control_character_is_a_typed_400(target: Target) -> None:
    # Refused by aiohttp's parser before any handler: its own error page must be typed too.
    lines = [f"Authorization: Bearer {target.key}".encode(), b"X-Note: a\x01b"]
    reply = await raw_exchange(target, "GET", "/v1/leads", lines)

    assert assert_typed(reply) == ["BAD_REQUEST"], str(reply)
    assert reply.status == 400, str(reply)


# ---- operationName of the wrong type ---------------------------------------------------------


@pytest.mark.parametrize(
    "operation_name",
    [5, 1.5, True, ["Q"], {"name": "Q"}],
    ids=["number", "float", "boolean", "list", "object"],
)
async def test_an_operation_name_of_the_wrong_type_is_a_400_bad_request(
    target: Target, operation_name: object
) -> None:
    body = json.dumps({"query": "query Q { stages { id } }", "operationName": operation_name})
    reply = await send(target, "POST", "/graphql", body=body.encode())

    assert assert_typed(reply) == ["BAD_REQUEST"], str(reply)
    assert reply.status == 400, str(reply)


# ---- 10 MiB bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["POST /graphql", "POST /v1/leads", "PATCH /v1/leads/{id}"])
async def test_a_10_mib_body_is_a_413_payload_too_large(target: Target, route: str) -> None:
    method, path = route.split()
    body = io.BytesIO(b'{"query": "' + b"x" * TEN_MIB + b'"}')
    reply = await send(target, method, target.path(path), body=body)

    assert assert_typed(reply) == ["PAYLOAD_TOO_LARGE"], str(reply)
    assert reply.status == 413, str(reply)


# ---- unknown routes and wrong methods --------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/nope", "/v1", "/v1/nope", "/v1/leads/{id}/nope", "/v1/leads/{id}/move/x", "/graphql/nope"],
)
async def test_an_unknown_route_is_a_404_not_found(target: Target, path: str) -> None:
    reply = await send(target, "GET", target.path(path), content_type=None)

    assert assert_typed(reply) == ["NOT_FOUND"], str(reply)
    assert reply.status == 404, str(reply)


async def test_an_unknown_route_without_a_key_is_typed(target: Target) -> None:
    reply = await send(target, "GET", "/v1/nope", content_type=None, key=None)

    assert set(assert_typed(reply)) <= {"NOT_FOUND", "UNAUTHENTICATED"}, str(reply)


WRONG_METHODS: Final = [
    ("PUT", "/graphql"),
    ("DELETE", "/graphql"),
    ("PATCH", "/graphql"),
    ("POST", "/healthz"),
    ("POST", "/readyz"),
    ("DELETE", "/metrics"),
    ("POST", "/graphql/static/graphiql.min.js"),
    ("PUT", "/v1/leads"),
    ("DELETE", "/v1/leads"),
    ("POST", "/v1/leads/{id}"),
    ("PUT", "/v1/leads/{id}"),
    ("DELETE", "/v1/leads/{id}"),
    ("GET", "/v1/leads/{id}/move"),
    ("PATCH", "/v1/leads/{id}/move"),
    ("GET", "/v1/leads/{id}/assign"),
    ("DELETE", "/v1/leads/{id}/assign"),
    ("POST", "/v1/events"),
    ("DELETE", "/v1/events"),
]


@pytest.mark.parametrize(
    ("method", "path"), WRONG_METHODS, ids=[" ".join(m) for m in WRONG_METHODS]
)
async def test_a_wrong_method_is_a_405_naming_the_allowed_ones(
    target: Target, method: str, path: str
) -> None:
    reply = await send(target, method, target.path(path), body=b"{}")

    assert assert_typed(reply) == ["METHOD_NOT_ALLOWED"], str(reply)
    assert reply.status == 405, str(reply)
    assert reply.headers.get("Allow"), f"no Allow header: {reply}"


# ---- properties ------------------------------------------------------------------------------

# Every code point (NUL, controls and lone surrogates included, which json.dumps escapes), with
# the edge cases drawn often rather than left to the odds of 1.1 million code points.
edge_characters = st.sampled_from(["\x00", "\x01", "\x7f", "\ud800", "\udfff", "\ufffe", "💥"])
texts = st.text(st.characters(exclude_categories=()) | edge_characters, max_size=20)
edge_strings = st.sampled_from(["\ud800", "a\udfffb", "\x00", "", "💥", "x" * 300])
numbers = st.integers() | st.floats() | st.sampled_from([2**63, -(2**63) - 1, 10**30])
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def json_text(value: Any) -> str:
    # allow_nan: NaN and Infinity are not JSON, but clients send them.
    return json.dumps(value, allow_nan=True)


@st.composite
def json_ish_bytes(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> bytes:
    """JSON text of a value, sometimes cut short or with stray bytes spliced in."""
    data = json_text(draw(values)).encode()
    damage = draw(st.sampled_from(["none", "truncate", "splice"]))
    if damage == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "splice":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


graphql_requests = st.fixed_dictionaries(
    {},
    optional={
        "query": st.sampled_from([STAGES, LEADS, CREATE, "subscription { x }", "{"]) | texts,
        "variables": json_values,
        "operationName": json_values,
        "extensions": json_values,
    },
)
# The named hostile bodies, drawn often, and any of them with a valid body around it.
hostile_bodies = st.sampled_from(
    [
        NOT_UTF8,
        DEEP.encode(),
        HUGE_NUMBER.encode(),
        f'{{"query": "{{ stages {{ id }} }}", "variables": {{"x": {HUGE_NUMBER}}}}}'.encode(),
        f'{{"query": {SURROGATE}, "operationName": {SURROGATE}}}'.encode(),
        b'{"query": "{ stages { id } }", "operationName": ["x"]}',
        b"",
        b"null",
        b"[]",
        b"[{}]",
        b"{}",
        b"\x00",
    ]
)
bodies = (
    hostile_bodies
    | st.binary(max_size=256)
    | json_ish_bytes(json_values)
    | json_ish_bytes(graphql_requests)
    | json_ish_bytes(
        st.dictionaries(st.sampled_from(["businessName", "tags", "email"]), json_values)
    )
)
content_types = (
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "application/graphql-response+json",
            "text/plain",
            "application/graphql",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=fuzz",
            "multipart/form-data",
        ]
    )
    | st.none()
)
BODY_ROUTES: Final = ["POST /graphql", "POST /v1/leads", "PATCH /v1/leads/{id}"]


@FUZZ
@given(body=bodies, content_type=content_types)
@pytest.mark.parametrize("route", BODY_ROUTES)
async def test_any_body_gets_a_typed_answer(
    target: Target, route: str, body: bytes, content_type: str | None
) -> None:
    method, path = route.split()
    reply = await send(target, method, target.path(path), body=body, content_type=content_type)

    assert_typed(reply)


# Variables for each document: its own names with any values, strings drawn from the edge
# cases often, and any JSON at all in their place.
any_value = edge_strings | texts | json_values
FILTER_FIELDS: Final = ["stageId", "priority", "advisorId", "tag", "source"]
INPUT_FIELDS: Final = ["businessName", "email", "tags", "customFields", "stageId", "priority"]
graphql_calls = (
    st.tuples(
        st.just(LEADS),
        st.fixed_dictionaries(
            {},
            optional={
                "page": numbers | any_value,
                "limit": numbers | any_value,
                "search": any_value,
                "filter": st.fixed_dictionaries(
                    {}, optional=dict.fromkeys(FILTER_FIELDS, any_value)
                )
                | json_values,
            },
        ),
    )
    | st.tuples(
        st.just(CREATE),
        st.fixed_dictionaries(
            {},
            optional={
                "input": st.fixed_dictionaries({}, optional=dict.fromkeys(INPUT_FIELDS, any_value))
                | json_values
            },
        ),
    )
    | st.tuples(st.just(STAGES), st.dictionaries(texts, json_values, max_size=3))
)


@FUZZ
@given(call=graphql_calls)
async def test_any_graphql_variables_get_a_typed_answer(
    target: Target, call: tuple[str, dict[str, Any]]
) -> None:
    query, variables = call
    body = graphql_body(query, json_text(variables))
    reply = await send(target, "POST", "/graphql", body=body)

    assert_typed(reply)


# Query strings as raw bytes, percent-encoded: invalid UTF-8 and lone surrogates included.
query_bytes = st.binary(max_size=12) | st.sampled_from([WTF8_SURROGATE, b"\xff", b"%", b"\x00"])
REST_PARAMETERS: Final = [
    "page",
    "limit",
    "search",
    "stageId",
    "priority",
    "advisorId",
    "tag",
    "source",
    "types",
    "after",
]


@FUZZ
@given(
    path=st.sampled_from(["/v1/leads", "/v1/events", "/graphql"]),
    parameters=st.lists(
        st.tuples(st.sampled_from(REST_PARAMETERS).map(str.encode) | query_bytes, query_bytes),
        max_size=4,
    ),
)
async def test_any_query_string_gets_a_typed_answer(
    target: Target, path: str, parameters: list[tuple[bytes, bytes]]
) -> None:
    query = "&".join(f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in parameters)
    if path == "/graphql":
        query = f"query={quote_from_bytes(STAGES.encode())}&{query}"
    reply = await send(target, "GET", f"{path}?{query}", content_type=None)

    assert_typed(reply)


# Header values of visible ASCII, spaces and obs-text (bytes 0x80-0xFF, which the HTTP parser
# passes to the application): every value a parser lets through must be handled.
header_bytes = st.binary(max_size=40).map(
    lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F)
) | st.sampled_from([WTF8_SURROGATE, b"\xff\xfe", b"Bearer \xed\xa0\x80"])
HEADER_NAMES: Final = [
    "Authorization",
    "Idempotency-Key",
    "X-Request-Id",
    "Accept",
    "Content-Type",
    "Accept-Encoding",
    "Origin",
    "Cookie",
]
HEADER_ROUTES: Final = ["GET /v1/leads", "POST /v1/leads", "POST /graphql", "GET /graphql"]


@FUZZ
@given(
    route=st.sampled_from(HEADER_ROUTES),
    name=st.sampled_from(HEADER_NAMES),
    value=header_bytes,
)
async def test_any_header_value_gets_a_typed_answer(
    target: Target, route: str, name: str, value: bytes
) -> None:
    method, path = route.split()
    if path == "/graphql" and method == "GET":
        path = f"/graphql?query={quote_from_bytes(STAGES.encode())}"
    lines = [f"{name}: ".encode() + value]
    if name != "Authorization":
        lines.append(f"Authorization: Bearer {target.key}".encode())
    if name != "Content-Type":
        lines.append(b"Content-Type: application/json")
    body = b""
    if method == "POST":
        body = (
            b'{"businessName": "H"}' if path == "/v1/leads" else b'{"query": "{ stages { id } }"}'
        )
    reply = await raw_exchange(target, method, path, lines, body)

    assert_typed(reply)


path_segments = st.sampled_from(["v1", "leads", "events", "graphql", "move", "assign", "{id}"]) | (
    st.binary(min_size=1, max_size=8).map(lambda b: quote_from_bytes(b, safe=""))
)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO"]),
    segments=st.lists(path_segments, min_size=1, max_size=4),
)
async def test_any_method_and_path_get_a_typed_answer(
    target: Target, method: str, segments: list[str]
) -> None:
    path = target.path("/" + "/".join(segments))
    reply = await send(target, method, path, body=b"{}")

    assert_typed(reply)
