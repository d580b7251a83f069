"""`leadgate webhook add|list|rm`: an organization's webhook endpoints."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from leadgate.cli.database import operator, with_pool
from leadgate.cli.output import say
from leadgate.config import Settings
from leadgate.domain.webhooks import EVENT_TYPES, Endpoint
from leadgate.events.resolver import vetting_resolver, webhook_session
from leadgate.services.webhooks import EndpointWithSecret, WebhookAdmin


async def with_webhooks(settings: Settings, work: Callable[[WebhookAdmin], Awaitable[Any]]) -> Any:
    async def run(pool: asyncpg.Pool) -> Any:
        resolver = vetting_resolver(settings)
        try:
            async with webhook_session(resolver) as session:
                return await work(WebhookAdmin(pool, session, settings, resolver))
        finally:
            await resolver.close()

    return await with_pool(settings, run)


def cmd_webhook_add(settings: Settings, args: argparse.Namespace) -> None:
    types = args.events.split(",") if args.events else list(EVENT_TYPES)

    async def work(admin: WebhookAdmin) -> EndpointWithSecret:
        return await admin.create(operator(args.org), url=args.url, event_types=types)

    created: EndpointWithSecret = asyncio.run(with_webhooks(settings, work))
    endpoint = created.endpoint
    if args.json:
        say(
            json.dumps(
                {
                    "id": str(endpoint.id),
                    "url": endpoint.url,
                    "eventTypes": endpoint.event_types,
                    "secret": created.secret,
                }
            )
        )
    else:
        say(f"{endpoint.id}  {endpoint.url}  {','.join(endpoint.event_types)}")
        say(f"secret: {created.secret}   (shown once; verify signatures with it)")


def cmd_webhook_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(admin: WebhookAdmin) -> list[Endpoint]:
        return await admin.endpoints(operator(args.org))

    found: list[Endpoint] = asyncio.run(with_webhooks(settings, work))
    if args.json:
        say(
            json.dumps(
                [
                    {
                        "id": str(e.id),
                        "url": e.url,
                        "eventTypes": e.event_types,
                        "enabled": e.enabled,
                    }
                    for e in found
                ]
            )
        )
        return
    for e in found:
        state = "enabled" if e.enabled else f"disabled ({e.disabled_reason or 'by hand'})"
        say(f"{e.id}  {e.url}  {','.join(e.event_types)}  {state}")


def cmd_webhook_rm(settings: Settings, args: argparse.Namespace) -> None:
    async def work(admin: WebhookAdmin) -> None:
        await admin.delete(operator(args.org), args.id)

    asyncio.run(with_webhooks(settings, work))
    say(f"removed {args.id}")
