"""Validation of list parameters, shared by GraphQL and REST."""

from __future__ import annotations

import re
from typing import Final

from leadgate.domain.errors import FieldError, ValidationFailed
from leadgate.domain.models import LeadFilter, LeadQuery

MAX_LIMIT: Final = 100
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


def lead_query(
    *, page: int, limit: int, search: str | None, lead_filter: LeadFilter | None = None
) -> LeadQuery:
    errors: list[FieldError] = []
    if not 1 <= page <= MAX_PAGE:
        errors.append(FieldError("page", f"must be between 1 and {MAX_PAGE}"))
    if not 1 <= limit <= MAX_LIMIT:
        errors.append(FieldError("limit", f"must be between 1 and {MAX_LIMIT}"))
    if errors:
        raise ValidationFailed(errors)
    return LeadQuery(
        page=page,
        limit=limit,
        search_terms=search_terms(search),
        filter=lead_filter or LeadFilter(),
    )
