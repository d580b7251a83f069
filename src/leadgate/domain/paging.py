"""Validation of list parameters, shared by GraphQL and REST."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from leadgate.domain.errors import FieldError, ValidationFailed
from leadgate.domain.ids import parse_event_id
from leadgate.domain.models import LeadFilter, LeadQuery
from leadgate.domain.webhooks import EVENT_TYPES

MAX_LIMIT: Final = 100
MAX_EVENTS: Final = 1000
# Keeps OFFSET inside bigint whatever a client sends.
MAX_PAGE: Final = 1_000_000
# A search is a handful of words; anything beyond is noise that would only slow the query.
MAX_SEARCH_TERMS: Final = 8
MAX_TERM_LENGTH: Final = 64
_WORD: Final = re.compile(r"[^\W_]+")


def search_terms(text: str | None) -> tuple[str, ...]:
    """Words of a free-text search, lower-cased; tsquery syntax never survives this.

    Only word characters are kept, so `&|!():*'\\` and quotes are separators, not operators.
    """
    if not text:
        return ()
    words = _WORD.findall(text.lower())
    return tuple(w[:MAX_TERM_LENGTH] for w in words[:MAX_SEARCH_TERMS])


def page_errors(*, page: int | None, limit: int | None) -> list[FieldError]:
    """Range errors of page and limit (None: not an integer, reported by the caller)."""
    errors: list[FieldError] = []
    if page is not None and not 1 <= page <= MAX_PAGE:
        errors.append(FieldError("page", f"must be between 1 and {MAX_PAGE}"))
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        errors.append(FieldError("limit", f"must be between 1 and {MAX_LIMIT}"))
    return errors


def lead_query(
    *, page: int, limit: int, search: str | None, lead_filter: LeadFilter | None = None
) -> LeadQuery:
    errors = page_errors(page=page, limit=limit)
    if lead_filter is not None and lead_filter.tag is not None and "\x00" in lead_filter.tag:
        errors.append(FieldError("filter.tag", "must not contain NUL"))
    if errors:
        raise ValidationFailed(errors)
    return LeadQuery(
        page=page,
        limit=limit,
        search_terms=search_terms(search),
        filter=lead_filter or LeadFilter(),
    )


@dataclass(frozen=True, slots=True)
class EventQuery:
    after: int
    types: list[str] | None
    limit: int


def event_query(*, after: str | None, types: list[str] | None, limit: int) -> EventQuery:
    errors: list[FieldError] = []
    cursor = 0
    if after is not None:
        parsed = parse_event_id(after)
        if parsed is None:
            errors.append(FieldError("after", "must be an event id"))
        else:
            cursor = parsed
    if types is not None and not set(types) <= set(EVENT_TYPES):
        errors.append(FieldError("types", f"must be among {', '.join(EVENT_TYPES)}"))
    if not 1 <= limit <= MAX_EVENTS:
        errors.append(FieldError("limit", f"must be between 1 and {MAX_EVENTS}"))
    if errors:
        raise ValidationFailed(errors)
    return EventQuery(after=cursor, types=types, limit=limit)
