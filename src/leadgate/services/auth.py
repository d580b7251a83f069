"""API keys: creation, revocation; authentication of keys and end-user tokens, cached briefly."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, TypeVar
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
from leadgate.domain.models import Actor, Principal
from leadgate.domain.rate_limits import Rate
from leadgate.services.tokens import (
    NOT_ACCEPTED,
    UNKNOWN_ORGANIZATION,
    TokenVerifier,
    VerifiedToken,
    refused,
)
from leadgate.store import api_keys, organizations

K = TypeVar("K")
V = TypeVar("V")

# Unknown keys are cached too (as None), so a client hammering with a bad key costs no
# database round trips; the bound keeps such a client from growing memory.
_MAX_CACHED_KEYS: Final = 10_000
API_KEY_PREFIX: Final = "lw_"
# Three base64url segments (the last empty for `alg: none`, refused by the verifier).
_JWT_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


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
    rate: Rate | None = None,
) -> CreatedKey:
    """A new key; `rate` is its own rate limit (None: the deployment's default applies)."""
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
            rate=rate,
        )
    return CreatedKey(id=key_id, key=key)


async def revoke_api_key(pool: asyncpg.Pool, key_id: UUID) -> None:
    async with pool.acquire() as conn:
        if not await api_keys.revoke_api_key(conn, key_id):
            raise NotFound(f"no active API key {key_id}")


class Authenticator:
    """Turns an Authorization header into a Principal: an API key (`lw_…`) or, when token
    verification is configured, an end-user JWT (services/tokens.py).

    A validated key is trusted for `ttl` seconds, so a warm key costs no database round trip
    and a revocation (from any process) takes effect within `ttl`. A verified token is
    remembered as long, but its `exp` is checked on every use (open subscriptions re-check
    every second, so an expiring token closes them on time). A token's organization is looked
    up only once its signature verified, and the answer (unknown ones too) is cached like keys.
    """

    def __init__(
        self, pool: asyncpg.Pool, *, ttl: float, tokens: TokenVerifier | None = None
    ) -> None:
        self._pool = pool
        self._ttl = ttl
        self._tokens = tokens
        self._cache: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()
        self._verified: OrderedDict[bytes, tuple[float, VerifiedToken]] = OrderedDict()
        self._organizations: OrderedDict[UUID, tuple[float, bool]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated()
        if token.startswith(API_KEY_PREFIX):
            return await self._api_key(token)
        if _JWT_SHAPE.fullmatch(token):
            return await self._user(token)
        raise Unauthenticated()

    async def _api_key(self, token: str) -> Principal:
        if not is_well_formed(token):
            raise Unauthenticated()
        digest = key_hash(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            async with self._pool.acquire() as conn:
                principal = await api_keys.principal_for_hash(conn, digest)
            _remember(self._cache, digest, (now + self._ttl, principal))
        if principal is None:
            raise Unauthenticated("Unknown or revoked API key")
        return principal

    async def _user(self, token: str) -> Principal:
        if self._tokens is None:
            raise refused(NOT_ACCEPTED)
        digest = key_hash(token)
        now = time.monotonic()
        cached = self._verified.get(digest)
        if cached is not None and cached[0] > now:
            verified = cached[1]
            self._tokens.check_expiry(verified)
        else:
            verified = await self._tokens.verify(token)
            _remember(self._verified, digest, (now + self._ttl, verified))
        if not await self._organization_exists(verified.organization_id, now):
            raise refused(UNKNOWN_ORGANIZATION)
        return Principal(
            organization_id=verified.organization_id,
            role=verified.role,
            actor=Actor(type="user", id=verified.subject),
        )

    async def _organization_exists(self, organization_id: UUID, now: float) -> bool:
        cached = self._organizations.get(organization_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._pool.acquire() as conn:
            exists = await organizations.organization_exists(conn, organization_id)
        _remember(self._organizations, organization_id, (now + self._ttl, exists))
        return exists

    async def close(self) -> None:
        if self._tokens is not None:
            await self._tokens.close()


def _remember(cache: OrderedDict[K, V], key: K, value: V) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _MAX_CACHED_KEYS:
        cache.popitem(last=False)
