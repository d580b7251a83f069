"""Name resolution for webhooks that vets every address it hands out (SSRF, DNS rebinding).

The webhook session's connector resolves through `VettingResolver`, so the address aiohttp
connects to is the very one that was checked: no second lookup stands between the check and
the connection for a rebinding DNS server to answer differently. Endpoint creation vets
through the same resolver. aiohttp never asks a resolver about a host that looks like an IP
address, so `vet_literal` judges those before a request is made.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from leadgate.domain.webhooks import address_refusal

if TYPE_CHECKING:
    from leadgate.config import Settings

# Connections per webhook session; several endpoints are sent to at once (webhook_concurrency).
CONNECTION_LIMIT = 100


class RefusedAddress(OSError):
    """The target is, or resolves to, an address webhooks must not reach.

    An OSError, as resolvers raise: aiohttp wraps it in a ClientConnectorError before any
    connection is attempted.
    """


def looks_like_ip(host: str) -> bool:
    # aiohttp's own test for skipping the resolver (helpers.is_ip_address): any colon, or
    # nothing but digits and dots. Whatever it skips, we must judge here.
    return ":" in host or host.replace(".", "").isdigit()


def vet_literal(host: str, *, allow_loopback: bool) -> None:
    """Raise RefusedAddress when `host` is an IP literal webhooks must not reach."""
    if looks_like_ip(host):
        reason = address_refusal(host, allow_loopback=allow_loopback)
        if reason:
            raise RefusedAddress(f"{host} is {reason}")


class VettingResolver(AbstractResolver):
    """Resolves with `inner` (the system resolver unless given one) and refuses the whole
    answer when any address in it is not a permitted target."""

    def __init__(self, *, allow_loopback: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_loopback = allow_loopback
        self._owns_inner = inner is None
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if looks_like_ip(host):
            vet_literal(host, allow_loopback=self._allow_loopback)
            ip = ipaddress.ip_address(host)
            return [
                ResolveResult(
                    hostname=host,
                    host=str(ip),
                    port=port,
                    family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            ]
        answer = await self._inner.resolve(host, port, family)
        for result in answer:
            reason = address_refusal(result["host"], allow_loopback=self._allow_loopback)
            if reason:
                raise RefusedAddress(f"{host} resolves to {reason}")
        return answer

    async def vet(self, url: str) -> None:
        """Resolve `url`'s host as a delivery would: RefusedAddress if it must not be called,
        any other OSError if it does not resolve."""
        target = URL(url)
        await self.resolve(target.raw_host or "", target.port or 0, socket.AF_UNSPEC)

    async def close(self) -> None:
        if self._owns_inner:
            await self._inner.close()


def vetting_resolver(settings: Settings) -> VettingResolver:
    """The resolver of every webhook session; `settings.webhook_resolver` replaces the
    system resolver underneath (tests answer with addresses they choose)."""
    return VettingResolver(
        allow_loopback=settings.allow_insecure_webhooks, inner=settings.webhook_resolver
    )


def webhook_session(
    resolver: VettingResolver, trace_configs: Sequence[aiohttp.TraceConfig] = ()
) -> aiohttp.ClientSession:
    """The HTTP client for webhooks. Redirects are never followed (see sender.send) and proxy
    settings from the environment are ignored: either would reach a host this resolver never
    saw. `trace_configs`: tracing's span and traceparent per send (leadgate/tracing.py)."""
    connector = aiohttp.TCPConnector(limit=CONNECTION_LIMIT, resolver=resolver)
    return aiohttp.ClientSession(
        connector=connector, trust_env=False, trace_configs=list(trace_configs)
    )
