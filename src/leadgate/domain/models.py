"""Domain records: what the store returns and both APIs present."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

# The lead and its enums are declared with the lead field table.
from leadgate.domain.lead_fields import Lead as Lead
from leadgate.domain.lead_fields import LeadPriority as LeadPriority
from leadgate.domain.lead_fields import LeadSource as LeadSource
from leadgate.domain.rate_limits import Rate

# viewer reads and subscribes; editor also writes leads; admin also manages webhooks and keys.
Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an API key (its id) or an identity provider's user (the token's `sub`)."""

    type: Literal["api_key", "user"]
    id: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an organization, the role held in it, and the acting credential."""

    organization_id: UUID
    role: Role
    # None for an operator at the command line (neither an API key nor a user).
    actor: Actor | None
    # The credential's own rate limit (`leadgate api-key create --rate`), over the default.
    rate: Rate | None = None

    @property
    def can_write(self) -> bool:
        """May write leads (editor and admin)."""
        return self.role != "viewer"

    @property
    def can_manage(self) -> bool:
        """May manage webhooks and keys (admin)."""
        return self.role == "admin"

    @property
    def api_key_id(self) -> UUID | None:
        if self.actor is None or self.actor.type != "api_key":
            return None
        return UUID(self.actor.id)


@dataclass(frozen=True, slots=True)
class Stage:
    id: UUID
    stage_key: str
    stage_label: str
    color: str
    semantic_slot: str
    position: int


@dataclass(frozen=True, slots=True)
class Advisor:
    id: UUID
    name: str
    email: str | None


@dataclass(frozen=True, slots=True)
class LeadRecord:
    """A lead with the stage and advisor it points at: everything its representation needs."""

    lead: Lead
    stage: Stage
    advisor: Advisor | None
    # The number of the lead's latest event: the next event of a write is this one.
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class EventActor:
    """Who made an event happen (the acting credential) and in which request (X-Request-Id)."""

    type: Literal["api_key", "user"]
    id: str
    request_id: str

    def document(self) -> dict[str, str]:
        """As lead_events.actor stores it and both APIs and webhooks show it."""
        return {"type": self.type, "id": self.id, "requestId": self.request_id}

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> EventActor | None:
        if document is None:
            return None
        return cls(type=document["type"], id=document["id"], request_id=document["requestId"])


@dataclass(frozen=True, slots=True)
class LeadEvent:
    id: int
    organization_id: UUID
    lead_id: UUID
    sequence: int
    type: str
    payload: dict[str, Any]
    created_at: datetime
    # None for events written before actors were recorded (migration 0006).
    actor: EventActor | None = None


@dataclass(frozen=True, slots=True)
class LeadFilter:
    stage_id: UUID | None = None
    priority: LeadPriority | None = None
    advisor_id: UUID | None = None
    tag: str | None = None
    source: LeadSource | None = None
    # (system, id): the one lead holding that external id (issue 12 #4).
    external_id: tuple[str, str] | None = None
    # Archived leads too (issue 12 #2); otherwise lists and search leave them out.
    include_archived: bool = False


@dataclass(frozen=True, slots=True)
class LeadQuery:
    """A validated request for one page of leads."""

    page: int = 1
    limit: int = 20
    search_terms: tuple[str, ...] = ()
    filter: LeadFilter = field(default_factory=LeadFilter)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


@dataclass(frozen=True, slots=True)
class LeadPage:
    records: list[LeadRecord]
    # Exact, or an estimate past LEADGATE_EXACT_TOTAL_LIMIT (store.leads._total): never
    # one posing as the other.
    total: int
    total_is_exact: bool
    page: int
    limit: int
    # From the rows themselves (one more was read), not from the total, which may be estimated.
    has_more: bool
