"""schemathesis over GraphQL: for every operation of the exported schema.graphql, documents that
fit the schema (positive) and documents that break it (negative), sent to the session's gateway
with a write key, are answered without a 5xx, in the GraphQL envelope, every error with a
DESIGN §4 code (never INTERNAL), and with data of the schema's shape.

schemathesis sends with `requests`, which blocks: each operation's run goes to a worker thread
so the session's event loop, which serves the gateway, keeps running meanwhile.

schemathesis' own `not_a_server_error` check is not used as is: for GraphQL it calls any error
that has a `path` and no code it knows (BAD_USER_INPUT, GRAPHQL_VALIDATION_FAILED, ...) a
server error, which our typed resolver errors (NOT_FOUND, VALIDATION_ERROR, FORBIDDEN) are
not. The codes of DESIGN §4 say which is which; `check_typed` holds to them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Final

import asyncpg
import pytest
import requests
import schemathesis
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from schemathesis.core.failures import Failure
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case

from tests.support import Tenant, bearer, make_tenant
from tests.test_http_fuzz import TYPED_CODES

SCHEMA: Final = schemathesis.graphql.from_path(Path(__file__).parents[1] / "schema.graphql")
# The tests' settings allow webhooks to any http target (receivers listen on loopback), so a
# generated endpoint URL could send the dispatcher to a host off this machine: these two are
# fuzzed nowhere but in tests/test_webhooks.py's controlled cases. Every other webhook
# operation only finds ids this tenant does not have (it never gets an endpoint).
EXCLUDED: Final = frozenset({"Mutation.createWebhookEndpoint", "Mutation.updateWebhookEndpoint"})


def schema_labels() -> list[str]:
    """Every operation of the schema, by label (`Query.leads`); a schema error fails loudly."""
    labels = []
    for result in SCHEMA.get_all_operations():
        assert isinstance(result, Ok), result
        labels.append(result.ok().label)
    return labels


OPERATIONS: Final = [label for label in schema_labels() if label not in EXCLUDED]
MODES: Final = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
RUN: Final = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
REQUEST_TIMEOUT: Final = 10.0


@pytest.fixture(scope="module")
async def tenant(pool: asyncpg.Pool) -> Tenant:
    """One organization for the module, with leads so nested fields have something to load."""
    return await make_tenant(pool, leads=5)


def document(case: Case[Any]) -> str:
    return case.body if isinstance(case.body, str) else repr(case.body)


def check_typed(case: Case[Any], response: Response) -> None:
    """No 5xx, the GraphQL envelope, a typed code on every error."""
    answer = response.content[:500].decode("utf-8", "replace")
    seen = f"{document(case)}\n→ {response.status_code} {answer}"
    assert response.status_code < 500, seen
    assert response.headers.get("x-request-id"), f"no X-Request-Id: {seen}"
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"body does not decode ({exc}): {seen}") from exc
    assert isinstance(body, dict), seen
    assert "data" in body or "errors" in body, seen
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code in TYPED_CODES, f"error without a DESIGN §4 code: {seen}"


def run_operation(label: str, mode: GenerationMode, url: str, key: str) -> None:
    """schemathesis' cases for one operation in one mode, each sent and checked (blocking)."""
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None, label

    with requests.Session() as session:

        @RUN
        @given(case=operation.as_strategy(generation_mode=mode))
        def examine(case: Case[Any]) -> None:
            raw = case.call(
                base_url=url, session=session, headers=bearer(key), timeout=REQUEST_TIMEOUT
            )
            response = Response.from_any(raw)
            check_typed(case, response)
            try:
                # Malformed JSON, not an object, a non-null field answered with null.
                SCHEMA.validate_response(operation, response, case=case)
            except Failure as failure:
                raise AssertionError(
                    f"{failure.title}: {failure.message}\n{document(case)}"
                ) from None

        examine()


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
@pytest.mark.parametrize("label", OPERATIONS)
async def test_schemathesis_cases_get_typed_answers(
    server: TestServer, tenant: Tenant, label: str, mode: GenerationMode
) -> None:
    url = str(server.make_url("/graphql"))

    await asyncio.to_thread(run_operation, label, mode, url, tenant.write_key)


def test_every_operation_of_the_schema_is_examined_but_the_webhook_targets() -> None:
    labels = set(schema_labels())

    assert labels >= EXCLUDED
    assert len(OPERATIONS) == len(labels) - len(EXCLUDED)
    assert {"Query.leads", "Mutation.createLead"} <= set(OPERATIONS)
