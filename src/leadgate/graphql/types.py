"""GraphQL object types: thin views over domain models."""

from __future__ import annotations

import operator
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types.base import get_object_definition

from leadgate.domain import models
from leadgate.domain.errors import ValidationFailed
from leadgate.domain.lead_fields import LEAD_FIELDS, RELATIONS, FieldSpec
from leadgate.graphql.context import Info

# The domain enums are the GraphQL enums: names for GraphQL, values for the REST mirror.
LeadSource = models.LeadSource
LeadPriority = models.LeadPriority
strawberry.enum(LeadSource, name="LeadSource")
strawberry.enum(LeadPriority, name="LeadPriority")


MAX_HISTORY: Final = 100


def _id(value: UUID | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


@strawberry.type
class Stage:
    id: strawberry.ID
    stage_key: str
    stage_label: str
    color: str
    semantic_slot: str
    position: int

    @classmethod
    def from_model(cls, stage: models.Stage) -> Stage:
        return cls(
            id=strawberry.ID(str(stage.id)),
            stage_key=stage.stage_key,
            stage_label=stage.stage_label,
            color=stage.color,
            semantic_slot=stage.semantic_slot,
            position=stage.position,
        )


@strawberry.type
class Advisor:
    id: strawberry.ID
    name: str
    email: str | None

    @classmethod
    def from_model(cls, advisor: models.Advisor) -> Advisor:
        return cls(id=strawberry.ID(str(advisor.id)), name=advisor.name, email=advisor.email)


def graphql_type(f: FieldSpec, *, nullable: bool | None = None) -> Any:
    """The strawberry annotation of a field of the table (nullable as declared, or as told)."""
    base: Any = (
        strawberry.ID
        if f.decl.identifier
        else {UUID: strawberry.ID, dict[str, Any]: JSON}.get(f.python_type, f.python_type)
    )
    return base | None if (f.nullable if nullable is None else nullable) else base


# The fields `Lead` shows as plain values, from the table; relations have resolvers below.
_VALUES: Final = tuple(f for f in LEAD_FIELDS if f.exposed)
_COLUMNS: Final = tuple(f.column for f in _VALUES)
_READ: Final = operator.attrgetter(*_COLUMNS)
# The values that go from the domain lead to GraphQL converted: ids as strawberry IDs.
_IDS: Final = tuple(f.column for f in _VALUES if f.python_type is UUID)


class Lead:
    # Every plain field is generated from the table (below the class). The lead it shows:
    model: strawberry.Private[models.Lead]
    # Set when the stage and advisor were read with the lead (writes, events): no loader then.
    record: strawberry.Private[models.LeadRecord | None] = None

    @strawberry.field
    async def stage(self, info: Info) -> Stage:
        if self.record is not None:
            return Stage.from_model(self.record.stage)
        stage = await info.context.loaders.stages.get(self.model.stage_id)
        # The foreign key guarantees the stage exists in the lead's organization.
        if stage is None:
            raise LookupError(f"stage {self.model.stage_id} of lead {self.model.id} is missing")
        return Stage.from_model(stage)

    @strawberry.field
    async def primary_advisor(self, info: Info) -> Advisor | None:
        advisor_id = self.model.primary_advisor_id
        if advisor_id is None:
            return None
        if self.record is not None and self.record.advisor is not None:
            return Advisor.from_model(self.record.advisor)
        advisor = await info.context.loaders.advisors.get(advisor_id)
        return Advisor.from_model(advisor) if advisor is not None else None

    @strawberry.field(description="This lead's events, newest first (limit 1-100).")
    async def history(self, info: Info, limit: int = 20) -> list[LeadEvent]:
        if not 1 <= limit <= MAX_HISTORY:
            raise ValidationFailed.single("limit", f"must be between 1 and {MAX_HISTORY}")
        events = await info.context.loaders.history(limit).get(self.model.id)
        return [LeadEvent.from_model(e) for e in events or []]

    @classmethod
    def from_record(cls, record: models.LeadRecord) -> Lead:
        lead = cls.from_model(record.lead)
        lead.record = record
        return lead

    @classmethod
    def from_model(cls, lead: models.Lead) -> Lead:
        made = cls.__new__(cls)
        # What the dataclass __init__ does, without thirty keyword arguments: this runs for
        # every lead of every page.
        values = vars(made)
        values.update(zip(_COLUMNS, _READ(lead), strict=True), model=lead, record=None)
        for column in _IDS:
            values[column] = _id(values[column])
        return made


def _generate_lead_fields() -> None:
    """Put the table's plain fields first, in table order, as if written in the class body."""
    generated = {f.column: graphql_type(f) for f in _VALUES}
    Lead.__annotations__ = {**generated, **Lead.__annotations__}
    for f in _VALUES:
        setattr(Lead, f.column, strawberry.field(name=f.api, description=f.decl.description))


_generate_lead_fields()
strawberry.type(Lead)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# The table declares the relations, this class resolves them: the two must name the same.
if {
    _camel(f.python_name)
    for f in get_object_definition(Lead, strict=True).fields
    if f.base_resolver
} != {r.api for r in RELATIONS}:
    raise TypeError("graphql.types.Lead resolves other relations than the field table declares")


@strawberry.type(description="Who made an event happen, and in which request.")
class Actor:
    type: str = strawberry.field(description="api_key or user")
    id: strawberry.ID = strawberry.field(
        description="The API key's id, or the user's id (the token's `sub`)"
    )
    request_id: str = strawberry.field(description="The X-Request-Id of the write")

    @classmethod
    def from_model(cls, actor: models.EventActor | None) -> Actor | None:
        if actor is None:
            return None
        return cls(type=actor.type, id=strawberry.ID(actor.id), request_id=actor.request_id)


@strawberry.type(description="Something that happened to a lead; `id` orders all events.")
class LeadEvent:
    id: strawberry.ID
    type: str
    sequence: int = strawberry.field(description="1, 2, 3... per lead, in order")
    occurred_at: datetime
    data: JSON
    actor: Actor | None = strawberry.field(
        description="Who did it; null for events from before actors were recorded, or from "
        "the command line"
    )
    lead_id: strawberry.Private[UUID]

    @strawberry.field(description="The lead as it is now; null once it was erased (eraseLead)")
    async def lead(self, info: Info) -> Lead | None:
        lead = await info.context.loaders.leads.get(self.lead_id)
        return Lead.from_model(lead) if lead is not None else None

    @classmethod
    def from_model(cls, event: models.LeadEvent) -> LeadEvent:
        payload: Any = event.payload
        return cls(
            id=strawberry.ID(str(event.id)),
            type=event.type,
            sequence=event.sequence,
            occurred_at=event.created_at,
            data=payload,
            actor=Actor.from_model(event.actor),
            lead_id=event.lead_id,
        )


def exactness_description(total: str) -> str:
    """The description of a page's totalIsExact beside its field named `total`."""
    return (
        f"Whether `{total}` is exact: always without search or filter, and up to "
        "LEADGATE_EXACT_TOTAL_LIMIT matches; past that, the planner's estimate"
    )


@strawberry.type
class LeadPage:
    nodes: list[Lead]
    total: int = strawberry.field(
        description="Every lead the search and filter admit; see totalIsExact"
    )
    total_is_exact: bool = strawberry.field(description=exactness_description("total"))
    page: int
    limit: int
    has_more: bool

    @classmethod
    def from_model(cls, page: models.LeadPage) -> LeadPage:
        return cls(
            nodes=[Lead.from_record(record) for record in page.records],
            total=page.total,
            total_is_exact=page.total_is_exact,
            page=page.page,
            limit=page.limit,
            has_more=page.has_more,
        )
