"""Identifiers as clients send them."""

from __future__ import annotations

from uuid import UUID


def parse_uuid(text: str) -> UUID | None:
    """The UUID a client sent, or None when it is not one (callers answer NOT_FOUND)."""
    if len(text) > 64:
        return None
    try:
        return UUID(text)
    except ValueError:
        return None


_MAX_EVENT_ID = 2**63 - 1


def parse_event_id(text: str) -> int | None:
    """An event id (a positive bigint in ASCII digits), or None when it is not one."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value <= _MAX_EVENT_ID else None
