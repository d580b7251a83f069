"""Compiled plans against strawberry on documents generated from the schema: at least 500
Query documents (hypothesis-graphql) run through both executors answer with the same bytes,
data, errors (formatted, with their codes) and extensions alike, refusals included.

graphql/compiled.py reproduces strawberry's executor by reading strawberry's internals; this
is what says a new strawberry or graphql-core still agrees with it (pyproject.toml pins both).

Hypothesis runs in a worker thread and each document on the session's event loop, which
also serves the gateway: one loop, and hypothesis keeps its own synchronous driver.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Final

import graphql
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes, queries

from leadgate.domain.models import Principal
from leadgate.graphql.encoding import encode
from leadgate.graphql.errors import annotate
from leadgate.graphql.schema import LeadgateSchema, RefusedResult, build_schema
from tests.graphql_context import make_context, principal_with_history
from tests.support import Api, Tenant

DOCUMENTS: Final = 500
# Single-field documents repeat (`{ stages { id } }`): drawn until DOCUMENTS distinct ones ran.
DRAWS: Final = 700
REQUEST_ID: Final = "differential"
ROOT_FIELDS: Final = (
    "leads",
    "lead",
    "events",
    "stages",
    "advisors",
    "webhookEndpoints",
    "webhookDeliveries",
)


@dataclass
class Tally:
    seen: set[str] = field(default_factory=set)
    differences: list[tuple[str, bytes, bytes]] = field(default_factory=list)


@pytest.fixture
async def principal(server: TestServer, tenant: Tenant, api: Api) -> Principal:
    # The write key's caller: it may read webhook endpoints and deliveries too.
    return await principal_with_history(server, tenant, api, key=tenant.write_key)


async def tenant_ids(api: Api, tenant: Tenant) -> list[str]:
    """Ids that exist for this tenant (leads, stages, advisors, events), so generated
    arguments reach real rows, not only NOT_FOUND and VALIDATION_ERROR."""
    _, body = await api.graphql(
        tenant.read_key, "{ leads(limit: 5) { nodes { id } } events(limit: 5) { id } }"
    )
    leads = [lead["id"] for lead in body["data"]["leads"]["nodes"]]
    events = [event["id"] for event in body["data"]["events"]]
    assert leads and events, body
    return [*leads, *events, *map(str, tenant.stage_ids), *map(str, tenant.advisor_ids)]


def id_values(known: list[str]) -> st.SearchStrategy[graphql.ValueNode]:
    """ID literals: mostly the tenant's own, sometimes anything (a malformed or foreign id)."""
    text = st.one_of(st.sampled_from(known), st.sampled_from(known), st.text(max_size=40))
    return text.map(nodes.String)


def int_values() -> st.SearchStrategy[graphql.ValueNode]:
    """Int literals: mostly a valid page or limit, sometimes any 32-bit int."""
    small = st.integers(min_value=1, max_value=30)
    return st.one_of(small, small, small, st.integers(-(2**31), 2**31 - 1)).map(nodes.Int)


def string_values() -> st.SearchStrategy[graphql.ValueNode]:
    """String literals: often one the resolvers accept (a delivery status, an event type, a
    search that matches), sometimes any text."""
    accepted = st.sampled_from(
        ["pending", "succeeded", "failed", "lead.created", "lead.updated", "a", "e", ""]
    )
    return st.one_of(accepted, accepted, st.text(max_size=30)).map(nodes.String)


async def answer(schema: LeadgateSchema, document: str, server: TestServer, p: Principal) -> bytes:
    """What a client would be sent: data, errors (coded as every transport codes them) and
    extensions, serialised by the transport's own encoder (orjson, json for what it refuses)."""
    context = make_context(server, p, REQUEST_ID)
    result = await schema.execute(document, context_value=context)
    errors = result.errors or []
    for error in errors:
        annotate(error, REQUEST_ID)
    return encode(
        {
            "refused": isinstance(result, RefusedResult),
            "data": result.data,
            "errors": [error.formatted for error in errors],
            "extensions": context.response_extensions,
        }
    )


async def test_generated_documents_are_answered_byte_for_byte_as_strawberry_answers_them(
    server: TestServer, api: Api, tenant: Tenant, principal: Principal
) -> None:
    compiled, plain = build_schema(compiled=True), build_schema(compiled=False)
    loop = asyncio.get_running_loop()
    tally = Tally()
    scalars = {
        "ID": id_values(await tenant_ids(api, tenant)),
        "Int": int_values(),
        "String": string_values(),
    }
    # Documents over every root field, and over one at a time: a single root field that
    # errors sends the whole document to strawberry, so these reach the plans' own answers.
    schema = compiled._schema
    documents = st.one_of(
        queries(schema, custom_scalars=scalars),
        *(queries(schema, fields=[name], custom_scalars=scalars) for name in ROOT_FIELDS),
    )

    async def both(document: str) -> tuple[bytes, bytes]:
        fast = await answer(compiled, document, server, principal)
        slow = await answer(plain, document, server, principal)
        return fast, slow

    @settings(
        max_examples=DRAWS,
        deadline=None,
        database=None,
        # Every difference is collected and reported at once: nothing to shrink.
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(documents)
    def compare(document: str) -> None:
        if document in tally.seen or len(tally.seen) >= DOCUMENTS:
            return
        tally.seen.add(document)
        fast, slow = asyncio.run_coroutine_threadsafe(both(document), loop).result(timeout=30)
        if fast != slow:
            tally.differences.append((document, fast, slow))

    started = time.monotonic()
    await asyncio.to_thread(compare)
    elapsed = time.monotonic() - started

    print(
        f"{len(tally.seen)} distinct documents, "
        f"{len(tally.differences)} differed, {elapsed:.1f} s, "
        f"{compiled.plan_hits} answered by a plan, {compiled.fallbacks} fell back"
    )
    assert tally.differences == [], tally.differences[:3]
    assert len(tally.seen) == DOCUMENTS
    # The plans did the work: most documents were answered without strawberry.
    assert compiled.plan_hits > DOCUMENTS // 4
