"""What every resolver gets: the caller, the services, this request's loaders."""

from __future__ import annotations

from dataclasses import dataclass

from strawberry.types import Info as StrawberryInfo

from leadgate.domain.models import Principal
from leadgate.graphql.loaders import Loaders
from leadgate.services.leads import LeadReader


@dataclass(slots=True)
class Context:
    principal: Principal
    request_id: str
    reader: LeadReader
    loaders: Loaders


Info = StrawberryInfo[Context, None]
