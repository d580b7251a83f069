"""Validation of list parameters, shared by GraphQL and REST, and the keyset cursors."""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

from leadgate.domain.errors import FieldError, ValidationFailed
from leadgate.domain.ids import parse_event_id, parse_uuid
from leadgate.domain.models import LeadFilter, LeadQuery, LeadRecord
from leadgate.domain.webhooks import LEAD_EVENT_TYPES, ORGANIZATION_EVENT_TYPES

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


def lead_event_types_problem(types: list[str]) -> str | None:
    """Why `types` cannot narrow a lead feed (`events`, GET /v1/events, leadEvents), or None.

    An organization event is named as such: it is a webhook event, never in a lead feed."""
    organization = [t for t in types if t in ORGANIZATION_EVENT_TYPES]
    if organization:
        return (
            f"{organization[0]} is an organization event, sent to webhooks only; "
            f"lead events are {', '.join(LEAD_EVENT_TYPES)}"
        )
    if not set(types) <= set(LEAD_EVENT_TYPES):
        return f"must be among {', '.join(LEAD_EVENT_TYPES)}"
    return None


def event_query(*, after: str | None, types: list[str] | None, limit: int) -> EventQuery:
    errors: list[FieldError] = []
    cursor = 0
    if after is not None:
        parsed = parse_event_id(after)
        if parsed is None:
            errors.append(FieldError("after", "must be an event id"))
        else:
            cursor = parsed
    problem = lead_event_types_problem(types) if types is not None else None
    if problem is not None:
        errors.append(FieldError("types", problem))
    if not 1 <= limit <= MAX_EVENTS:
        errors.append(FieldError("limit", f"must be between 1 and {MAX_EVENTS}"))
    if errors:
        raise ValidationFailed(errors)
    return EventQuery(after=cursor, types=types, limit=limit)


# --- keyset cursors (issue 11 #2) --------------------------------------------------------------

CURSOR_VERSION: Final = 1
DEFAULT_CONNECTION_SIZE: Final = 20
# A cursor is about 80 characters; anything much longer is not one of ours.
_MAX_CURSOR_LENGTH: Final = 200
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


class KeysetOrder(enum.Enum):
    """The orders a cursor can name; the value is what the cursor carries."""

    NEWEST = "c"  # (created_at, id) descending: the list as `leads` shows it
    UPDATED = "u"  # (updated_at, id) ascending: incremental sync with updatedSince

    @property
    def described(self) -> str:
        if self is KeysetOrder.NEWEST:
            return "newest first on (createdAt, id)"
        return "oldest change first on (updatedAt, id), as with updatedSince"


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in one order: the sort key of the row it follows (or precedes)."""

    order: KeysetOrder
    at: datetime
    id: UUID


def encode_cursor(cursor: Cursor) -> str:
    """Opaque to clients: base64url of `[version, order, microseconds since epoch, id]`.

    Microseconds, not an ISO string: PostgreSQL keeps exactly microseconds, so the cursor
    names the row's key exactly and the next page starts right after it.
    """
    micros = (cursor.at - _EPOCH) // _MICROSECOND
    raw = json.dumps(
        [CURSOR_VERSION, cursor.order.value, micros, str(cursor.id)], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(text: str) -> Cursor | None:
    """The cursor `encode_cursor` made, or None for anything else."""
    if not text or len(text) > _MAX_CURSOR_LENGTH or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        value = json.loads(raw)
    except (ValueError, binascii.Error):
        return None
    if not (isinstance(value, list) and len(value) == 4 and value[0] == CURSOR_VERSION):
        return None
    _, order, micros, lead_id = value
    if not (isinstance(micros, int) and not isinstance(micros, bool)):
        return None
    parsed_id = parse_uuid(lead_id) if isinstance(lead_id, str) else None
    try:
        kind = KeysetOrder(order)
        at = _EPOCH + micros * _MICROSECOND
    except (ValueError, TypeError, OverflowError):
        return None
    return Cursor(kind, at, parsed_id) if parsed_id is not None else None


def record_cursor(record: LeadRecord, order: KeysetOrder) -> str:
    """The cursor of a lead in an order: its sort key there."""
    lead = record.lead
    at = lead.created_at if order is KeysetOrder.NEWEST else lead.updated_at
    return encode_cursor(Cursor(order, at, lead.id))


@dataclass(frozen=True, slots=True)
class KeysetQuery:
    """A validated request for one slice of an order: `size` rows after `after` (or, going
    `backward`, the `size` rows just before `before`), both bounds applying when given."""

    order: KeysetOrder
    size: int
    backward: bool = False
    after: Cursor | None = None
    before: Cursor | None = None
    search_terms: tuple[str, ...] = ()
    filter: LeadFilter = field(default_factory=LeadFilter)
    updated_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class KeysetPage:
    records: list[LeadRecord]
    total: int
    total_is_exact: bool
    order: KeysetOrder
    has_next: bool
    has_previous: bool

    def cursor(self, record: LeadRecord) -> str:
        return record_cursor(record, self.order)

    @property
    def end_cursor(self) -> str | None:
        return self.cursor(self.records[-1]) if self.records else None


def _cursor_argument(
    text: str | None, argument: str, order: KeysetOrder, errors: list[FieldError]
) -> Cursor | None:
    if text is None:
        return None
    cursor = decode_cursor(text)
    if cursor is None:
        errors.append(FieldError(argument, "must be a cursor this API returned"))
    elif cursor.order is not order:
        errors.append(
            FieldError(
                argument,
                f"is a cursor of another order ({cursor.order.described}); "
                f"this one is {order.described}",
            )
        )
    else:
        return cursor
    return None


def keyset_query(
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    search: str | None = None,
    lead_filter: LeadFilter | None = None,
    updated_since: datetime | None = None,
    after_argument: str = "after",
) -> KeysetQuery:
    """`first`/`after` forward or `last`/`before` backward, 1-100 rows (20 by default);
    `updated_since` switches to the (updatedAt, id) order. REST names `after` `cursor`."""
    errors: list[FieldError] = []
    if first is not None and last is not None:
        errors.append(FieldError("last", "cannot be given with first: page one way at a time"))
    for name, size in (("first", first), ("last", last)):
        if size is not None and not 1 <= size <= MAX_LIMIT:
            errors.append(FieldError(name, f"must be between 1 and {MAX_LIMIT}"))
    if updated_since is not None and updated_since.tzinfo is None:
        errors.append(FieldError("updatedSince", "must carry an offset (e.g. Z or +02:00)"))
    if lead_filter is not None and lead_filter.tag is not None and "\x00" in lead_filter.tag:
        errors.append(FieldError("filter.tag", "must not contain NUL"))
    order = KeysetOrder.NEWEST if updated_since is None else KeysetOrder.UPDATED
    after_cursor = _cursor_argument(after, after_argument, order, errors)
    before_cursor = _cursor_argument(before, "before", order, errors)
    if errors:
        raise ValidationFailed(errors)
    return KeysetQuery(
        order=order,
        size=first or last or DEFAULT_CONNECTION_SIZE,
        backward=last is not None,
        after=after_cursor,
        before=before_cursor,
        search_terms=search_terms(search),
        filter=lead_filter or LeadFilter(),
        updated_since=updated_since,
    )
