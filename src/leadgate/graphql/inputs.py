"""Mutation inputs. They carry the client's fields untouched to the one domain validator."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Final

import strawberry

from leadgate.domain.lead_fields import CREATE_INPUTS, UPDATE_INPUTS, FieldSpec
from leadgate.graphql.types import graphql_type
from leadgate.services import lead_matching
from leadgate.services.lead_matching import ExternalKey

# Python attribute (the column) → the input field's name.
_INPUT_NAMES: Final = {f.column: f.input_name for f in CREATE_INPUTS}


def provided_fields(value: object) -> dict[str, Any]:
    """The fields the client sent, by API name: left out stays out, null stays null."""
    raw: dict[str, Any] = {}
    for field in dataclasses.fields(value):  # type: ignore[arg-type]
        item = getattr(value, field.name)
        if item is strawberry.UNSET:
            continue
        raw[_INPUT_NAMES[field.name]] = item.value if isinstance(item, enum.Enum) else item
    return raw


def _generate(cls: type, fields: tuple[FieldSpec, ...], *, create: bool) -> None:
    """The table's input fields on `cls`, in table order; every one optional (UNSET)."""
    cls.__annotations__ = {f.column: graphql_type(f, nullable=True) for f in fields}
    for f in fields:
        description = f.decl.input_description if create else None
        setattr(
            cls,
            f.column,
            strawberry.field(default=strawberry.UNSET, name=f.input_name, description=description),
        )


class UpdateLeadInput:
    pass


# Creating takes every field an update takes, and the ones an update may not change.
class CreateLeadInput:
    pass


_generate(UpdateLeadInput, UPDATE_INPUTS, create=False)
strawberry.input(
    UpdateLeadInput,
    description="Changes to a lead: a field left out is unchanged, a field set to null is "
    "cleared. The stage and advisor change through moveLead and assignLead.",
)
_generate(CreateLeadInput, CREATE_INPUTS, create=True)
strawberry.input(
    CreateLeadInput, description="A new lead; every field is optional (spec: Create a Lead)."
)


@strawberry.input(description="A lead's id in another system (issue 12 #4).")
class ExternalIdInput:
    system: str = strawberry.field(description="[a-z][a-z0-9_]{0,31}, e.g. hubspot")
    id: str = strawberry.field(description="1-255 printable characters")  # noqa: A003

    def to_key(self, field: str) -> ExternalKey:
        return ExternalKey.checked(self.system, self.id, field=field)


OnDuplicate = strawberry.enum(
    lead_matching.OnDuplicate,
    description="What createLead does when the organization has a lead with the same "
    "normalised email or phone: REPORT it in extensions.duplicates, or REJECT (DUPLICATE_LEAD).",
)
