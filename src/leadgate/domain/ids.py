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
