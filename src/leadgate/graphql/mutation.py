"""Mutation root: createLead, updateLead, moveLead, assignLead."""

from __future__ import annotations

from typing import Annotated

import strawberry
from graphql import FieldNode

from leadgate.domain.errors import BadRequest
from leadgate.graphql.arguments import optional_uuid_argument, target_id, uuid_argument
from leadgate.graphql.context import Info
from leadgate.graphql.inputs import CreateLeadInput, UpdateLeadInput, provided_fields
from leadgate.graphql.types import Lead
from leadgate.services.lead_writes import WriteContext, WriteResult

IdempotencyKey = Annotated[
    str | None,
    strawberry.argument(
        description="Retry-safe key (1-255 printable characters), kept 24 h. Same key and same "
        "request: the original lead, with extensions.idempotentReplayed. Alternatively the "
        "Idempotency-Key header, when the operation has a single mutation field."
    ),
]


def _write_context(info: Info, argument: str | None) -> WriteContext:
    ctx = info.context
    key = argument
    header = ctx.idempotency_header
    if header is not None:
        root_fields = info.operation.selection_set.selections
        if len(root_fields) != 1 or not isinstance(root_fields[0], FieldNode):
            raise BadRequest(
                "The Idempotency-Key header applies to an operation with one mutation field; "
                "use the idempotencyKey argument of each field instead"
            )
        if argument is not None and argument != header:
            raise BadRequest("The Idempotency-Key header and idempotencyKey argument differ")
        key = header
    return WriteContext(principal=ctx.principal, request_id=ctx.request_id, idempotency_key=key)


def _lead(info: Info, result: WriteResult) -> Lead:
    ctx = info.context
    if result.replayed:
        ctx.response_extensions["idempotentReplayed"] = True
    return Lead.from_record(result.record)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a lead (→ lead.created).")
    async def create_lead(
        self,
        info: Info,
        input: CreateLeadInput,  # noqa: A002 - the contract's argument name
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        writer = info.context.writer
        result = await writer.create(_write_context(info, idempotency_key), provided_fields(input))
        return _lead(info, result)

    @strawberry.mutation(description="Change a lead's fields (→ lead.updated).")
    async def update_lead(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        input: UpdateLeadInput,  # noqa: A002
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        result = await info.context.writer.update(
            ctx, target_id(id, "Lead"), provided_fields(input)
        )
        return _lead(info, result)

    @strawberry.mutation(
        description="Move a lead to a stage (→ lead.status_changed; a no-op to its own stage)."
    )
    async def move_lead(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        stage_id: strawberry.ID,
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        stage = uuid_argument("stageId", stage_id)
        result = await info.context.writer.move(ctx, target_id(id, "Lead"), stage)
        return _lead(info, result)

    @strawberry.mutation(description="Assign a lead to an advisor, or null to unassign.")
    async def assign_lead(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        advisor_id: strawberry.ID | None,
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        advisor = optional_uuid_argument("advisorId", advisor_id)
        result = await info.context.writer.assign(ctx, target_id(id, "Lead"), advisor)
        return _lead(info, result)
