"""Mutation inputs. They carry the client's fields untouched to the one domain validator."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from leadgate.domain.models import LeadPriority, LeadSource


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def provided_fields(value: object) -> dict[str, Any]:
    """The fields the client sent, by API name: left out stays out, null stays null."""
    raw: dict[str, Any] = {}
    for field in dataclasses.fields(value):  # type: ignore[arg-type]
        item = getattr(value, field.name)
        if item is strawberry.UNSET:
            continue
        raw[_camel(field.name)] = item.value if isinstance(item, enum.Enum) else item
    return raw


@strawberry.input(
    description="Changes to a lead: a field left out is unchanged, a field set to null is "
    "cleared. The stage and advisor change through moveLead and assignLead."
)
class UpdateLeadInput:
    business_name: str | None = strawberry.UNSET
    contact_first_name: str | None = strawberry.UNSET
    contact_last_name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    industry: str | None = strawberry.UNSET
    monthly_revenue: str | None = strawberry.UNSET
    requested_amount: str | None = strawberry.UNSET
    priority: LeadPriority | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    custom_fields: JSON | None = strawberry.UNSET


# Creating takes every field an update takes, and the four an update may not change.
@strawberry.input(description="A new lead; every field is optional (spec: Create a Lead).")
class CreateLeadInput(UpdateLeadInput):
    priority: LeadPriority | None = strawberry.field(
        default=strawberry.UNSET, description="Defaults to NORMAL"
    )
    source: LeadSource | None = strawberry.field(
        default=strawberry.UNSET, description="Defaults to MANUAL"
    )
    stage_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Defaults to the first stage"
    )
    assign_to_advisor_id: strawberry.ID | None = strawberry.UNSET
    contact_id: strawberry.ID | None = strawberry.UNSET
