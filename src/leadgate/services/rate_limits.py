"""Token buckets per credential and per organization (README "Rate limits").

A request debits its cost from every bucket that applies to its caller, all or none (a refused
request spends nothing): the credential's (an API key's own `--rate`, else
LEADGATE_RATE_PER_CREDENTIAL; keyed by the key's id or the token's subject) and its
organization's (LEADGATE_RATE_PER_ORGANIZATION). A REST request costs 1 point, a GraphQL
operation the cost the admission gate computed, debited before any SQL runs.

The buckets live in this process (`LocalBuckets`) or, with LEADGATE_REDIS_URL, in Redis
(`RedisBuckets`): one Lua script checks and debits both buckets as one atomic step, timed by
Redis's own clock, so every process sees one bucket. When Redis does not answer, each process
falls back to its own buckets (fail open, but not unlimited: a warning in the log, a metric)
and asks Redis again a second later.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import redis.asyncio
from redis.exceptions import RedisError

from leadgate.domain.errors import QueryTooComplex, RateLimited
from leadgate.domain.models import Principal
from leadgate.domain.rate_limits import Rate

log = logging.getLogger(__name__)

PolicyName = Literal["credential", "organization"]
# Buckets kept by one process; the least recently used go first (a bucket left alone refills,
# so forgetting it forgives at most what it had not yet refilled).
MAX_LOCAL_BUCKETS: Final = 100_000
REDIS_PREFIX: Final = "leadgate:rate:"
# A rate limiter must not make requests slow: a Redis that takes longer is treated as down.
REDIS_TIMEOUT_SECONDS: Final = 0.5
# After a failure, Redis is asked again only this much later (no timeout per request).
REDIS_RETRY_SECONDS: Final = 1.0
# Connections to Redis per process; a request beyond waits for one (within the timeout).
REDIS_CONNECTIONS: Final = 32

# KEYS: the buckets; ARGV: cost, then each bucket's points per second and burst. Returns
# {allowed (1/0), tokens left in each bucket (as text: Lua numbers would be truncated)}.
# A bucket is stored as {tokens, at}; it expires once it would be full again (= absent).
TAKE_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local cost = tonumber(ARGV[1])
local tokens = {}
local allowed = 1
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local left = tonumber(state[1])
  local at = tonumber(state[2])
  if left == nil or at == nil then
    left = burst
    at = now
  end
  left = math.min(burst, left + math.max(0, now - at) * rate)
  tokens[i] = left
  if left < cost then
    allowed = 0
  end
end
local reply = {allowed}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  if allowed == 1 and cost > 0 then
    tokens[i] = tokens[i] - cost
    redis.call('HSET', KEYS[i], 'tokens', tostring(tokens[i]), 'at', tostring(now))
    redis.call('PEXPIRE', KEYS[i], math.ceil((burst - tokens[i]) / rate * 1000) + 1000)
  end
  reply[i + 1] = tostring(tokens[i])
end
return reply
"""


@dataclass(frozen=True, slots=True)
class Policy:
    name: PolicyName
    # The bucket's key; braces keep one organization's buckets in one Redis Cluster slot.
    key: str
    rate: Rate


@dataclass(frozen=True, slots=True)
class Level:
    """One bucket after a debit (or a refusal, which debits nothing)."""

    policy: Policy
    tokens: float

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.tokens))

    @property
    def reset(self) -> int:
        """Whole seconds until the bucket is full again."""
        rate = self.policy.rate
        return max(0, math.ceil((rate.burst - self.tokens) / rate.per_second))


@dataclass(frozen=True, slots=True)
class Verdict:
    cost: float
    allowed: bool
    levels: tuple[Level, ...]

    def refusal(self) -> RateLimited:
        short = [level for level in self.levels if level.tokens < self.cost]
        wait = max((self.cost - level.tokens) / level.policy.rate.per_second for level in short)
        return RateLimited(max(1, math.ceil(wait)), tuple(level.policy.name for level in short))


class Buckets(Protocol):
    async def take(self, policies: Sequence[Policy], cost: float) -> tuple[bool, list[float]]:
        """Debit `cost` from every bucket or from none; whether it did, and what is left."""
        ...


class LocalBuckets:
    """This process's buckets. No await between reading and writing: atomic in asyncio."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_buckets: int = MAX_LOCAL_BUCKETS
    ) -> None:
        self._clock = clock
        self._max = max_buckets
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def take(self, policies: Sequence[Policy], cost: float) -> tuple[bool, list[float]]:
        now = self._clock()
        tokens = []
        for policy in policies:
            left, at = self._state.get(policy.key, (policy.rate.burst, now))
            rate = policy.rate
            tokens.append(min(rate.burst, left + max(0.0, now - at) * rate.per_second))
        allowed = all(left >= cost for left in tokens)
        if allowed and cost > 0:
            tokens = [left - cost for left in tokens]
            for policy, left in zip(policies, tokens, strict=True):
                self._state[policy.key] = (left, now)
                self._state.move_to_end(policy.key)
            while len(self._state) > self._max:
                self._state.popitem(last=False)
        return allowed, tokens


class RedisBuckets:
    """Buckets shared by every process, in Redis (TAKE_SCRIPT)."""

    def __init__(self, url: str) -> None:
        self._connections = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_CONNECTIONS,
            timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._client = redis.asyncio.Redis(connection_pool=self._connections)
        self._script = self._client.register_script(TAKE_SCRIPT)

    async def take(self, policies: Sequence[Policy], cost: float) -> tuple[bool, list[float]]:
        args: list[float] = [cost]
        for policy in policies:
            args += [policy.rate.per_second, policy.rate.burst]
        reply = await self._script(keys=[REDIS_PREFIX + p.key for p in policies], args=args)
        return int(reply[0]) == 1, [float(value) for value in reply[1:]]

    async def close(self) -> None:
        await self._client.aclose()
        await self._connections.disconnect()


class Tally:
    """The current request's latest verdict: its response's RateLimit headers (ratelimit.py)."""

    __slots__ = ("verdict",)

    def __init__(self) -> None:
        self.verdict: Verdict | None = None


_TALLY: ContextVar[Tally | None] = ContextVar("leadgate_rate_tally", default=None)


def tally() -> Tally | None:
    return _TALLY.get()


@contextlib.contextmanager
def tallying() -> Iterator[Tally]:
    """A tally for the request being served (the HTTP edge opens one per request)."""
    current = Tally()
    token = _TALLY.set(current)
    try:
        yield current
    finally:
        _TALLY.reset(token)


class RateLimiter:
    """Debits callers' buckets; `debit` is the one entry point."""

    def __init__(
        self,
        *,
        credential: Rate | None,
        organization: Rate | None,
        redis_url: str | None = None,
        local: LocalBuckets | None = None,
    ) -> None:
        self.credential = credential
        self.organization = organization
        self._redis_url = redis_url
        self._redis: RedisBuckets | None = None
        self._local = local or LocalBuckets()
        self._redis_down_until = 0.0
        self._redis_down = False
        # For /metrics: refusals by policy, and Redis calls that failed.
        self.refused: Counter[str] = Counter()
        self.store_failures = 0

    async def open(self) -> None:
        if self._redis_url is not None:
            self._redis = RedisBuckets(self._redis_url)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
            self._redis = None

    def policies(self, principal: Principal) -> tuple[Policy, ...]:
        organization = principal.organization_id
        found: list[Policy] = []
        credential = principal.rate or self.credential
        if credential is not None and principal.actor is not None:
            actor = principal.actor
            key = f"{{{organization}}}:credential:{actor.type}:{actor.id}"
            found.append(Policy("credential", key, credential))
        if self.organization is not None:
            found.append(
                Policy("organization", f"{{{organization}}}:organization", self.organization)
            )
        return tuple(found)

    async def debit(self, principal: Principal, cost: float) -> Verdict | None:
        """Take `cost` points from the caller's buckets (0: only read them). None when no
        limit applies to this caller. A cost that no bucket could ever hold is
        QueryTooComplex (waiting would not help); over the limit, the verdict says so and
        `refusal()` is the error to answer with. The current request's tally keeps it."""
        policies = self.policies(principal)
        if not policies:
            return None
        for policy in policies:
            if cost > policy.rate.burst:
                raise QueryTooComplex(
                    f"The query's cost is {cost:g}, more than the {policy.name} rate limit "
                    f"allows at once ({policy.rate.burst:g} points): it could never run; "
                    "ask for fewer fields or a smaller limit"
                )
        allowed, tokens = await self._take(policies, cost)
        verdict = Verdict(
            cost,
            allowed,
            tuple(Level(p, left) for p, left in zip(policies, tokens, strict=True)),
        )
        if not allowed:
            self.refused.update(name for name in verdict.refusal().policies)
        current = _TALLY.get()
        if current is not None:
            current.verdict = verdict
        return verdict

    async def _take(self, policies: Sequence[Policy], cost: float) -> tuple[bool, list[float]]:
        shared = self._redis
        if shared is None or time.monotonic() < self._redis_down_until:
            return await self._local.take(policies, cost)
        try:
            result = await shared.take(policies, cost)
        except (TimeoutError, RedisError, OSError) as exc:
            self.store_failures += 1
            self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
            if not self._redis_down:
                self._redis_down = True
                log.warning(
                    "rate limits: Redis does not answer (%s: %s); each process limits on its "
                    "own until it does",
                    type(exc).__name__,
                    exc,
                )
            return await self._local.take(policies, cost)
        if self._redis_down:
            self._redis_down = False
            log.info("rate limits: Redis answers again; buckets are shared again")
        return result
