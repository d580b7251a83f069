"""One validator for lead writes, shared by GraphQL and REST (spec: "Create a Lead").

Input is the client's JSON object (API field names). Every failing field is reported, not just
the first; strings are trimmed and empty optional strings become null, except businessName,
which is 1-255 characters or null.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import orjson
from email_validator import EmailNotValidError, validate_email

from leadgate.domain.errors import FieldError, ValidationFailed
from leadgate.domain.ids import parse_uuid
from leadgate.domain.models import LeadPriority, LeadSource

MAX_TAGS: Final = 50
MAX_TAG_LENGTH: Final = 50
MAX_CUSTOM_FIELDS_BYTES: Final = 16_384
MAX_CUSTOM_FIELDS_DEPTH: Final = 8
# A tag, not text with `<` in it: `<b>`, `</p>`, `<script src=x>`, `<!-- x -->`.
_HTML_TAG: Final = re.compile(r"<\s*/?\s*[A-Za-z][^<>]*>|<!--")
# Plain decimal notation only: no exponent, sign, NaN or Infinity; sane magnitude.
_AMOUNT: Final = re.compile(r"[0-9]{1,15}(\.[0-9]{1,4})?")
# NUL cannot be stored in PostgreSQL text, a lone surrogate cannot be encoded at all; other C0
# controls are never meaningful here.
_CONTROL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# JSON numbers PostgreSQL and our encoder both take: 64-bit integers.
_INT_RANGE: Final = range(-(2**63), 2**64)


def is_plain_text(text: str) -> bool:
    """No NUL, control character or lone surrogate: a string the database can store as is."""
    return _CONTROL.search(text) is None


_UNSET: Final = object()
# Fields an update may not touch, with where to go instead.
_NOT_UPDATABLE: Final = {
    "source": "source is set when a lead is created and cannot change",
    "stageId": "use moveLead to change the stage",
    "assignToAdvisorId": "use assignLead to change the advisor",
    "contactId": "contactId is set when a lead is created and cannot change",
}


@dataclass(frozen=True, slots=True)
class LeadDraft:
    """A validated create: column values, plus the references the database must confirm."""

    values: dict[str, Any]
    stage_id: UUID | None
    advisor_id: UUID | None
    contact_id: UUID | None


class _Checker:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.errors: list[FieldError] = []

    def fail(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def text(self, field: str, *, max_length: int) -> str | None | object:
        """The trimmed string, None (cleared), or _UNSET when absent or invalid."""
        if field not in self.raw:
            return _UNSET
        value = self.raw[field]
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(field, "must be a string")
            return _UNSET
        value = value.strip()
        if _CONTROL.search(value):
            self.fail(field, "must not contain control characters")
            return _UNSET
        if len(value) > max_length:
            self.fail(field, f"must be at most {max_length} characters")
            return _UNSET
        return value or None


def _business_name(c: _Checker) -> object:
    # The spec gives a business name 1-255 characters: unlike the other optional strings, an
    # empty (or blank) one is a mistake to report, not a way to clear it (null clears it).
    raw = c.raw.get("businessName")
    if isinstance(raw, str) and not raw.strip():
        c.fail("businessName", "must be 1-255 characters (null clears it)")
        return _UNSET
    value = c.text("businessName", max_length=255)
    if isinstance(value, str) and _HTML_TAG.search(value):
        c.fail("businessName", "must not contain HTML")
        return _UNSET
    return value


def _email(c: _Checker) -> object:
    value = c.text("email", max_length=320)
    if not isinstance(value, str):
        return value
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        c.fail("email", f"must be a valid email address ({exc})")
        return _UNSET


def _amount(field: str) -> Callable[[_Checker], object]:
    def check(c: _Checker) -> object:
        value = c.text(field, max_length=32)
        if isinstance(value, str) and not _AMOUNT.fullmatch(value):
            c.fail(field, 'must be a non-negative decimal number as a string, e.g. "85000"')
            return _UNSET
        return value

    return check


def _enum(field: str, kind: type[LeadSource] | type[LeadPriority]) -> Callable[[_Checker], object]:
    def check(c: _Checker) -> object:
        if field not in c.raw:
            return _UNSET
        value = c.raw[field]
        allowed = [member.value for member in kind]
        if value not in allowed:
            c.fail(field, f"must be one of {', '.join(allowed)}")
            return _UNSET
        return value

    return check


def _tags(c: _Checker) -> object:
    if "tags" not in c.raw:
        return _UNSET
    value = c.raw["tags"]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        c.fail("tags", "must be an array of strings")
        return _UNSET
    tags = [t.strip() for t in value]
    if any(not t for t in tags):
        c.fail("tags", "must not contain empty tags")
    elif any(len(t) > MAX_TAG_LENGTH or _CONTROL.search(t) for t in tags):
        c.fail("tags", f"each tag must be at most {MAX_TAG_LENGTH} plain characters")
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        c.fail("tags", f"must have at most {MAX_TAGS} tags")
    return unique


def _json_problem(value: Any, depth: int = 0) -> str | None:
    """What makes a customFields value unstorable; depth counts nested objects and arrays."""
    if isinstance(value, str):
        return "must not contain NUL or control characters" if _CONTROL.search(value) else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if value in _INT_RANGE else "integers must fit in 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else "must contain only finite numbers"
    if depth >= MAX_CUSTOM_FIELDS_DEPTH:
        return f"must nest at most {MAX_CUSTOM_FIELDS_DEPTH} levels"
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        problem = (_json_problem(key) if isinstance(key, str) else None) or _json_problem(
            item, depth + 1
        )
        if problem:
            return problem
    return None


def _custom_fields(c: _Checker) -> object:
    if "customFields" not in c.raw:
        return _UNSET
    value = c.raw["customFields"]
    if not isinstance(value, dict):
        c.fail("customFields", "must be a JSON object")
        return _UNSET
    problem = _json_problem(value)
    if problem is None and len(orjson.dumps(value)) > MAX_CUSTOM_FIELDS_BYTES:
        problem = f"must be at most {MAX_CUSTOM_FIELDS_BYTES} bytes as JSON"
    if problem:
        c.fail("customFields", problem)
        return _UNSET
    return value


def _reference(c: _Checker, field: str) -> UUID | None:
    value = c.raw.get(field)
    if value is None:
        return None
    parsed = parse_uuid(value) if isinstance(value, str) else None
    if parsed is None:
        c.fail(field, "must be a UUID")
    return parsed


# API field → (column, check). Order is the spec's, so errors come back in that order.
_FIELDS: Final[dict[str, tuple[str, Callable[[_Checker], object]]]] = {
    "businessName": ("business_name", _business_name),
    "contactFirstName": (
        "contact_first_name",
        lambda c: c.text("contactFirstName", max_length=100),
    ),
    "contactLastName": ("contact_last_name", lambda c: c.text("contactLastName", max_length=100)),
    "email": ("email", _email),
    "phone": ("phone", lambda c: c.text("phone", max_length=20)),
    "industry": ("industry", lambda c: c.text("industry", max_length=100)),
    "monthlyRevenue": ("monthly_revenue", _amount("monthlyRevenue")),
    "requestedAmount": ("requested_amount", _amount("requestedAmount")),
    "source": ("source", _enum("source", LeadSource)),
    "priority": ("priority", _enum("priority", LeadPriority)),
    "tags": ("tags", _tags),
    "customFields": ("custom_fields", _custom_fields),
}
_REFERENCES: Final = ("stageId", "assignToAdvisorId", "contactId")
# Columns that exist but may not be null: null is an error on update, a default on create.
_NOT_NULL: Final = frozenset({"source", "priority", "tags", "customFields"})


def _body(raw: object) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValidationFailed([FieldError("body", "must be a JSON object")])
    return raw


def _values(
    c: _Checker, fields: Mapping[str, tuple[str, Callable[[_Checker], object]]]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (column, check) in fields.items():
        value = check(c)
        if value is _UNSET:
            continue
        if value is None and name in _NOT_NULL:
            c.fail(name, "must not be null")
            continue
        values[column] = value
    return values


def references(raw: object) -> dict[str, UUID]:
    """The well-formed ids a create names, by field (to report unknown ones with the rest)."""
    if not isinstance(raw, Mapping):
        return {}
    found = {f: raw.get(f) for f in _REFERENCES}
    return {f: u for f, v in found.items() if isinstance(v, str) and (u := parse_uuid(v))}


def validate_create(raw: object) -> LeadDraft:
    body = _body(raw)
    c = _Checker(body)
    for name in body:
        if name not in _FIELDS and name not in _REFERENCES:
            c.fail(name, "is not a lead field")
    values = _values(c, _FIELDS)
    stage_id = _reference(c, "stageId")
    advisor_id = _reference(c, "assignToAdvisorId")
    contact_id = _reference(c, "contactId")
    if c.errors:
        raise ValidationFailed(c.errors)
    values.setdefault("source", LeadSource.MANUAL.value)
    values.setdefault("priority", LeadPriority.NORMAL.value)
    values.setdefault("tags", [])
    values.setdefault("custom_fields", {})
    return LeadDraft(values=values, stage_id=stage_id, advisor_id=advisor_id, contact_id=contact_id)


def validate_update(raw: object) -> dict[str, Any]:
    """The columns to change; a field left out is unchanged, null clears it."""
    body = _body(raw)
    c = _Checker(body)
    for name in body:
        if name in _NOT_UPDATABLE:
            c.fail(name, _NOT_UPDATABLE[name])
        elif name not in _FIELDS:
            c.fail(name, "is not a lead field")
    updatable = {k: v for k, v in _FIELDS.items() if k != "source"}
    values = _values(c, updatable)
    if c.errors:
        raise ValidationFailed(c.errors)
    return values


# Column → API field name, for event payloads ("changes") and error messages.
API_NAMES: Final = {column: name for name, (column, _) in _FIELDS.items()}
