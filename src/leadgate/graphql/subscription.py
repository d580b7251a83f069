"""Subscription root: leadStageChanged, over graphql-transport-ws."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Final
from uuid import UUID

import strawberry

from leadgate.domain.errors import ValidationFailed
from leadgate.domain.ids import parse_event_id
from leadgate.graphql.arguments import optional_uuid_argument
from leadgate.graphql.context import Info
from leadgate.graphql.types import Lead, Stage
from leadgate.services.event_feed import Delivery, Position

STATUS_CHANGED: Final = frozenset({"lead.status_changed"})


@strawberry.type(description="A lead moved from one pipeline stage to another.")
class LeadStageChange:
    event_id: strawberry.ID = strawberry.field(
        description="The event's id: resume after it with `after`"
    )
    lead: Lead = strawberry.field(description="The lead as it is now")
    from_stage: Stage | None
    to_stage: Stage
    changed_at: datetime

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> LeadStageChange | None:
        event, record = delivery.event, delivery.record
        to_stage = delivery.stages.get(UUID(event.payload["stage"]["id"]))
        previous = event.payload.get("previousStage") or {}
        from_stage = delivery.stages.get(UUID(previous["id"])) if "id" in previous else None
        if record is None or to_stage is None:
            return None
        return cls(
            event_id=strawberry.ID(str(event.id)),
            lead=Lead.from_record(record),
            from_stage=Stage.from_model(from_stage) if from_stage else None,
            to_stage=Stage.from_model(to_stage),
            changed_at=event.created_at,
        )


def _cursor(after: strawberry.ID | None) -> int | None:
    if after is None:
        return None
    cursor = parse_event_id(after)
    if cursor is None:
        raise ValidationFailed.single("after", "must be an event id")
    return cursor


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Your organization's stage moves, live. `leadId` narrows to one lead, "
        "`stageId` to moves into or out of one stage; `after` first replays every move after "
        "that event id (from the last 30 days), then continues live: no gap, no duplicate."
    )
    async def lead_stage_changed(
        self,
        info: Info,
        lead_id: strawberry.ID | None = None,
        stage_id: strawberry.ID | None = None,
        after: strawberry.ID | None = None,
    ) -> AsyncGenerator[LeadStageChange, None]:
        ctx = info.context
        lead = optional_uuid_argument("leadId", lead_id)
        stage = optional_uuid_argument("stageId", stage_id)
        cursor = _cursor(after)
        position = Position()
        connection = ctx.connection
        if connection is not None:
            connection.follow(position)  # its cursor, told to the client at shutdown
        try:
            deliveries = ctx.feed.stream(
                ctx.principal, types=STATUS_CHANGED, lead_id=lead, after=cursor, position=position
            )
            async for delivery in deliveries:
                change = LeadStageChange.from_delivery(delivery)
                if change is None:
                    continue
                if stage is not None and str(stage) not in (
                    change.to_stage.id,
                    change.from_stage.id if change.from_stage else None,
                ):
                    continue
                # Loaders per delivered event: `lead { history }` must include this event,
                # not repeat what an earlier event's loaders cached (issue 8 #13).
                ctx.renew_loaders()
                yield change
        finally:
            if connection is not None:
                connection.unfollow(position)
