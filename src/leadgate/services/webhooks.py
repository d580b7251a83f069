"""Webhook endpoints and deliveries: what an organization manages (write permission)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import aiohttp
import asyncpg

from leadgate.config import Settings
from leadgate.domain.errors import FieldError, Forbidden, NotFound, ValidationFailed
from leadgate.domain.formats import iso_utc
from leadgate.domain.models import Principal
from leadgate.domain.webhooks import (
    Attempt,
    Delivery,
    Endpoint,
    SendResult,
    checked_event_types,
    checked_url,
    generate_secret,
)
from leadgate.events.resolver import RefusedAddress, VettingResolver
from leadgate.events.sender import send
from leadgate.store import webhooks

DELIVERY_STATUSES = ("pending", "succeeded", "failed")
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class EndpointWithSecret:
    endpoint: Endpoint
    # Shown once to whoever created or rotated it; never in a repr (and so never in a log).
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    deliveries: list[tuple[Delivery, list[Attempt]]]
    total: int
    page: int
    limit: int


class WebhookAdmin:
    """`session` and `resolver` come from events.resolver (`webhook_session(resolver)`): the
    target a URL is vetted against here is vetted again, by the same resolver, whenever a
    delivery connects."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        session: aiohttp.ClientSession,
        settings: Settings,
        resolver: VettingResolver,
    ) -> None:
        self._pool = pool
        self._session = session
        self._settings = settings
        self._resolver = resolver

    def _org(self, principal: Principal) -> UUID:
        if not principal.can_manage:
            raise Forbidden("Managing webhooks needs a write key or the admin role")
        return principal.organization_id

    async def _checked_url(self, url: str) -> str:
        allow_insecure = self._settings.allow_insecure_webhooks
        url, _host = checked_url(url, allow_insecure=allow_insecure)
        try:
            async with asyncio.timeout(self._settings.webhook_timeout_seconds):
                await self._resolver.vet(url)
        except RefusedAddress as exc:
            raise ValidationFailed.single("url", f"is not allowed: {exc}") from None
        except OSError:
            pass  # does not resolve (yet): accepted, deliveries retry (and are vetted then)
        return url

    async def create(
        self, principal: Principal, *, url: str, event_types: list[str]
    ) -> EndpointWithSecret:
        org = self._org(principal)
        types = checked_event_types(event_types)
        url = await self._checked_url(url)
        secret = generate_secret()
        async with self._pool.acquire() as conn:
            endpoint = await webhooks.insert_endpoint(
                conn, org, url=url, secret=secret, event_types=types
            )
        return EndpointWithSecret(endpoint=endpoint, secret=secret)

    async def endpoints(self, principal: Principal) -> list[Endpoint]:
        org = self._org(principal)
        async with self._pool.acquire() as conn:
            return await webhooks.endpoints(conn, org)

    async def update(
        self,
        principal: Principal,
        endpoint_id: UUID,
        *,
        url: str | None = None,
        event_types: list[str] | None = None,
        enabled: bool | None = None,
    ) -> Endpoint:
        org = self._org(principal)
        types = checked_event_types(event_types) if event_types is not None else None
        checked = await self._checked_url(url) if url is not None else None
        async with self._pool.acquire() as conn:
            endpoint = await webhooks.update_endpoint(
                conn, org, endpoint_id, url=checked, event_types=types, enabled=enabled
            )
        if endpoint is None:
            raise NotFound("Webhook endpoint not found")
        return endpoint

    async def delete(self, principal: Principal, endpoint_id: UUID) -> None:
        org = self._org(principal)
        async with self._pool.acquire() as conn:
            if not await webhooks.delete_endpoint(conn, org, endpoint_id):
                raise NotFound("Webhook endpoint not found")

    async def rotate_secret(self, principal: Principal, endpoint_id: UUID) -> EndpointWithSecret:
        """A new secret. The replaced one keeps signing beside it (two `v1,` entries) for
        `webhook_secret_overlap_seconds`, so receivers switch over without a rejected
        delivery; a secret replaced by an earlier rotation stops signing now."""
        org = self._org(principal)
        secret = generate_secret()
        async with self._pool.acquire() as conn:
            endpoint = await webhooks.rotate_secret(
                conn,
                org,
                endpoint_id,
                secret,
                overlap_seconds=self._settings.webhook_secret_overlap_seconds,
            )
        if endpoint is None:
            raise NotFound("Webhook endpoint not found")
        return EndpointWithSecret(endpoint=endpoint, secret=secret)

    async def deliveries(
        self,
        principal: Principal,
        *,
        endpoint_id: UUID | None,
        status: str | None,
        page: int,
        limit: int,
    ) -> DeliveryPage:
        org = self._org(principal)
        errors = []
        if status is not None and status not in DELIVERY_STATUSES:
            errors.append(FieldError("status", f"must be one of {', '.join(DELIVERY_STATUSES)}"))
        if not 1 <= limit <= MAX_PAGE_SIZE:
            errors.append(FieldError("limit", f"must be between 1 and {MAX_PAGE_SIZE}"))
        if page < 1:
            errors.append(FieldError("page", "must be 1 or greater"))
        if errors:
            raise ValidationFailed(errors)
        async with self._pool.acquire() as conn:
            found, total = await webhooks.deliveries(
                conn,
                org,
                endpoint_id=endpoint_id,
                status=status,
                limit=limit,
                offset=(page - 1) * limit,
            )
            attempts = await webhooks.attempts(conn, org, [d.id for d in found])
        return DeliveryPage(
            deliveries=[(d, attempts[d.id]) for d in found], total=total, page=page, limit=limit
        )

    async def redeliver(
        self, principal: Principal, delivery_id: int
    ) -> tuple[Delivery, list[Attempt]]:
        """Send a delivery again as soon as a dispatcher is free (its attempts continue)."""
        org = self._org(principal)
        async with self._pool.acquire() as conn:
            if not await webhooks.redeliver(conn, org, delivery_id):
                raise NotFound("Webhook delivery not found")
            delivery = await webhooks.delivery(conn, org, delivery_id)
            attempts = await webhooks.attempts(conn, org, [delivery_id])
        if delivery is None:
            raise NotFound("Webhook delivery not found")
        return delivery, attempts[delivery_id]

    async def send_test(self, principal: Principal, endpoint_id: UUID) -> SendResult:
        """Send a signed `webhook.test` event to the endpoint now and report what happened."""
        org = self._org(principal)
        async with self._pool.acquire() as conn:
            found = await webhooks.endpoint_with_secrets(conn, org, endpoint_id)
        if found is None:
            raise NotFound("Webhook endpoint not found")
        endpoint, secrets = found
        message_id = f"test_{uuid.uuid4().hex}"
        body = {
            "id": message_id,
            "type": "webhook.test",
            "timestamp": iso_utc(datetime.now(UTC)),
            "data": {"endpointId": str(endpoint.id)},
        }
        return await send(
            self._session,
            url=endpoint.url,
            secrets=secrets,
            message_id=message_id,
            body=body,
            time_limit=self._settings.webhook_timeout_seconds,
            allow_loopback=self._settings.allow_insecure_webhooks,
        )
