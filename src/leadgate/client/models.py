"""Typed views of what the gateway answers: leads in the REST shape, stages, events, pages.

Each model is a frozen dataclass built from the JSON document by `from_document`; unknown
attributes (a newer gateway's) are ignored, and an enum value this SDK does not know stays a
plain string rather than failing the read.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar


class LeadSource(enum.StrEnum):
    MANUAL = "manual"
    CSV_IMPORT = "csv_import"
    API = "api"
    WEB_FORM = "web_form"
    REFERRAL = "referral"
    DIALER = "dialer"


class LeadPriority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


_E = TypeVar("_E", LeadSource, LeadPriority)


def _enum(kind: type[_E], value: Any) -> _E | str:
    try:
        return kind(value)
    except ValueError:
        return str(value)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _required_time(value: Any) -> datetime:
    moment = _time(value)
    if moment is None:
        raise ValueError(f"expected an ISO-8601 date and time, got {value!r}")
    return moment


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Stage:
    """A pipeline stage. `position` is known only where GraphQL answered (REST omits it)."""

    id: str
    stage_key: str
    stage_label: str
    color: str
    semantic_slot: str
    position: int | None = None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Stage:
        position = doc.get("position")
        return cls(
            id=str(doc["id"]),
            stage_key=str(doc["stageKey"]),
            stage_label=str(doc["stageLabel"]),
            color=str(doc["color"]),
            semantic_slot=str(doc["semanticSlot"]),
            position=position if isinstance(position, int) else None,
        )


@dataclass(frozen=True, slots=True)
class Lead:
    """One lead with every attribute of the REST shape (`GET /v1/leads/{id}`)."""

    id: str
    business_name: str | None
    contact_first_name: str | None
    contact_last_name: str | None
    email: str | None
    phone: str | None
    industry: str | None
    monthly_revenue: str | None  # numeric strings, as the API sends them
    requested_amount: str | None
    source: LeadSource | str
    priority: LeadPriority | str
    is_do_not_call: bool
    dnc_reason: str | None
    dnc_at: datetime | None
    tags: tuple[str, ...]
    custom_fields: Mapping[str, Any] = field(hash=False)
    external_ids: Mapping[str, Any] = field(hash=False)
    lead_score: int | None
    stage: Stage
    primary_advisor_id: str | None
    primary_advisor_name: str | None
    contact_id: str | None
    last_contacted_at: datetime | None
    stage_changed_at: datetime
    converted_at: datetime | None
    converted_account_id: str | None
    converted_contact_id: str | None
    import_job_id: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    # Lead lifecycle (issue 12): None from a gateway that does not send them yet.
    merged_into: str | None = None
    archived_at: datetime | None = None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Lead:
        """From `{"id", "type": "lead", "attributes": {…}}`."""
        a = doc["attributes"]
        score = a.get("leadScore")
        return cls(
            id=str(doc["id"]),
            business_name=_text(a.get("businessName")),
            contact_first_name=_text(a.get("contactFirstName")),
            contact_last_name=_text(a.get("contactLastName")),
            email=_text(a.get("email")),
            phone=_text(a.get("phone")),
            industry=_text(a.get("industry")),
            monthly_revenue=_text(a.get("monthlyRevenue")),
            requested_amount=_text(a.get("requestedAmount")),
            source=_enum(LeadSource, a.get("source")),
            priority=_enum(LeadPriority, a.get("priority")),
            is_do_not_call=bool(a.get("isDoNotCall")),
            dnc_reason=_text(a.get("dncReason")),
            dnc_at=_time(a.get("dncAt")),
            tags=tuple(str(t) for t in a.get("tags") or ()),
            custom_fields=dict(a.get("customFields") or {}),
            external_ids=dict(a.get("externalIds") or {}),
            lead_score=score if isinstance(score, int) else None,
            stage=Stage.from_document(a["stage"]),
            primary_advisor_id=_text(a.get("primaryAdvisorId")),
            primary_advisor_name=_text(a.get("primaryAdvisorName")),
            contact_id=_text(a.get("contactId")),
            last_contacted_at=_time(a.get("lastContactedAt")),
            stage_changed_at=_required_time(a.get("stageChangedAt")),
            converted_at=_time(a.get("convertedAt")),
            converted_account_id=_text(a.get("convertedAccountId")),
            converted_contact_id=_text(a.get("convertedContactId")),
            import_job_id=_text(a.get("importJobId")),
            created_by=_text(a.get("createdBy")),
            created_at=_required_time(a.get("createdAt")),
            updated_at=_required_time(a.get("updatedAt")),
            merged_into=_text(a.get("mergedInto")),
            archived_at=_time(a.get("archivedAt")),
        )


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made the change: an API key (`id` is its id) or a user (`id` is the token's sub)."""

    type: str
    id: str
    request_id: str | None

    @classmethod
    def from_document(cls, doc: Any) -> Actor | None:
        if not isinstance(doc, Mapping):
            return None
        rid = doc.get("requestId")
        return cls(type=str(doc["type"]), id=str(doc["id"]), request_id=_text(rid))


def _lead_in(data: Mapping[str, Any]) -> Lead | None:
    """The lead an event's data carries: `data.lead` (events, subscriptions) or the data
    itself (webhook bodies, where data is the lead plus previousStage/stage)."""
    for candidate in (data.get("lead"), data):
        if isinstance(candidate, Mapping) and isinstance(candidate.get("attributes"), Mapping):
            return Lead.from_document(candidate)
    return None


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the pipeline (`lead.created`, `lead.status_changed`, … and, by webhook
    only, the organization events `import.completed` and `import.failed`): from
    GET /v1/events, a subscription, or a verified webhook.

    `id` is the global event id: the `after` cursor to resume from, and the webhook-id.
    `lead_id` is None for an organization event, which is about no lead.
    `lead` is the lead as the event left it, when the event's data carries it.
    """

    id: str
    type: str
    lead_id: str | None
    sequence: int | None
    occurred_at: datetime
    data: Mapping[str, Any] = field(hash=False)
    actor: Actor | None
    lead: Lead | None = field(hash=False)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Event:
        """From REST's `{id, type, leadId, sequence, occurredAt, data, actor}`, GraphQL's
        LeadEvent (`lead { id }` instead of leadId) or a webhook body (`timestamp`)."""
        data = doc.get("data")
        data = dict(data) if isinstance(data, Mapping) else {}
        lead = _lead_in(data)
        lead_id = doc.get("leadId")
        if lead_id is None and isinstance(doc.get("lead"), Mapping):
            lead_id = doc["lead"].get("id")
        if lead_id is None and lead is not None:
            lead_id = lead.id
        sequence = doc.get("sequence")
        return cls(
            id=str(doc["id"]),
            type=str(doc["type"]),
            lead_id=None if lead_id is None else str(lead_id),
            sequence=sequence if isinstance(sequence, int) else None,
            occurred_at=_required_time(doc.get("occurredAt", doc.get("timestamp"))),
            data=data,
            actor=Actor.from_document(doc.get("actor")),
            lead=lead,
        )


@dataclass(frozen=True, slots=True)
class LeadPage:
    """One page of GET /v1/leads: `next_cursor` continues it (None on the last page)."""

    leads: tuple[Lead, ...]
    total: int
    # False when `total` is the server's estimate (past LEADGATE_EXACT_TOTAL_LIMIT matches).
    total_is_exact: bool
    page: int | None  # None for a page fetched by cursor
    limit: int
    has_more: bool
    next_cursor: str | None
    request_id: str | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> LeadPage:
        meta = body["meta"]
        return cls(
            leads=tuple(Lead.from_document(d) for d in body["data"]),
            total=int(meta["total"]),
            # A server from before issue 14 #4 always counted.
            total_is_exact=bool(meta.get("totalIsExact", True)),
            page=meta.get("page"),
            limit=int(meta["limit"]),
            has_more=bool(meta["hasMore"]),
            next_cursor=meta.get("nextCursor"),
            request_id=meta.get("requestId"),
        )


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of GET /v1/events; pass `next_after` as `after` for the next one."""

    events: tuple[Event, ...]
    next_after: str | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> EventPage:
        return cls(
            events=tuple(Event.from_document(d) for d in body["data"]),
            next_after=body["meta"].get("nextAfter"),
        )
