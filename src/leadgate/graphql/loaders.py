"""Per-request dataloaders: one batched, organization-scoped query per kind of object.

Made fresh for every request (in the context), never shared: a loader kept across requests
would serve one organization's cached objects to another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from uuid import UUID

from aiodataloader import DataLoader

from leadgate.domain.models import Advisor, Lead, LeadEvent, Principal, Stage
from leadgate.services.leads import LeadReader

T = TypeVar("T")


class ByIdLoader(DataLoader[UUID, T | None], Generic[T]):
    """Loads objects by id through one batch call; a missing id resolves to None."""

    def __init__(self, batch: Callable[[list[UUID]], Awaitable[Mapping[UUID, T]]]) -> None:
        super().__init__()
        self._batch = batch

    async def batch_load_fn(self, ids: list[UUID]) -> list[T | None]:
        found = await self._batch(ids)
        return [found.get(i) for i in ids]

    async def get(self, key: UUID) -> T | None:
        value: T | None = await self.load(key)
        return value


@dataclass(frozen=True, slots=True)
class Loaders:
    reader: LeadReader
    principal: Principal
    stages: ByIdLoader[Stage]
    advisors: ByIdLoader[Advisor]
    leads: ByIdLoader[Lead]
    _histories: dict[int, ByIdLoader[list[LeadEvent]]] = field(default_factory=dict)

    def history(self, limit: int) -> ByIdLoader[list[LeadEvent]]:
        """Events of many leads, newest first, `limit` each: one loader per limit asked for."""
        loader = self._histories.get(limit)
        if loader is None:

            async def batch(ids: list[UUID]) -> Mapping[UUID, list[LeadEvent]]:
                return await self.reader.history(self.principal, ids, limit)

            loader = self._histories[limit] = ByIdLoader(batch)
        return loader


def make_loaders(reader: LeadReader, principal: Principal) -> Loaders:
    async def stages(ids: list[UUID]) -> Mapping[UUID, Stage]:
        return await reader.stages_by_id(principal, ids)

    async def advisors(ids: list[UUID]) -> Mapping[UUID, Advisor]:
        return await reader.advisors_by_id(principal, ids)

    async def leads(ids: list[UUID]) -> Mapping[UUID, Lead]:
        return await reader.leads_by_id(principal, ids)

    return Loaders(
        reader=reader,
        principal=principal,
        stages=ByIdLoader(stages),
        advisors=ByIdLoader(advisors),
        leads=ByIdLoader(leads),
    )
