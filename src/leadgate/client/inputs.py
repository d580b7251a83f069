"""What a write sends: `LeadCreate` and `LeadUpdate`, or a plain dict in the API's camelCase.

A field left UNSET is not sent (an update leaves it unchanged); a field set to None is sent
as null (an update clears it).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _json(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


class _Input:
    def document(self) -> dict[str, Any]:
        """The JSON body: every set field under its API name."""
        return {
            _camel(f.name): _json(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if getattr(self, f.name) is not UNSET
        }


@dataclass(frozen=True, kw_only=True)
class LeadUpdate(_Input):
    """The fields PATCH /v1/leads/{id} may change."""

    business_name: str | None | _Unset = UNSET
    contact_first_name: str | None | _Unset = UNSET
    contact_last_name: str | None | _Unset = UNSET
    email: str | None | _Unset = UNSET
    phone: str | None | _Unset = UNSET
    industry: str | None | _Unset = UNSET
    monthly_revenue: str | None | _Unset = UNSET
    requested_amount: str | None | _Unset = UNSET
    priority: str | None | _Unset = UNSET
    tags: Sequence[str] | None | _Unset = UNSET
    custom_fields: Mapping[str, Any] | None | _Unset = UNSET
    external_ids: Mapping[str, str] | None | _Unset = UNSET


@dataclass(frozen=True, kw_only=True)
class LeadCreate(LeadUpdate):
    """The fields POST /v1/leads takes: an update's, and those fixed at creation."""

    source: str | None | _Unset = UNSET
    stage_id: str | None | _Unset = UNSET
    assign_to_advisor_id: str | None | _Unset = UNSET
    contact_id: str | None | _Unset = UNSET


def body_of(fields: _Input | Mapping[str, Any] | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    """One JSON body from an input object or a camelCase mapping, plus keyword fields."""
    if fields is None:
        body: dict[str, Any] = {}
    elif isinstance(fields, _Input):
        body = fields.document()
    else:
        body = {k: _json(v) for k, v in fields.items()}
    body.update({_camel(k): _json(v) for k, v in extra.items() if v is not UNSET})
    return body
