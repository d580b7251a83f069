"""Ids in GraphQL arguments: a malformed one is an error naming the argument, or NOT_FOUND
where the argument names the very thing looked up."""

from __future__ import annotations

from uuid import UUID

import strawberry

from leadgate.domain.errors import NotFound, ValidationFailed
from leadgate.domain.ids import parse_uuid


def uuid_argument(field: str, value: strawberry.ID) -> UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise ValidationFailed.single(field, "must be a UUID")
    return parsed


def optional_uuid_argument(field: str, value: strawberry.ID | None) -> UUID | None:
    return uuid_argument(field, value) if value is not None else None


def target_id(value: strawberry.ID, what: str) -> UUID:
    """The id of the object an operation acts on: malformed means it does not exist."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound(f"{what} not found")
    return parsed
