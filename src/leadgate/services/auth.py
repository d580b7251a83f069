"""API keys: creation, revocation, and authentication with a short-lived cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

import asyncpg

from leadgate.domain.api_keys import (
    PREFIX_LENGTH,
    bearer_token,
    generate_key,
    is_well_formed,
    key_hash,
)
from leadgate.domain.errors import NotFound, Unauthenticated
from leadgate.domain.models import Principal
from leadgate.store import api_keys, organizations

# Unknown keys are cached too (as None), so a client hammering with a bad key costs no
# database round trips; the bound keeps such a client from growing memory.
_MAX_CACHED_KEYS: Final = 10_000


@dataclass(frozen=True, slots=True)
class CreatedKey:
    id: UUID
    # Shown once to whoever created it; never in a repr (and so never in a log).
    key: str = field(repr=False)


async def create_api_key(
    pool: asyncpg.Pool,
    *,
    organization_id: UUID,
    can_write: bool,
    name: str = "",
    live: bool = True,
) -> CreatedKey:
    key = generate_key(live=live)
    async with pool.acquire() as conn, conn.transaction():
        if not await organizations.organization_exists(conn, organization_id):
            raise NotFound(f"organization {organization_id} not found")
        key_id = await api_keys.insert_api_key(
            conn,
            organization_id=organization_id,
            name=name,
            prefix=key[:PREFIX_LENGTH],
            key_hash=key_hash(key),
            can_write=can_write,
        )
    return CreatedKey(id=key_id, key=key)


async def revoke_api_key(pool: asyncpg.Pool, key_id: UUID) -> None:
    async with pool.acquire() as conn:
        if not await api_keys.revoke_api_key(conn, key_id):
            raise NotFound(f"no active API key {key_id}")


class Authenticator:
    """Turns an Authorization header into a Principal.

    A validated key is trusted for `ttl` seconds, so a warm key costs no database round trip
    and a revocation (from any process) takes effect within `ttl`.
    """

    def __init__(self, pool: asyncpg.Pool, *, ttl: float) -> None:
        self._pool = pool
        self._ttl = ttl
        self._cache: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token is None or not is_well_formed(token):
            raise Unauthenticated()
        digest = key_hash(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            async with self._pool.acquire() as conn:
                principal = await api_keys.principal_for_hash(conn, digest)
            self._remember(digest, now + self._ttl, principal)
        if principal is None:
            raise Unauthenticated("Unknown or revoked API key")
        return principal

    def _remember(self, digest: bytes, expires: float, principal: Principal | None) -> None:
        self._cache[digest] = (expires, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > _MAX_CACHED_KEYS:
            self._cache.popitem(last=False)
