"""One validator for lead writes, shared by GraphQL and REST (spec: "Create a Lead").

Input is the client's JSON object (API field names). Every failing field is reported, not just
the first; strings are trimmed and empty optional strings become null, except businessName,
which is 1-255 characters or null.
"""

from __future__ import annotations

import copy
import enum
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
from leadgate.domain.lead_fields import (
    CREATE_INPUTS,
    REFERENCE_INPUTS,
    VALUE_INPUTS,
    FieldSpec,
    Rule,
)

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
    f.input_name: f.decl.fixed or f"{f.input_name} cannot change"
    for f in CREATE_INPUTS
    if not f.decl.update
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


Check = Callable[[_Checker], object]


def _text(field: str, max_length: int) -> Check:
    return lambda c: c.text(field, max_length=max_length)


def _business_name(field: str, max_length: int) -> Check:
    def check(c: _Checker) -> object:
        # The spec gives a business name 1-255 characters: unlike the other optional strings,
        # an empty (or blank) one is a mistake to report, not a way to clear it (null does).
        raw = c.raw.get(field)
        if isinstance(raw, str) and not raw.strip():
            c.fail(field, f"must be 1-{max_length} characters (null clears it)")
            return _UNSET
        value = c.text(field, max_length=max_length)
        if isinstance(value, str) and _HTML_TAG.search(value):
            c.fail(field, "must not contain HTML")
            return _UNSET
        return value

    return check


def _email(field: str, max_length: int) -> Check:
    def check(c: _Checker) -> object:
        value = c.text(field, max_length=max_length)
        if not isinstance(value, str):
            return value
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            c.fail(field, f"must be a valid email address ({exc})")
            return _UNSET

    return check


def _amount(field: str, max_length: int) -> Check:
    def check(c: _Checker) -> object:
        value = c.text(field, max_length=max_length)
        if isinstance(value, str) and not _AMOUNT.fullmatch(value):
            c.fail(field, 'must be a non-negative decimal number as a string, e.g. "85000"')
            return _UNSET
        return value

    return check


def _enum(field: str, kind: type[enum.Enum]) -> Check:
    allowed: list[str] = [str(member.value) for member in kind]

    def check(c: _Checker) -> object:
        if field not in c.raw:
            return _UNSET
        value = c.raw[field]
        if value not in allowed:
            c.fail(field, f"must be one of {', '.join(allowed)}")
            return _UNSET
        return value

    return check


def _tags(field: str) -> Check:
    def check(c: _Checker) -> object:
        if field not in c.raw:
            return _UNSET
        value = c.raw[field]
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            c.fail(field, "must be an array of strings")
            return _UNSET
        tags = [t.strip() for t in value]
        if any(not t for t in tags):
            c.fail(field, "must not contain empty tags")
        elif any(len(t) > MAX_TAG_LENGTH or _CONTROL.search(t) for t in tags):
            c.fail(field, f"each tag must be at most {MAX_TAG_LENGTH} plain characters")
        unique = list(dict.fromkeys(tags))
        if len(unique) > MAX_TAGS:
            c.fail(field, f"must have at most {MAX_TAGS} tags")
        return unique

    return check


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


def _object(field: str) -> Check:
    def check(c: _Checker) -> object:
        if field not in c.raw:
            return _UNSET
        value = c.raw[field]
        if not isinstance(value, dict):
            c.fail(field, "must be a JSON object")
            return _UNSET
        problem = _json_problem(value)
        if problem is None and len(orjson.dumps(value)) > MAX_CUSTOM_FIELDS_BYTES:
            problem = f"must be at most {MAX_CUSTOM_FIELDS_BYTES} bytes as JSON"
        if problem:
            c.fail(field, problem)
            return _UNSET
        return value

    return check


# External ids (issue 12 #4): {system: id}, a system a lower-case name, an id what the other
# system prints (1-255 printable characters, kept exactly as given).
EXTERNAL_SYSTEM: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_EXTERNAL_ID_LENGTH: Final = 255
MAX_EXTERNAL_IDS: Final = 20


def external_id_problem(system: object, external_id: object) -> str | None:
    """What is wrong with one (system, id) pair, or None (shared with upsertLead's key)."""
    if not isinstance(system, str) or not EXTERNAL_SYSTEM.fullmatch(system):
        return "a system name must match [a-z][a-z0-9_]{0,31}"
    if (
        not isinstance(external_id, str)
        or not 1 <= len(external_id) <= MAX_EXTERNAL_ID_LENGTH
        or not external_id.isprintable()
    ):
        return f"an id must be a string of 1-{MAX_EXTERNAL_ID_LENGTH} printable characters"
    return None


def _external_ids(field: str) -> Check:
    def check(c: _Checker) -> object:
        if field not in c.raw:
            return _UNSET
        value = c.raw[field]
        if value is None:
            return None
        if not isinstance(value, dict):
            c.fail(field, "must be a JSON object of system name to id")
            return _UNSET
        if len(value) > MAX_EXTERNAL_IDS:
            c.fail(field, f"must name at most {MAX_EXTERNAL_IDS} systems")
            return _UNSET
        for system, external_id in value.items():
            problem = external_id_problem(system, external_id)
            if problem is not None:
                c.fail(f"{field}.{str(system)[:32]}", problem)
                return _UNSET
        return dict(value)

    return check


def _reference(c: _Checker, field: str) -> UUID | None:
    value = c.raw.get(field)
    if value is None:
        return None
    parsed = parse_uuid(value) if isinstance(value, str) else None
    if parsed is None:
        c.fail(field, "must be a UUID")
    return parsed


# The longest amount string taken when the table gives no max_length.
AMOUNT_LENGTH: Final = 32


def _check(f: FieldSpec) -> Check:
    """The validator the table's rule names for one input."""
    name, rule, length = f.input_name, f.decl.rule, f.decl.max_length
    if rule is Rule.TEXT and length is not None:
        return _text(name, length)
    if rule is Rule.BUSINESS_NAME and length is not None:
        return _business_name(name, length)
    if rule is Rule.EMAIL and length is not None:
        return _email(name, length)
    if rule is Rule.AMOUNT:
        return _amount(name, length or AMOUNT_LENGTH)
    if rule is Rule.CHOICE and f.enum is not None:
        return _enum(name, f.enum)
    if rule is Rule.TAGS:
        return _tags(name)
    if rule is Rule.OBJECT:
        return _object(name)
    if rule is Rule.EXTERNAL_IDS:
        return _external_ids(name)
    raise TypeError(f"lead field {f.column}: rule {rule} needs what the table does not give")


# API field → (column, check), in table order, so errors come back in the spec's order.
_FIELDS: Final[dict[str, tuple[str, Check]]] = {
    f.input_name: (f.column, _check(f)) for f in VALUE_INPUTS if f.decl.create
}
_UPDATABLE: Final[dict[str, tuple[str, Check]]] = {
    f.input_name: (f.column, _check(f)) for f in VALUE_INPUTS if f.decl.update
}
_REFERENCES: Final = tuple(f.input_name for f in REFERENCE_INPUTS)
# Columns that exist but may not be null: null is an error on update, a default on create.
_NOT_NULL: Final = frozenset(f.input_name for f in VALUE_INPUTS if not f.nullable)
# What a create stores for a field left out (column defaults aside).
_DEFAULTS: Final = {
    f.column: f.decl.default.value if isinstance(f.decl.default, enum.Enum) else f.decl.default
    for f in VALUE_INPUTS
    if f.decl.create and f.decl.default is not None
}


def _body(raw: object) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValidationFailed([FieldError("body", "must be a JSON object")])
    return raw


def _values(c: _Checker, fields: Mapping[str, tuple[str, Check]]) -> dict[str, Any]:
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
    refs = {f.column: _reference(c, f.input_name) for f in REFERENCE_INPUTS}
    if c.errors:
        raise ValidationFailed(c.errors)
    for column, default in _DEFAULTS.items():
        values.setdefault(column, copy.deepcopy(default))
    return LeadDraft(
        values=values,
        stage_id=refs["stage_id"],
        advisor_id=refs["primary_advisor_id"],
        contact_id=refs["contact_id"],
    )


def validate_update(raw: object) -> dict[str, Any]:
    """The columns to change; a field left out is unchanged, null clears it."""
    body = _body(raw)
    c = _Checker(body)
    for name in body:
        if name in _NOT_UPDATABLE:
            c.fail(name, _NOT_UPDATABLE[name])
        elif name not in _UPDATABLE:
            c.fail(name, "is not a lead field")
    values = _values(c, _UPDATABLE)
    if c.errors:
        raise ValidationFailed(c.errors)
    return values


# Column → API field name, for event payloads ("changes") and error messages.
API_NAMES: Final = {f.column: f.input_name for f in VALUE_INPUTS}
