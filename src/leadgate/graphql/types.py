"""GraphQL object types: thin views over domain models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from leadgate.domain import models
from leadgate.domain.errors import NotFound, ValidationFailed
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


@strawberry.type
class Lead:
    id: strawberry.ID
    business_name: str | None
    contact_first_name: str | None
    contact_last_name: str | None
    email: str | None
    phone: str | None
    industry: str | None
    monthly_revenue: str | None = strawberry.field(description="Numeric string, as in the spec")
    requested_amount: str | None = strawberry.field(description="Numeric string, as in the spec")
    source: LeadSource
    priority: LeadPriority
    is_do_not_call: bool
    dnc_reason: str | None
    dnc_at: datetime | None
    tags: list[str]
    custom_fields: JSON
    external_ids: JSON
    lead_score: int | None
    contact_id: strawberry.ID | None
    last_contacted_at: datetime | None
    stage_changed_at: datetime
    converted_at: datetime | None
    converted_account_id: strawberry.ID | None
    converted_contact_id: strawberry.ID | None
    import_job_id: strawberry.ID | None
    created_by: strawberry.ID | None
    created_at: datetime
    updated_at: datetime
    stage_id: strawberry.Private[UUID]
    primary_advisor_id: strawberry.Private[UUID | None]
    # Set when the stage and advisor were read with the lead (writes, events): no loader then.
    record: strawberry.Private[models.LeadRecord | None] = None

    @strawberry.field
    async def stage(self, info: Info) -> Stage:
        if self.record is not None:
            return Stage.from_model(self.record.stage)
        stage = await info.context.loaders.stages.get(self.stage_id)
        # The foreign key guarantees the stage exists in the lead's organization.
        if stage is None:
            raise LookupError(f"stage {self.stage_id} of lead {self.id} is missing")
        return Stage.from_model(stage)

    @strawberry.field
    async def primary_advisor(self, info: Info) -> Advisor | None:
        if self.primary_advisor_id is None:
            return None
        if self.record is not None and self.record.advisor is not None:
            return Advisor.from_model(self.record.advisor)
        advisor = await info.context.loaders.advisors.get(self.primary_advisor_id)
        return Advisor.from_model(advisor) if advisor is not None else None

    @strawberry.field(description="This lead's events, newest first (limit 1-100).")
    async def history(self, info: Info, limit: int = 20) -> list[LeadEvent]:
        if not 1 <= limit <= MAX_HISTORY:
            raise ValidationFailed.single("limit", f"must be between 1 and {MAX_HISTORY}")
        events = await info.context.loaders.history(limit).get(UUID(self.id))
        return [LeadEvent.from_model(e) for e in events or []]

    @classmethod
    def from_record(cls, record: models.LeadRecord) -> Lead:
        lead = cls.from_model(record.lead)
        lead.record = record
        return lead

    @classmethod
    def from_model(cls, lead: models.Lead) -> Lead:
        custom_fields: Any = lead.custom_fields
        external_ids: Any = lead.external_ids
        return cls(
            id=strawberry.ID(str(lead.id)),
            business_name=lead.business_name,
            contact_first_name=lead.contact_first_name,
            contact_last_name=lead.contact_last_name,
            email=lead.email,
            phone=lead.phone,
            industry=lead.industry,
            monthly_revenue=lead.monthly_revenue,
            requested_amount=lead.requested_amount,
            source=lead.source,
            priority=lead.priority,
            is_do_not_call=lead.is_do_not_call,
            dnc_reason=lead.dnc_reason,
            dnc_at=lead.dnc_at,
            tags=lead.tags,
            custom_fields=custom_fields,
            external_ids=external_ids,
            lead_score=lead.lead_score,
            contact_id=_id(lead.contact_id),
            last_contacted_at=lead.last_contacted_at,
            stage_changed_at=lead.stage_changed_at,
            converted_at=lead.converted_at,
            converted_account_id=_id(lead.converted_account_id),
            converted_contact_id=_id(lead.converted_contact_id),
            import_job_id=_id(lead.import_job_id),
            created_by=_id(lead.created_by),
            created_at=lead.created_at,
            updated_at=lead.updated_at,
            stage_id=lead.stage_id,
            primary_advisor_id=lead.primary_advisor_id,
        )


@strawberry.type(description="Something that happened to a lead; `id` orders all events.")
class LeadEvent:
    id: strawberry.ID
    type: str
    sequence: int = strawberry.field(description="1, 2, 3... per lead, in order")
    occurred_at: datetime
    data: JSON
    lead_id: strawberry.Private[UUID]

    @strawberry.field(description="The lead as it is now")
    async def lead(self, info: Info) -> Lead:
        lead = await info.context.loaders.leads.get(self.lead_id)
        if lead is None:
            raise NotFound("Lead not found")
        return Lead.from_model(lead)

    @classmethod
    def from_model(cls, event: models.LeadEvent) -> LeadEvent:
        payload: Any = event.payload
        return cls(
            id=strawberry.ID(str(event.id)),
            type=event.type,
            sequence=event.sequence,
            occurred_at=event.created_at,
            data=payload,
            lead_id=event.lead_id,
        )


@strawberry.type
class LeadPage:
    nodes: list[Lead]
    total: int
    page: int
    limit: int
    has_more: bool

    @classmethod
    def from_model(cls, page: models.LeadPage) -> LeadPage:
        return cls(
            nodes=[Lead.from_record(record) for record in page.records],
            total=page.total,
            page=page.page,
            limit=page.limit,
            has_more=page.has_more,
        )
