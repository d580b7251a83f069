"""GET /v1/openapi.json (issue 11 #4): a valid OpenAPI 3.1 document, served without a key,
that covers every /v1 route and is derived from the lead field table, the validators and the
error tree (tests/test_rest_schemathesis.py holds the server to it)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate

from leadgate.domain import errors, validation
from leadgate.domain.lead_fields import CREATE_INPUTS, UPDATE_INPUTS
from leadgate.rest.app import create_rest_app
from leadgate.rest.leads import LIST_PARAMETERS
from leadgate.rest.openapi import NOT_BLANK, PLAIN_TEXT, PRINTABLE, build_document, document_bytes
from tests.support import REST_ATTRIBUTES, Api, Tenant, header


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def schemas(document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"]
    return found


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)

    assert document["openapi"].startswith("3.1")


async def test_the_document_is_served_without_a_key(api: Api) -> None:
    status, body, headers = await api.rest("GET", "/v1/openapi.json", None)

    assert status == 200
    assert body == orjson.loads(document_bytes())
    assert header(headers, "X-Request-Id")


def test_every_route_of_the_v1_application_is_documented(document: dict[str, Any]) -> None:
    app = create_rest_app()
    routes = {
        (route.method.lower(), f"/v1{route.resource.canonical}")
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(method, path) for path, item in document["paths"].items() for method in item}

    assert routes == documented


def test_the_list_takes_every_parameter_the_handler_accepts(document: dict[str, Any]) -> None:
    parameters = document["paths"]["/v1/leads"]["get"]["parameters"]

    assert [p["name"] for p in parameters] == list(LIST_PARAMETERS)


async def test_the_lead_attributes_are_those_a_lead_is_answered_with(
    document: dict[str, Any], api: Api, tenant: Tenant
) -> None:
    _, page, _ = await api.rest("GET", "/v1/leads?limit=1", tenant.read_key)
    attributes = schemas(document)["Lead"]["properties"]["attributes"]

    assert set(attributes["properties"]) == set(page["data"][0]["attributes"])
    assert set(attributes["required"]) == set(page["data"][0]["attributes"])
    assert set(attributes["properties"]) >= REST_ATTRIBUTES


def test_the_bodies_take_the_fields_of_the_table_and_refuse_others(
    document: dict[str, Any],
) -> None:
    create, update = schemas(document)["CreateLead"], schemas(document)["UpdateLead"]

    assert list(create["properties"]) == [f.input_name for f in CREATE_INPUTS]
    assert list(update["properties"]) == [f.input_name for f in UPDATE_INPUTS]
    assert create["additionalProperties"] is False
    assert update["additionalProperties"] is False


def test_the_validators_limits_are_in_the_bodies(document: dict[str, Any]) -> None:
    create = schemas(document)["CreateLead"]["properties"]

    assert create["businessName"]["maxLength"] == 255
    assert create["contactFirstName"]["maxLength"] == 100
    assert create["phone"]["maxLength"] == 20
    assert create["tags"]["maxItems"] == validation.MAX_TAGS
    assert create["tags"]["items"]["maxLength"] == validation.MAX_TAG_LENGTH
    assert create["source"]["enum"] == [
        "manual",
        "csv_import",
        "api",
        "web_form",
        "referral",
        "dialer",
    ]
    assert create["priority"]["enum"] == ["low", "normal", "high", "urgent"]
    assert create["stageId"]["format"] == "uuid"


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        (PLAIN_TEXT, "Acme Corp", True),
        (PLAIN_TEXT, "", True),
        (PLAIN_TEXT, "nul\x00", False),
        (PLAIN_TEXT, "\x1fx", False),
        (NOT_BLANK, " x ", True),
        (NOT_BLANK, "   ", False),
        (PRINTABLE, "crm-42 é", True),
        (PRINTABLE, "a\u200bb", False),
        (PRINTABLE, "a\xa0b", False),
    ],
)
def test_the_text_patterns_match_what_the_validator_takes(
    pattern: str, text: str, matches: bool
) -> None:
    assert (re.search(pattern, text) is not None) is matches


def test_every_rest_error_code_is_documented_under_its_status(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/leads"]["post"]["responses"]
    documented = {
        code
        for status, response in create.items()
        if status.startswith(("4", "5"))
        for code in response["content"]["application/json"]["schema"]["allOf"][1]["properties"][
            "error"
        ]["properties"]["code"]["enum"]
    }

    assert {"BAD_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "VALIDATION_ERROR"} <= documented
    assert {"IDEMPOTENCY_KEY_IN_USE", "IDEMPOTENCY_KEY_REUSED", "PAYLOAD_TOO_LARGE"} <= documented
    assert {errors.ServiceUnavailable.code, errors.Internal.code, "RATE_LIMITED"} <= documented
    assert "PERSISTED_QUERY_NOT_FOUND" not in documented


def test_writes_declare_the_idempotency_key_and_replay_header(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/leads"]["post"]

    assert "Idempotency-Key" in [p["name"] for p in create["parameters"]]
    assert "Idempotent-Replayed" in create["responses"]["201"]["headers"]
    assert {"X-Request-Id", "RateLimit", "RateLimit-Policy"} <= set(
        create["responses"]["201"]["headers"]
    )
    assert "Retry-After" in create["responses"]["429"]["headers"]


def test_every_operation_but_the_document_needs_a_bearer_credential(
    document: dict[str, Any],
) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    public = [
        path
        for path, item in document["paths"].items()
        for operation in item.values()
        if operation.get("security") == []
    ]

    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    assert document["security"] == [{"bearer": []}]
    assert public == ["/v1/openapi.json"]
