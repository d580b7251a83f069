"""What every resolver gets: the caller, the services, this request's loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.types import Info as StrawberryInfo

from leadgate.domain.models import Principal
from leadgate.graphql.loaders import Loaders
from leadgate.services.lead_writes import LeadWriter
from leadgate.services.leads import LeadReader


@dataclass(slots=True)
class Context:
    principal: Principal
    request_id: str
    reader: LeadReader
    writer: LeadWriter
    loaders: Loaders
    idempotency_header: str | None = None
    # Merged into the response's top-level `extensions` (e.g. idempotentReplayed).
    response_extensions: dict[str, Any] = field(default_factory=dict)


Info = StrawberryInfo[Context, None]
