"""Property: whatever JSON a client throws at a write, the gateway answers with a DESIGN §4 client
error or a lead, never a 500, and never writes part of it.

pytest-asyncio runs `@given` on coroutine tests itself (it swaps the test's
`hypothesis.inner_test` for a wrapper that runs each example on the session loop), so the
properties are ordinary async tests over real HTTP. The tenant is function-scoped and shared
by the examples of one test; every example therefore compares counts before and after itself
instead of assuming a fresh organization (hence the suppressed health check).
"""

from __future__ import annotations

from typing import Any, Final

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import Api, Tenant
from tests.test_write_api import (
    WRITE_APIS,
    Outcome,
    Writes,
    created,
    lead_row,
    write_counts,
)

# DESIGN §4 minus INTERNAL: what a client may be told about a bad request.
CLIENT_ERRORS: Final = frozenset(
    {
        "BAD_REQUEST",
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "NOT_FOUND",
        "IDEMPOTENCY_KEY_IN_USE",
        "VALIDATION_ERROR",
        "IDEMPOTENCY_KEY_REUSED",
    }
)
CREATE_FIELDS: Final = [
    "businessName",
    "contactFirstName",
    "contactLastName",
    "email",
    "phone",
    "industry",
    "monthlyRevenue",
    "requestedAmount",
    "source",
    "priority",
    "stageId",
    "tags",
    "customFields",
    "assignToAdvisorId",
    "contactId",
]
FUZZ: Final = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    # Nothing written into the working tree; a failure prints its reproducing example.
    database=None,
)

# Every code point, C0 controls, NUL and lone surrogates included: clients can send them all
# (a surrogate as a "\ud800" escape). The edge cases are drawn often, not left to the odds of
# a uniform draw over 1.1 million code points.
edge_characters = st.sampled_from(["\x00", "\x07", "\x7f", "\ud800", "\udfff", "<", ">", "&", "٣"])
texts = st.text(st.characters(exclude_categories=()) | edge_characters, max_size=30)
integers = st.integers() | st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30])
scalars = st.none() | st.booleans() | integers | st.floats() | texts
# Decimal-looking strings; `\d` in a regex also matches non-ASCII digits such as "٣" or "１".
amounts = st.from_regex(r"-?\d{1,17}(\.\d{1,5})?", fullmatch=True) | st.text(
    st.sampled_from("0123456789.-e٣１"), min_size=1, max_size=20
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def field_values(name: str, tenant: Tenant) -> st.SearchStrategy[Any]:
    """Values for one field: plausible ones (valid or nearly), mixed with any JSON at all."""
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "email": st.emails() | texts,
        "monthlyRevenue": amounts,
        "requestedAmount": amounts,
        "source": st.sampled_from(["manual", "csv_import", "api", "web_form", "referral"]),
        "priority": st.sampled_from(["low", "normal", "high", "urgent", "URGENT"]),
        "stageId": st.sampled_from([str(s) for s in tenant.stage_ids]) | st.uuids().map(str),
        "assignToAdvisorId": st.sampled_from([str(a) for a in tenant.advisor_ids]),
        "contactId": st.uuids().map(str),
        "tags": st.lists(texts, max_size=6),
        "customFields": st.dictionaries(texts, json_values, max_size=4),
    }
    return plausible.get(name, texts) | json_values


def lead_bodies(tenant: Tenant) -> st.SearchStrategy[Any]:
    """Any JSON, or an object of real field names (and the odd stranger) with any values."""
    objects = st.fixed_dictionaries(
        {}, optional={name: field_values(name, tenant) for name in CREATE_FIELDS}
    )
    strangers = st.dictionaries(st.sampled_from(CREATE_FIELDS) | texts, json_values, max_size=5)
    return json_values | objects | strangers


@pytest.fixture(params=sorted(WRITE_APIS))
def writes(request: pytest.FixtureRequest, api: Api) -> Writes:
    return WRITE_APIS[request.param](api)


def assert_client_outcome(outcome: Outcome) -> None:
    assert outcome.status < 500, outcome
    assert set(outcome.codes) <= CLIENT_ERRORS, outcome
    assert (outcome.lead is None) == bool(outcome.codes), outcome


@FUZZ
@given(data=st.data())
async def test_create_with_arbitrary_json_is_a_lead_or_a_client_error_and_never_half_written(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, data: st.DataObject
) -> None:
    body = data.draw(lead_bodies(tenant), label="body")
    leads, events = await write_counts(pool, tenant.id)

    outcome = await writes.create(tenant.write_key, body)

    assert_client_outcome(outcome)
    if outcome.lead is not None:
        assert outcome.status in (200, 201)
        assert await write_counts(pool, tenant.id) == (leads + 1, events + 1)
    else:
        assert await write_counts(pool, tenant.id) == (leads, events)


@FUZZ
@given(data=st.data())
async def test_update_with_arbitrary_json_is_the_lead_or_a_client_error_and_never_half_written(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, data: st.DataObject
) -> None:
    body = data.draw(lead_bodies(tenant), label="body")
    lead = await created(writes, tenant, {"businessName": "Fuzzed", "tags": ["a"]})
    before = await lead_row(pool, tenant.id, lead["id"])
    leads, events = await write_counts(pool, tenant.id)

    outcome = await writes.update(tenant.write_key, lead["id"], body)

    assert_client_outcome(outcome)
    after = await lead_row(pool, tenant.id, lead["id"])
    if outcome.lead is not None:
        # A change is one event; no change is no event and the row as it was.
        expected_events = events + (after != before)
        assert await write_counts(pool, tenant.id) == (leads, expected_events)
    else:
        assert after == before
        assert await write_counts(pool, tenant.id) == (leads, events)


@FUZZ
@given(raw=st.binary(max_size=64) | texts.map(lambda t: t.encode("utf-8", "surrogatepass")))
async def test_post_leads_with_arbitrary_bytes_never_fails_or_half_writes(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, raw: bytes
) -> None:
    before = await write_counts(pool, tenant.id)

    status, body, _ = await api.rest("POST", "/v1/leads", tenant.write_key, data=raw)

    assert status in (201, 400, 422), body
    if status == 201:
        assert await write_counts(pool, tenant.id) == (before[0] + 1, before[1] + 1)
    else:
        assert body["error"]["code"] in CLIENT_ERRORS
        assert await write_counts(pool, tenant.id) == before
