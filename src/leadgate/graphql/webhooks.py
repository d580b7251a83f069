"""Webhook endpoints and deliveries in GraphQL (write permission required)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry

from leadgate.domain.errors import NotFound
from leadgate.domain.ids import parse_event_id
from leadgate.domain.webhooks import (
    LEAD_EVENT_TYPES,
    ORGANIZATION_EVENT_TYPES,
    Attempt,
    Delivery,
    Endpoint,
    SendResult,
)
from leadgate.graphql.arguments import optional_uuid_argument, target_id
from leadgate.graphql.context import Info
from leadgate.services.webhooks import DeliveryPage, EndpointWithSecret


def parse_endpoint_id(value: strawberry.ID) -> UUID:
    return target_id(value, "Webhook endpoint")


def parse_delivery_id(value: strawberry.ID) -> int:
    parsed = parse_event_id(value)  # the same shape: a bigserial
    if parsed is None:
        raise NotFound("Webhook delivery not found")
    return parsed


@strawberry.type
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until when the secret replaced by the last rotateWebhookSecret still "
        "signs beside the current one; null once it no longer does."
    )

    @classmethod
    def from_model(cls, endpoint: Endpoint) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(str(endpoint.id)),
            url=endpoint.url,
            event_types=endpoint.event_types,
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            created_at=endpoint.created_at,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
        )


@strawberry.type(description="An endpoint with its signing secret, shown only here.")
class WebhookEndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(description="whsec_…: verify signatures with it")

    @classmethod
    def from_model(cls, created: EndpointWithSecret) -> WebhookEndpointWithSecret:
        return cls(endpoint=WebhookEndpoint.from_model(created.endpoint), secret=created.secret)

    def __repr__(self) -> str:
        # The secret is shown once, in the response; never in a log line or a traceback.
        return f"WebhookEndpointWithSecret(endpoint={self.endpoint!r}, secret='whsec_…')"


@strawberry.type
class WebhookAttempt:
    attempt: int
    response_status: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


@strawberry.type(description="One event for one endpoint, and every attempt to send it.")
class WebhookDelivery:
    id: strawberry.ID
    event_id: strawberry.ID
    endpoint_id: strawberry.ID
    event_type: str
    status: str = strawberry.field(description="pending, succeeded or failed")
    attempt: int
    next_attempt_at: datetime
    response_status: int | None
    error: str | None
    delivered_at: datetime | None
    created_at: datetime
    attempts: list[WebhookAttempt]

    @classmethod
    def from_model(cls, delivery: Delivery, attempts: list[Attempt]) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(str(delivery.id)),
            event_id=strawberry.ID(str(delivery.event_id)),
            endpoint_id=strawberry.ID(str(delivery.endpoint_id)),
            event_type=delivery.event_type,
            status=delivery.status,
            attempt=delivery.attempt,
            next_attempt_at=delivery.next_attempt_at,
            response_status=delivery.response_status,
            error=delivery.error,
            delivered_at=delivery.delivered_at,
            created_at=delivery.created_at,
            attempts=[
                WebhookAttempt(
                    attempt=a.attempt,
                    response_status=a.response_status,
                    error=a.error,
                    duration_ms=a.duration_ms,
                    attempted_at=a.attempted_at,
                )
                for a in attempts
            ],
        )


@strawberry.type
class WebhookDeliveryPage:
    nodes: list[WebhookDelivery]
    total: int
    page: int
    limit: int
    has_more: bool

    @classmethod
    def from_model(cls, page: DeliveryPage) -> WebhookDeliveryPage:
        return cls(
            nodes=[WebhookDelivery.from_model(d, a) for d, a in page.deliveries],
            total=page.total,
            page=page.page,
            limit=page.limit,
            has_more=page.page * page.limit < page.total,
        )


@strawberry.type
class WebhookTestResult:
    delivered: bool
    response_status: int | None
    error: str | None
    duration_ms: int

    @classmethod
    def from_model(cls, result: SendResult) -> WebhookTestResult:
        return cls(
            delivered=result.delivered,
            response_status=result.response_status,
            error=result.error,
            duration_ms=result.duration_ms,
        )


@strawberry.type
class WebhookQuery:
    @strawberry.field
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        ctx = info.context
        return [WebhookEndpoint.from_model(e) for e in await ctx.webhooks.endpoints(ctx.principal)]

    @strawberry.field(description="Newest first; status is pending, succeeded or failed.")
    async def webhook_deliveries(
        self,
        info: Info,
        endpoint_id: strawberry.ID | None = None,
        status: str | None = None,
        page: int = 1,
        limit: int = 20,
    ) -> WebhookDeliveryPage:
        ctx = info.context
        found = await ctx.webhooks.deliveries(
            ctx.principal,
            endpoint_id=optional_uuid_argument("endpointId", endpoint_id),
            status=status,
            page=page,
            limit=limit,
        )
        return WebhookDeliveryPage.from_model(found)


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description=f"Send these event types ({', '.join(LEAD_EVENT_TYPES)}; and the "
        f"organization's {', '.join(ORGANIZATION_EVENT_TYPES)}, whose data is the import job's "
        "outcome) to an https URL, signed per Standard Webhooks."
    )
    async def create_webhook_endpoint(
        self, info: Info, url: str, event_types: list[str]
    ) -> WebhookEndpointWithSecret:
        ctx = info.context
        created = await ctx.webhooks.create(ctx.principal, url=url, event_types=event_types)
        return WebhookEndpointWithSecret.from_model(created)

    @strawberry.mutation(description="Change what is given; enabling clears a disabled reason.")
    async def update_webhook_endpoint(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
        url: str | None = None,
        event_types: list[str] | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint:
        ctx = info.context
        endpoint = await ctx.webhooks.update(
            ctx.principal, parse_endpoint_id(id), url=url, event_types=event_types, enabled=enabled
        )
        return WebhookEndpoint.from_model(endpoint)

    @strawberry.mutation
    async def delete_webhook_endpoint(self, info: Info, id: strawberry.ID) -> bool:  # noqa: A002
        ctx = info.context
        await ctx.webhooks.delete(ctx.principal, parse_endpoint_id(id))
        return True

    @strawberry.mutation(
        description="A new secret. The old one keeps signing beside it (webhook-signature "
        "holds two v1 entries, the new first) until previousSecretExpiresAt (24 h by default, "
        "LEADGATE_WEBHOOK_SECRET_OVERLAP), then only the new one signs."
    )
    async def rotate_webhook_secret(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
    ) -> WebhookEndpointWithSecret:
        ctx = info.context
        rotated = await ctx.webhooks.rotate_secret(ctx.principal, parse_endpoint_id(id))
        return WebhookEndpointWithSecret.from_model(rotated)

    @strawberry.mutation(description="Send a delivery again (same webhook-id) as soon as possible.")
    async def redeliver_webhook(self, info: Info, delivery_id: strawberry.ID) -> WebhookDelivery:
        ctx = info.context
        found, attempts = await ctx.webhooks.redeliver(
            ctx.principal, parse_delivery_id(delivery_id)
        )
        return WebhookDelivery.from_model(found, attempts)

    @strawberry.mutation(description="Send a signed webhook.test event now; report the outcome.")
    async def send_test_webhook(self, info: Info, endpoint_id: strawberry.ID) -> WebhookTestResult:
        ctx = info.context
        result = await ctx.webhooks.send_test(ctx.principal, parse_endpoint_id(endpoint_id))
        return WebhookTestResult.from_model(result)
