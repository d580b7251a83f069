"""Validation of lead writes (spec "Create a Lead", "Update a Lead"; issue 3): every rule has a
passing and a failing case, each run against GraphQL and REST, and a refused write changes
nothing (no lead, no event, the lead's row as it was).
"""

from __future__ import annotations

import json
from typing import Any, Final
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.support import Api, Tenant, error_codes
from tests.test_write_api import (
    WRITE_APIS,
    Outcome,
    RestWrites,
    Writes,
    created,
    lead_row,
    write_counts,
)

TEXT_LIMITS: Final = [
    ("businessName", 255),
    ("contactFirstName", 100),
    ("contactLastName", 100),
    ("phone", 20),
    ("industry", 100),
]
OPTIONAL_TEXT: Final = ["businessName", "contactFirstName", "contactLastName", "email", "phone"]
AMOUNTS: Final = ["monthlyRevenue", "requestedAmount"]
SOURCES: Final = ["manual", "csv_import", "api", "web_form", "referral", "dialer"]
PRIORITIES: Final = ["low", "normal", "high", "urgent"]
BASE: Final = {
    "businessName": "Acme Corp",
    "email": "jane@acme.com",
    "phone": "555-0100",
    "monthlyRevenue": "85000",
    "priority": "high",
    "tags": ["a", "b"],
    "customFields": {"k": "v"},
}


@pytest.fixture(params=sorted(WRITE_APIS))
def writes(request: pytest.FixtureRequest, api: Api) -> Writes:
    return WRITE_APIS[request.param](api)


async def rejected_create(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, body: Any, field: str
) -> Outcome:
    """Create is refused with VALIDATION_ERROR naming `field`, and nothing is written."""
    before = await write_counts(pool, tenant.id)
    outcome = await writes.create(tenant.write_key, body)
    assert outcome.codes and set(outcome.codes) == {"VALIDATION_ERROR"}, outcome
    assert outcome.names(field), outcome
    if writes.name == "rest":
        assert outcome.status == 422, outcome
    assert await write_counts(pool, tenant.id) == before
    return outcome


async def rejected_update(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, body: Any, field: str
) -> Outcome:
    """Update of a fresh lead is refused naming `field`; its row and events stay as they were."""
    lead = await created(writes, tenant, BASE)
    before = (await write_counts(pool, tenant.id), await lead_row(pool, tenant.id, lead["id"]))
    outcome = await writes.update(tenant.write_key, lead["id"], body)
    assert outcome.codes and set(outcome.codes) == {"VALIDATION_ERROR"}, outcome
    assert outcome.names(field), outcome
    if writes.name == "rest":
        assert outcome.status == 422, outcome
    after = (await write_counts(pool, tenant.id), await lead_row(pool, tenant.id, lead["id"]))
    assert after == before
    return outcome


async def updated(writes: Writes, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    lead = await created(writes, tenant, BASE)
    outcome = await writes.update(tenant.write_key, lead["id"], body)
    assert outcome.lead is not None, outcome
    return outcome.lead


async def add_contact(pool: asyncpg.Pool, organization_id: UUID) -> str:
    contact_id = await pool.fetchval(
        "INSERT INTO contacts (organization_id, first_name) VALUES ($1, 'Jane') RETURNING id",
        organization_id,
    )
    return str(contact_id)


# --- text fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "limit"), TEXT_LIMITS)
async def test_text_at_its_length_limit_is_accepted(
    writes: Writes, tenant: Tenant, field: str, limit: int
) -> None:
    lead = await created(writes, tenant, {field: "x" * limit})

    assert lead[field] == "x" * limit


@pytest.mark.parametrize(("field", "limit"), TEXT_LIMITS)
async def test_text_over_its_length_limit_is_rejected(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, field: str, limit: int
) -> None:
    await rejected_create(writes, pool, tenant, {field: "x" * (limit + 1)}, field)


async def test_one_character_business_name_is_accepted(writes: Writes, tenant: Tenant) -> None:
    assert (await created(writes, tenant, {"businessName": "A"}))["businessName"] == "A"


@pytest.mark.parametrize("blank", ["", "   "])
async def test_empty_business_name_is_a_validation_error(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, blank: str
) -> None:
    # Spec: 1-255 characters. Null clears it; an empty string is not a name.
    await rejected_create(writes, pool, tenant, {"businessName": blank}, "businessName")
    await rejected_update(writes, pool, tenant, {"businessName": blank}, "businessName")


@pytest.mark.parametrize(
    "name", ["<b>x</b>", "<script src=x>", "</p>", "<!-- c -->", "Acme <br/>", "x<y>"]
)
async def test_business_name_containing_an_html_tag_is_rejected(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, name: str
) -> None:
    await rejected_create(writes, pool, tenant, {"businessName": name}, "businessName")


@pytest.mark.parametrize("name", ["A < B", "Smith & Sons", "5<6", "<3 Bakery", "a <= b", "R&D > 0"])
async def test_business_name_with_plain_angle_brackets_or_ampersand_is_accepted(
    writes: Writes, tenant: Tenant, name: str
) -> None:
    assert (await created(writes, tenant, {"businessName": name}))["businessName"] == name


@pytest.mark.parametrize("field", ["businessName", "contactFirstName", "industry", "phone"])
async def test_strings_are_trimmed(writes: Writes, tenant: Tenant, field: str) -> None:
    assert (await created(writes, tenant, {field: "  Acme \t"}))[field] == "Acme"


@pytest.mark.parametrize("field", [f for f in OPTIONAL_TEXT if f != "businessName"] + AMOUNTS)
@pytest.mark.parametrize("blank", ["", "   "])
async def test_empty_optional_string_becomes_null(
    writes: Writes, tenant: Tenant, field: str, blank: str
) -> None:
    # Issue 3: "Strings are trimmed; empty optional strings become null" -- amounts included.
    assert (await created(writes, tenant, {field: blank}))[field] is None


@pytest.mark.parametrize(
    "body",
    [
        {"businessName": "Acme\x00Corp"},
        {"contactLastName": "Doe\x00"},
        {"email": "jane\x00@acme.com"},
        {"phone": "555\x07"},
        {"monthlyRevenue": "85000\x00"},
        {"tags": ["ok", "bad\x00"]},
        {"customFields": {"note": "a\x00b"}},
        {"customFields": {"key\x00": 1}},
    ],
)
async def test_nul_or_control_character_is_a_validation_error(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, body: dict[str, Any]
) -> None:
    (field,) = body
    await rejected_create(writes, pool, tenant, body, field)


@pytest.mark.parametrize(
    "body",
    [
        {"businessName": "Acme \ud800"},
        {"tags": ["\udfff"]},
        {"customFields": {"k": "\ud83d"}},
        # Echoed in the error message: the answer itself must still encode.
        {"priority": "\ud800"},
        {"\ud800": "unknown field"},
    ],
)
async def test_lone_surrogate_in_a_string_is_refused_not_a_server_error(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, body: dict[str, Any]
) -> None:
    # Escaped as "\ud800" on the wire: valid JSON syntax, but not a Unicode string PostgreSQL
    # (or orjson) can store. The client must hear 400 or 422, never 500.
    before = await write_counts(pool, tenant.id)

    outcome = await writes.create(tenant.write_key, body)

    assert outcome.codes and set(outcome.codes) <= {"BAD_REQUEST", "VALIDATION_ERROR"}, outcome
    assert outcome.status < 500
    assert await write_counts(pool, tenant.id) == before


# --- email ------------------------------------------------------------------------------------


async def test_valid_email_is_accepted_with_its_domain_lower_cased(
    writes: Writes, tenant: Tenant
) -> None:
    assert (await created(writes, tenant, {"email": "Jane@ACME.com"}))["email"] == "Jane@acme.com"


@pytest.mark.parametrize("email", ["nope", "a@b", "jane@", "@acme.com", "jane doe@acme.com"])
async def test_invalid_email_is_rejected(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, email: str
) -> None:
    await rejected_create(writes, pool, tenant, {"email": email}, "email")


# --- amounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", AMOUNTS)
@pytest.mark.parametrize("amount", ["85000", "0", "1200.50", " 42 "])
async def test_non_negative_decimal_string_amount_is_accepted(
    writes: Writes, tenant: Tenant, field: str, amount: str
) -> None:
    assert (await created(writes, tenant, {field: amount}))[field] == amount.strip()


@pytest.mark.parametrize("field", AMOUNTS)
@pytest.mark.parametrize(
    "amount",
    [
        "-1",
        "1e5",
        "NaN",
        "Infinity",
        "12,000",
        "0x10",
        "$100",
        "9" * 20,
        1200,
        12.5,
        True,
        # Unicode digits: \d matches them, PostgreSQL's numeric does not.
        "١٢٣",
        "１２３",
    ],
)
async def test_amount_that_is_not_a_plain_non_negative_decimal_string_is_rejected(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, field: str, amount: object
) -> None:
    await rejected_create(writes, pool, tenant, {field: amount}, field)


# --- enums ------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
async def test_every_source_is_accepted(writes: Writes, tenant: Tenant, source: str) -> None:
    assert (await created(writes, tenant, {"source": source}))["source"] == source


@pytest.mark.parametrize("priority", PRIORITIES)
async def test_every_priority_is_accepted(writes: Writes, tenant: Tenant, priority: str) -> None:
    assert (await created(writes, tenant, {"priority": priority}))["priority"] == priority


@pytest.mark.parametrize("field", ["source", "priority"])
@pytest.mark.parametrize("value", ["bogus", "", 1, None])
async def test_value_outside_the_enum_is_rejected(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, field: str, value: object
) -> None:
    await rejected_create(writes, pool, tenant, {field: value}, field)


async def test_rest_enums_are_lower_case(api: Api, pool: asyncpg.Pool, tenant: Tenant) -> None:
    before = await write_counts(pool, tenant.id)

    status, body, _ = await api.rest("POST", "/v1/leads", tenant.write_key, json={"source": "API"})

    assert status == 422
    assert [f["field"] for f in body["error"]["fields"]] == ["source"]
    assert await write_counts(pool, tenant.id) == before


async def test_omitted_source_and_priority_default_to_manual_and_normal(
    writes: Writes, tenant: Tenant
) -> None:
    lead = await created(writes, tenant, {"businessName": "Defaults"})

    assert (lead["source"], lead["priority"]) == ("manual", "normal")


# --- tags -------------------------------------------------------------------------------------


async def test_tags_are_trimmed_and_de_duplicated_in_order(writes: Writes, tenant: Tenant) -> None:
    lead = await created(writes, tenant, {"tags": ["b", " a ", "b", "c", "a"]})

    assert lead["tags"] == ["b", "a", "c"]


async def test_fifty_tags_of_fifty_characters_are_accepted(writes: Writes, tenant: Tenant) -> None:
    tags = [f"{i:02d}".ljust(50, "t") for i in range(50)]

    assert (await created(writes, tenant, {"tags": tags}))["tags"] == tags


@pytest.mark.parametrize(
    "tags",
    [
        [""],
        ["ok", "   "],
        [f"t{i}" for i in range(51)],
        ["x" * 51],
    ],
    ids=["empty", "blank", "51-tags", "51-char-tag"],
)
async def test_bad_tags_are_rejected(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, tags: list[str]
) -> None:
    await rejected_create(writes, pool, tenant, {"tags": tags}, "tags")


@pytest.mark.parametrize("tags", ["a,b", {"a": 1}, [1, 2]])
async def test_rest_tags_must_be_an_array_of_strings(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, tags: object
) -> None:
    # GraphQL's [String!] coerces a lone string to a one-item list, so this one is REST's.
    await rejected_create(RestWrites(api), pool, tenant, {"tags": tags}, "tags")


# --- customFields -----------------------------------------------------------------------------


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` objects deep, ending in a scalar."""
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": value}
    result: dict[str, Any] = value
    return result


@pytest.mark.parametrize(
    "custom",
    [{}, {"a": 1, "b": [1, "two", None], "c": {"d": True}}, nested(8), {"k": "x" * 16_000}],
    ids=["empty", "mixed", "8-levels", "16000-bytes"],
)
async def test_custom_fields_object_is_accepted(
    writes: Writes, tenant: Tenant, custom: dict[str, Any]
) -> None:
    assert (await created(writes, tenant, {"customFields": custom}))["customFields"] == custom


@pytest.mark.parametrize(
    "custom",
    [[1, 2], "text", 5, nested(9), {"k": "x" * 16_400}],
    ids=["array", "string", "number", "9-levels", "over-16KB"],
)
async def test_bad_custom_fields_are_rejected(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, custom: object
) -> None:
    await rejected_create(writes, pool, tenant, {"customFields": custom}, "customFields")


async def test_custom_fields_nested_nine_objects_deep_are_rejected_whatever_the_leaf(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    # Nine levels of objects are nine levels, whether the innermost holds a scalar or nothing.
    deep: Any = {}
    for _ in range(8):
        deep = {"k": deep}

    await rejected_create(writes, pool, tenant, {"customFields": deep}, "customFields")


@pytest.mark.parametrize("big", [2**64, -(2**70), 10**30])
async def test_custom_fields_with_a_huge_integer_are_not_a_server_error(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, big: int
) -> None:
    # JSON numbers have no size limit; either store the number or refuse the field, but never
    # fail with a 500 (GraphQL reads variables with json.loads, keeping Python's big ints).
    before = await write_counts(pool, tenant.id)

    outcome = await writes.create(tenant.write_key, {"customFields": {"n": big}})

    if outcome.lead is None:
        assert outcome.codes == ("VALIDATION_ERROR",), outcome
        assert outcome.names("customFields")
        assert await write_counts(pool, tenant.id) == before
    else:
        assert outcome.lead["customFields"]["n"] == pytest.approx(big)


# --- references -------------------------------------------------------------------------------


async def test_own_stage_advisor_and_contact_are_accepted(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    contact = await add_contact(pool, tenant.id)
    body = {
        "stageId": str(tenant.stage_ids[1]),
        "assignToAdvisorId": str(tenant.advisor_ids[0]),
        "contactId": contact,
    }

    lead = await created(writes, tenant, body)

    assert (lead["stageId"], lead["primaryAdvisorId"], lead["contactId"]) == tuple(body.values())


@pytest.mark.parametrize("field", ["stageId", "assignToAdvisorId", "contactId"])
async def test_unknown_reference_is_a_validation_error_on_that_field(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, field: str
) -> None:
    outcome = await rejected_create(writes, pool, tenant, {field: str(uuid4())}, field)

    assert outcome.field_names == {field}


@pytest.mark.parametrize("field", ["stageId", "assignToAdvisorId", "contactId"])
async def test_another_organizations_reference_is_refused_exactly_like_an_unknown_one(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant, field: str
) -> None:
    foreign = {
        "stageId": str(other_tenant.stage_ids[0]),
        "assignToAdvisorId": str(other_tenant.advisor_ids[0]),
        "contactId": await add_contact(pool, other_tenant.id),
    }[field]

    unknown = await rejected_create(writes, pool, tenant, {field: str(uuid4())}, field)
    leaked = await rejected_create(writes, pool, tenant, {field: foreign}, field)

    assert (leaked.fields, leaked.message) == (unknown.fields, unknown.message)


@pytest.mark.parametrize("field", ["stageId", "assignToAdvisorId", "contactId"])
@pytest.mark.parametrize("value", ["not-a-uuid", "1234", "x" * 100])
async def test_malformed_reference_is_a_validation_error_on_that_field(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, field: str, value: str
) -> None:
    await rejected_create(writes, pool, tenant, {field: value}, field)


async def test_several_unknown_references_are_all_reported(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    body = {"stageId": str(uuid4()), "assignToAdvisorId": str(uuid4()), "contactId": str(uuid4())}

    outcome = await rejected_create(writes, pool, tenant, body, "stageId")

    assert outcome.field_names == set(body)


async def test_unknown_reference_is_reported_together_with_other_invalid_fields(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    # "listing every failing field": a client should not learn of a bad stageId only after
    # fixing its email.
    body = {"email": "nope", "stageId": str(uuid4())}

    outcome = await rejected_create(writes, pool, tenant, body, "email")

    assert outcome.field_names == set(body)


# --- the body as a whole ----------------------------------------------------------------------


async def test_unknown_field_is_rejected_by_name(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    await rejected_create(writes, pool, tenant, {"buisnessName": "Acme"}, "buisnessName")


async def test_every_failing_field_is_reported_not_just_the_first(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    body = {
        "businessName": "<b>Acme</b>",
        "contactFirstName": "J" * 101,
        "email": "nope",
        "monthlyRevenue": "-1",
        "tags": [""],
        "customFields": [],
        "phone": "555-0100",
    }

    outcome = await rejected_create(writes, pool, tenant, body, "businessName")

    assert outcome.field_names == set(body) - {"phone"}


async def test_rest_lists_unknown_and_invalid_fields_together(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    body = {"buisnessName": "Acme", "email": "nope", "priority": "HIGH"}

    outcome = await rejected_create(RestWrites(api), pool, tenant, body, "buisnessName")

    assert outcome.field_names == set(body)


@pytest.mark.parametrize("body", [[], [{"businessName": "Acme"}], "Acme", 42, None])
async def test_rest_body_that_is_not_a_json_object_is_422(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, body: object
) -> None:
    before = await write_counts(pool, tenant.id)

    status, answer, _ = await api.rest("POST", "/v1/leads", tenant.write_key, data=json.dumps(body))

    assert status == 422, answer
    assert answer["error"]["code"] == "VALIDATION_ERROR"
    assert await write_counts(pool, tenant.id) == before


@pytest.mark.parametrize("data", ['{"businessName": ', "{'a': 1}", "", "\xff", '{"a": NaN}'])
@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_rest_malformed_json_is_400_bad_request(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, data: str, method: str
) -> None:
    lead = await created(RestWrites(api), tenant, BASE)
    path = "/v1/leads" if method == "POST" else f"/v1/leads/{lead['id']}"
    before = (await write_counts(pool, tenant.id), await lead_row(pool, tenant.id, lead["id"]))

    status, answer, _ = await api.rest(
        method, path, tenant.write_key, data=data.encode("utf-8", "surrogateescape")
    )

    assert status == 400, answer
    assert answer["error"]["code"] == "BAD_REQUEST"
    after = (await write_counts(pool, tenant.id), await lead_row(pool, tenant.id, lead["id"]))
    assert after == before


# --- update -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["source", "stageId", "assignToAdvisorId", "contactId"])
async def test_update_refuses_fields_only_create_or_other_mutations_set(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, field: str
) -> None:
    value = {
        "source": "api",
        "stageId": str(tenant.stage_ids[1]),
        "assignToAdvisorId": str(tenant.advisor_ids[0]),
        "contactId": await add_contact(pool, tenant.id),
    }[field]

    await rejected_update(writes, pool, tenant, {field: value}, field)


async def test_update_input_has_no_stage_field_in_the_graphql_document(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    lead = await created(RestWrites(api), tenant, BASE)
    before = await lead_row(pool, tenant.id, lead["id"])
    document = (
        f'mutation {{ updateLead(id: "{lead["id"]}", '
        f'input: {{stageId: "{tenant.stage_ids[1]}"}}) {{ id }} }}'
    )

    status, body = await api.graphql(tenant.write_key, document)

    assert status != 500
    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert "stageId" in body["errors"][0]["message"]
    assert await lead_row(pool, tenant.id, lead["id"]) == before


async def test_update_leaves_fields_that_are_left_out_unchanged(
    writes: Writes, tenant: Tenant
) -> None:
    lead = await updated(writes, tenant, {"phone": "555-0199"})

    assert lead["phone"] == "555-0199"
    assert {k: lead[k] for k in BASE if k != "phone"} == {
        k: v for k, v in BASE.items() if k != "phone"
    }


@pytest.mark.parametrize(
    "field", ["businessName", "email", "phone", "industry", "monthlyRevenue", "requestedAmount"]
)
async def test_update_to_null_clears_the_field(writes: Writes, tenant: Tenant, field: str) -> None:
    lead = await created(writes, tenant, {**BASE, "industry": "Tech", "requestedAmount": "1"})

    outcome = await writes.update(tenant.write_key, lead["id"], {field: None})

    assert outcome.lead is not None, outcome
    assert outcome.lead[field] is None
    unchanged = {k for k in lead if k not in (field, "updatedAt")}
    assert {k: outcome.lead[k] for k in unchanged} == {k: lead[k] for k in unchanged}


@pytest.mark.parametrize("field", ["priority", "tags", "customFields"])
async def test_update_to_null_of_a_required_field_is_rejected(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, field: str
) -> None:
    await rejected_update(writes, pool, tenant, {field: None}, field)


@pytest.mark.parametrize(
    "body",
    [
        {"businessName": "<b>x</b>"},
        {"email": "nope"},
        {"monthlyRevenue": "1e5"},
        {"priority": "bogus"},
        {"tags": [""]},
        {"customFields": [1]},
        {"phone": "5" * 21},
        {"buisnessName": "typo"},
    ],
)
async def test_update_validates_like_create(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant, body: dict[str, Any]
) -> None:
    (field,) = body
    await rejected_update(writes, pool, tenant, body, field)


async def test_update_trims_strings_and_de_duplicates_tags(writes: Writes, tenant: Tenant) -> None:
    lead = await updated(writes, tenant, {"businessName": " Beta ", "tags": ["x", "x ", "y"]})

    assert (lead["businessName"], lead["tags"]) == ("Beta", ["x", "y"])


async def test_update_with_an_invalid_field_applies_none_of_the_valid_ones(
    writes: Writes, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    body = {"phone": "555-0199", "priority": "urgent", "email": "nope"}

    outcome = await rejected_update(writes, pool, tenant, body, "email")

    assert outcome.field_names == {"email"}
