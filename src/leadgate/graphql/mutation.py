"""Mutation root: createLead, updateLead, moveLead, assignLead, and the lead lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from graphql import FieldNode

from leadgate.domain.errors import BadRequest
from leadgate.graphql.arguments import optional_uuid_argument, target_id, uuid_argument
from leadgate.graphql.context import Info
from leadgate.graphql.imports import ImportFormat, ImportJob, start_import
from leadgate.graphql.inputs import (
    CreateLeadInput,
    ExternalIdInput,
    OnDuplicate,
    UpdateLeadInput,
    provided_fields,
)
from leadgate.graphql.types import Lead
from leadgate.services import lead_matching
from leadgate.services.lead_lifecycle import LeadLifecycle, dnc_reason
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
    if result.duplicates:
        found = ctx.response_extensions.setdefault("duplicates", [])
        found.extend(d.document() for d in result.duplicates)
    return Lead.from_record(result.record)


@strawberry.type(description="An erased lead: its id and when it was erased, nothing else.")
class LeadErasure:
    id: strawberry.ID
    erased_at: datetime


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create a lead (→ lead.created). Leads with the same normalised email or "
        "phone are listed in extensions.duplicates ({id, reason}); onDuplicate: REJECT refuses "
        "with DUPLICATE_LEAD instead."
    )
    async def create_lead(
        self,
        info: Info,
        input: CreateLeadInput,  # noqa: A002 - the contract's argument name
        idempotency_key: IdempotencyKey = None,
        on_duplicate: OnDuplicate = OnDuplicate.REPORT,  # type: ignore[valid-type]
    ) -> Lead:
        writer = info.context.writer
        result = await writer.create(
            _write_context(info, idempotency_key),
            provided_fields(input),
            on_duplicate=lead_matching.OnDuplicate(on_duplicate),
        )
        return _lead(info, result)

    @strawberry.mutation(
        description="Create the lead an external id names, or update it, in one atomic step "
        "(→ lead.created or lead.updated). The create-only fields (source, stageId, "
        "assignToAdvisorId, contactId) apply only when it creates."
    )
    async def upsert_lead(
        self,
        info: Info,
        external_id: ExternalIdInput,
        input: CreateLeadInput,  # noqa: A002
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        key = external_id.to_key("externalId")
        result = await info.context.writer.upsert(ctx, key, provided_fields(input))
        return _lead(info, result)

    @strawberry.mutation(
        description="Merge a duplicate into a primary lead (→ lead.merged on both): the "
        "primary's empty fields take the duplicate's values, its external ids move over, the "
        "duplicate gets mergedInto (its past events stay on it). Merging again is a no-op."
    )
    async def merge_leads(
        self,
        info: Info,
        primary_id: strawberry.ID,
        duplicate_id: strawberry.ID,
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        primary = target_id(primary_id, "Lead")
        duplicate = target_id(duplicate_id, "Lead")
        result = await info.context.writer.merge(ctx, primary, duplicate)
        return _lead(info, result)

    @strawberry.mutation(
        description="Import leads from CSV (a header row of CreateLeadInput field names; tags "
        "separated by ;) or JSON lines given as a string, bounded by the request body limit "
        "(larger files: POST /v1/imports). Answers the job at once; its valid rows are written "
        "in batches (source CSV_IMPORT, importJobId set, → lead.created each). A malformed "
        "file is refused whole (VALIDATION_ERROR on `file`)."
    )
    async def import_leads(
        self,
        info: Info,
        content: str,
        format: ImportFormat,  # noqa: A002 - the argument's name in the contract
        idempotency_key: IdempotencyKey = None,
    ) -> ImportJob:
        ctx = _write_context(info, idempotency_key)
        job, replayed = await start_import(info.context.importer, ctx, content, format)
        if replayed:
            info.context.response_extensions["idempotentReplayed"] = True
        return job

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

    # --- the lifecycle (issue 12 #1, #2) ------------------------------------------------------

    @strawberry.mutation(
        description="Convert a lead: sets convertedAt, convertedAccountId and convertedContactId "
        "and moves it to your pipeline's first won-slot stage (→ lead.converted). A converted "
        "lead cannot be converted again nor moved out of won until reopenLead."
    )
    async def convert_lead(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        account_id: strawberry.ID | None = None,
        contact_id: strawberry.ID | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        account = optional_uuid_argument("accountId", account_id)
        contact = optional_uuid_argument("contactId", contact_id)
        lifecycle = LeadLifecycle.sharing(info.context.writer)
        result = await lifecycle.convert(
            ctx, target_id(id, "Lead"), account_id=account, contact_id=contact
        )
        return _lead(info, result)

    @strawberry.mutation(
        description="Clear a lead's conversion; it stays in its stage (→ lead.reopened; a no-op "
        "when it is not converted)."
    )
    async def reopen_lead(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        lifecycle = LeadLifecycle.sharing(info.context.writer)
        return _lead(info, await lifecycle.reopen(ctx, target_id(id, "Lead")))

    @strawberry.mutation(
        description="Mark a lead do-not-call, with an optional reason (at most 500 characters): "
        "isDoNotCall, dncReason, dncAt (→ lead.dnc_changed). The lead stays listed with its "
        "phone; isDoNotCall is the flag callers must honour."
    )
    async def mark_do_not_call(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        reason: str | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        lifecycle = LeadLifecycle.sharing(info.context.writer)
        result = await lifecycle.set_do_not_call(
            ctx, target_id(id, "Lead"), do_not_call=True, reason=dnc_reason(reason)
        )
        return _lead(info, result)

    @strawberry.mutation(
        description="Clear do-not-call: isDoNotCall false, dncReason and dncAt null "
        "(→ lead.dnc_changed)."
    )
    async def clear_do_not_call(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        lifecycle = LeadLifecycle.sharing(info.context.writer)
        result = await lifecycle.set_do_not_call(
            ctx, target_id(id, "Lead"), do_not_call=False, reason=None
        )
        return _lead(info, result)

    @strawberry.mutation(
        description="Log a contact with the lead at `at` (default now; not more than a minute "
        "ahead of the server's clock): lastContactedAt becomes the latest contact "
        "(→ lead.contacted, data.contactedAt)."
    )
    async def log_contact(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        at: datetime | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        lifecycle = LeadLifecycle.sharing(info.context.writer)
        return _lead(info, await lifecycle.log_contact(ctx, target_id(id, "Lead"), at))

    @strawberry.mutation(
        description="Archive a lead: hidden from leads, leadsConnection, search and "
        "subscriptions unless includeArchived; lead(id) still answers, with archivedAt "
        "(→ lead.archived)."
    )
    async def archive_lead(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        lifecycle = LeadLifecycle.sharing(info.context.writer)
        return _lead(info, await lifecycle.set_archived(ctx, target_id(id, "Lead"), archived=True))

    @strawberry.mutation(description="Restore an archived lead (→ lead.restored).")
    async def restore_lead(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        idempotency_key: IdempotencyKey = None,
    ) -> Lead:
        ctx = _write_context(info, idempotency_key)
        lifecycle = LeadLifecycle.sharing(info.context.writer)
        result = await lifecycle.set_archived(ctx, target_id(id, "Lead"), archived=False)
        return _lead(info, result)

    @strawberry.mutation(
        description="Erase a lead's personal data for good (a write key or the admin role): "
        "the lead, the stored idempotent responses that show it and the personal fields of its "
        "past events; its pending webhook deliveries are cancelled (→ lead.erased, without "
        "personal data)."
    )
    async def erase_lead(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        idempotency_key: IdempotencyKey = None,
    ) -> LeadErasure:
        ctx = _write_context(info, idempotency_key)
        lifecycle = LeadLifecycle.sharing(info.context.writer)
        erasure = await lifecycle.erase(ctx, target_id(id, "Lead"))
        if erasure.replayed:
            info.context.response_extensions["idempotentReplayed"] = True
        return LeadErasure(id=strawberry.ID(str(erasure.lead_id)), erased_at=erasure.erased_at)
