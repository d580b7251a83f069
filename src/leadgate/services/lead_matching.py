"""External ids, likely duplicates and merges (issue 12 #4, #5): the steps of a lead write
that match one lead against the others, each run on the write's own connection inside its
transaction (services/lead_writes.py owns the transaction; imports call
`upsert_by_external_id` inside theirs).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, overload
from uuid import UUID

import asyncpg

from leadgate.domain.errors import DuplicateLead, FieldError, NotFound, ValidationFailed
from leadgate.domain.lead_fields import VALUE_INPUTS
from leadgate.domain.models import EventActor, Lead, LeadRecord
from leadgate.domain.representation import lead_document
from leadgate.domain.validation import (
    API_NAMES,
    LeadDraft,
    external_id_problem,
    validate_create,
    validate_update,
)
from leadgate.store import duplicates, events, external_ids, idempotency, lead_writes, leads
from leadgate.store import references as refs


class OnDuplicate(enum.StrEnum):
    """What createLead does with likely duplicates: report them (the default) or refuse."""

    REPORT = "report"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A lead that shares the new lead's email or phone (`reason`: "email" or "phone")."""

    id: UUID
    reason: str

    def document(self) -> dict[str, str]:
        return {"id": str(self.id), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ExternalKey:
    system: str
    id: str

    @classmethod
    def checked(cls, system: object, external_id: object, *, field: str) -> ExternalKey:
        problem = external_id_problem(system, external_id)
        if problem is not None:
            raise ValidationFailed.single(field, problem)
        assert isinstance(system, str) and isinstance(external_id, str)  # noqa: S101 - checked
        return cls(system, external_id)

    @classmethod
    def parse(cls, text: str, *, field: str) -> ExternalKey:
        """`system:id` (the REST query parameter's form; the id may contain colons)."""
        system, sep, external_id = text.partition(":")
        if not sep:
            raise ValidationFailed.single(field, "must be system:id, e.g. hubspot:123")
        return cls.checked(system, external_id, field=field)


@dataclass(frozen=True, slots=True)
class Matched:
    """A matching write's outcome: the lead now, the event to record (None: nothing changed),
    whether it was created, and the likely duplicates a create found."""

    record: LeadRecord
    event: tuple[str, dict[str, Any]] | None
    created: bool = False
    duplicates: tuple[Duplicate, ...] = field(default_factory=tuple)


_REFERENCE_FIELDS: Final = {
    "stage": "stageId",
    "advisor": "assignToAdvisorId",
    "contact": "contactId",
}
# What a merge fills on the primary from the duplicate: the values an update may set.
_FILLABLE: Final = tuple(
    f.column for f in VALUE_INPUTS if f.decl.update and f.column != "external_ids"
)
_UPDATABLE_INPUTS: Final = frozenset(f.input_name for f in VALUE_INPUTS if f.decl.update)


def _empty(value: object) -> bool:
    return value is None or value == [] or value == {}


async def sync_external_ids(
    conn: asyncpg.Connection, org: UUID, lead_id: UUID, ids: Mapping[str, str]
) -> None:
    """The side table as the lead's externalIds now say; another lead's id → DUPLICATE_LEAD."""
    if await external_ids.sync(conn, org, lead_id, ids):
        return
    held = await external_ids.holder(conn, org, lead_id, ids)
    holder, system = held if held is not None else (lead_id, "external id")
    raise DuplicateLead(holder, f"{system} external id")


@overload
async def create_lead(
    conn: asyncpg.Connection,
    org: UUID,
    draft: LeadDraft,
    *,
    created_by: str | None,
    on_duplicate: OnDuplicate = ...,
    claim: None = ...,
) -> Matched: ...


@overload
async def create_lead(
    conn: asyncpg.Connection,
    org: UUID,
    draft: LeadDraft,
    *,
    created_by: str | None,
    on_duplicate: OnDuplicate = ...,
    claim: idempotency.Claim,
) -> Matched | None: ...


async def create_lead(
    conn: asyncpg.Connection,
    org: UUID,
    draft: LeadDraft,
    *,
    created_by: str | None,
    on_duplicate: OnDuplicate = OnDuplicate.REPORT,
    claim: idempotency.Claim | None = None,
) -> Matched | None:
    """Insert the lead, its external ids, and find its likely duplicates, in one statement
    (store/lead_writes.py CREATE_LEAD) unless it names a stage, advisor or contact to check
    or has external ids. With `claim`, its idempotency key is claimed first (in that
    statement when it can); None: another request holds the key, and nothing was written."""
    if draft.stage_id or draft.advisor_id or draft.contact_id:
        # Claimed first: a retry is answered its replay, even if a reference is gone since.
        if claim is not None and not await idempotency.claimed(conn, org, claim):
            return None
        claim = None
        await _check_references(conn, org, draft)
    email = duplicates.email_key(draft.values.get("email"))
    phone = duplicates.phone_key(draft.values.get("phone"))
    reject = on_duplicate is OnDuplicate.REJECT
    created = await lead_writes.create_lead(
        conn,
        org,
        claim=claim,
        values=draft.values,
        stage_id=draft.stage_id,
        advisor_id=draft.advisor_id,
        contact_id=draft.contact_id,
        created_by=created_by,
        email_key=email,
        phone_key=phone,
        reject_duplicates=reject,
    )
    if created is None:
        return None
    if created.record is None:  # refused: it has a duplicate
        raise DuplicateLead(*created.duplicates[0])
    record = created.record
    if record.lead.external_ids:
        await sync_external_ids(conn, org, record.lead.id, record.lead.external_ids)
    return Matched(
        record,
        ("lead.created", {}),
        created=True,
        duplicates=tuple(Duplicate(i, r) for i, r in created.duplicates),
    )


async def _check_references(conn: asyncpg.Connection, org: UUID, draft: LeadDraft) -> None:
    missing = await refs.missing_references(
        conn,
        org,
        stage_id=draft.stage_id,
        advisor_id=draft.advisor_id,
        contact_id=draft.contact_id,
    )
    errors = [
        FieldError(name, f"no such {kind} in your organization")
        for kind, name in _REFERENCE_FIELDS.items()
        if kind in missing
    ]
    if errors:
        raise ValidationFailed(errors)


async def update_lead(
    conn: asyncpg.Connection, org: UUID, current: Lead, values: Mapping[str, Any]
) -> Matched:
    """Change the fields that differ (the lead is locked); externalIds resync their rows."""
    changed = {c: v for c, v in values.items() if getattr(current, c) != v}
    if not changed:
        return Matched(await _record(conn, org, current.id), None)
    record = await lead_writes.update_fields(conn, org, current.id, changed)
    if "external_ids" in changed:
        await sync_external_ids(conn, org, current.id, record.lead.external_ids)
    changes = {
        API_NAMES[c]: {"from": getattr(current, c), "to": getattr(record.lead, c)} for c in changed
    }
    return Matched(record, ("lead.updated", {"changes": changes}))


def _with_key(raw: Mapping[str, Any], key: ExternalKey) -> dict[str, Any]:
    """The input with the upsert's key among its externalIds (a different id for the key's
    system is a mistake, not a rename)."""
    given = raw.get("externalIds")
    ids = dict(given) if isinstance(given, dict) else {}
    if ids.get(key.system, key.id) != key.id:
        raise ValidationFailed.single(
            f"externalIds.{key.system}", "differs from the externalId being upserted"
        )
    ids[key.system] = key.id
    return {**raw, "externalIds": ids}


async def upsert(
    conn: asyncpg.Connection,
    org: UUID,
    key: ExternalKey,
    raw: object,
    *,
    created_by: str | None,
) -> Matched:
    """Create the lead `key` names, or update it: one step, whoever else upserts it at once.

    `raw` is a create input. Updating applies the fields an update takes; the create-only
    ones (source, stageId, assignToAdvisorId, contactId) only apply when this creates.
    """
    if not isinstance(raw, Mapping):
        raise ValidationFailed.single("input", "must be a JSON object")
    given = _with_key(raw, key)
    draft = validate_create(given)  # every field checked, whichever way this goes
    await external_ids.lock(conn, org, key.system, key.id)
    lead_id = await external_ids.find_lead(conn, org, key.system, key.id)
    if lead_id is None:
        return await create_lead(conn, org, draft, created_by=created_by)
    current = await lead_writes.lock_lead(conn, org, lead_id)
    if current is None:  # the row cascades with its lead: only a bug leaves one behind
        raise NotFound("Lead not found")
    values = validate_update({k: v for k, v in given.items() if k in _UPDATABLE_INPUTS})
    if "externalIds" not in raw:
        values.pop("external_ids", None)  # left out: unchanged (it holds the key already)
    return await update_lead(conn, org, current, values)


@dataclass(frozen=True, slots=True)
class UpsertResult:
    record: LeadRecord
    created: bool
    # The lead_events id recorded (None: the update changed nothing).
    event_id: int | None


async def upsert_by_external_id(
    conn: asyncpg.Connection,
    organization_id: UUID,
    *,
    system: str,
    external_id: str,
    fields: Mapping[str, Any],
    actor: EventActor | None,
    created_by: str | None = None,
    notify: bool = True,
) -> UpsertResult:
    """Upsert one lead by (system, external_id) inside the caller's transaction, with its
    lead.created / lead.updated event (for imports: no idempotency key, no permission check —
    the caller has done both). `fields` is a create input by API name; invalid input raises
    ValidationFailed, another lead holding one of its external ids DuplicateLead."""
    key = ExternalKey.checked(system, external_id, field="externalId")
    matched = await upsert(conn, organization_id, key, fields, created_by=created_by)
    event_id = None
    if matched.event is not None:
        event_type, extra = matched.event
        event_id = await events.insert_event(
            conn,
            organization_id,
            lead_id=matched.record.lead.id,
            sequence=matched.record.sequence,
            type=event_type,
            payload={"lead": lead_document(matched.record), **extra},
            actor=actor,
            notify=notify,
        )
    return UpsertResult(record=matched.record, created=matched.created, event_id=event_id)


async def merge(
    conn: asyncpg.Connection,
    org: UUID,
    primary_id: UUID,
    duplicate_id: UUID,
    *,
    actor: EventActor | None,
    notify: bool = True,
) -> Matched:
    """Merge `duplicate_id` into `primary_id`: the primary's empty fields take the
    duplicate's values, the duplicate's external ids move over (the primary's win a system
    both have), the duplicate points at the primary, and both record `lead.merged`.

    The duplicate's past events stay on it: moving them would renumber per-lead sequences
    consumers already hold. Merging again is a no-op answering the primary.
    """
    if primary_id == duplicate_id:
        raise ValidationFailed.single("duplicateId", "must be another lead than primaryId")
    locked = await duplicates.lock_pair(conn, org, [primary_id, duplicate_id])
    primary, duplicate = locked.get(primary_id), locked.get(duplicate_id)
    if primary is None or duplicate is None:
        raise NotFound("Lead not found")
    if duplicate.merged_into == primary_id:
        return Matched(await _record(conn, org, primary_id), None)
    if duplicate.merged_into is not None:
        raise ValidationFailed.single("duplicateId", "was already merged into another lead")
    if primary.merged_into is not None:
        raise ValidationFailed.single(
            "primaryId", f"was merged into {primary.merged_into}: merge into that lead"
        )
    filled = {
        c: getattr(duplicate, c)
        for c in _FILLABLE
        if _empty(getattr(primary, c)) and not _empty(getattr(duplicate, c))
    }
    moved = {s: i for s, i in duplicate.external_ids.items() if s not in primary.external_ids}
    dropped = {
        s: i for s, i in duplicate.external_ids.items() if primary.external_ids.get(s, i) != i
    }
    # The duplicate lets go of its ids first, so the primary can take them.
    merged = await duplicates.mark_merged(conn, org, duplicate_id, primary_id)
    await external_ids.sync(conn, org, duplicate_id, {})
    changes = dict(filled)
    if moved:
        changes["external_ids"] = {**primary.external_ids, **moved}
    if changes:
        record = await lead_writes.update_fields(conn, org, primary_id, changes)
        await sync_external_ids(conn, org, primary_id, record.lead.external_ids)
    else:
        record = await duplicates.bump_sequence(conn, org, primary_id)
    await events.insert_event(
        conn,
        org,
        lead_id=duplicate_id,
        sequence=merged.sequence,
        type="lead.merged",
        payload={"lead": lead_document(merged), "primaryId": str(primary_id)},
        actor=actor,
        notify=notify,
    )
    detail = {
        "duplicateId": str(duplicate_id),
        "filled": {API_NAMES[c]: value for c, value in filled.items()},
        "movedExternalIds": moved,
        "droppedExternalIds": dropped,
    }
    return Matched(record, ("lead.merged", detail))


async def _record(conn: asyncpg.Connection, org: UUID, lead_id: UUID) -> LeadRecord:
    record = await leads.lead_record(conn, org, lead_id)
    if record is None:
        raise NotFound("Lead not found")
    return record
