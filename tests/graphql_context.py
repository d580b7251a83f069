"""Running documents straight through a schema, as the HTTP transport would: a request's
Context on the session's gateway, and the tenant's caller with some history to show."""

from __future__ import annotations

from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.domain.models import Principal
from leadgate.graphql.context import Context
from leadgate.services.auth import Authenticator
from tests.support import Api, Tenant


def make_context(server: TestServer, principal: Principal, request_id: str) -> Context:
    """A fresh per-request Context (its own loaders) on the session gateway's services."""
    app = server.app
    return Context(
        caller=principal,
        request_id=request_id,
        reader=app[keys.LEAD_READER],
        writer=app[keys.LEAD_WRITER],
        feed=app[keys.EVENT_FEED],
        authenticator=app[keys.AUTHENTICATOR],
        webhooks=app[keys.WEBHOOKS],
    )


async def principal_with_history(
    server: TestServer, tenant: Tenant, api: Api, *, key: str
) -> Principal:
    """The caller of `key`, after two of the tenant's leads moved stage: history and events
    then have something to show."""
    _, body = await api.graphql(tenant.read_key, "{ leads(limit: 2) { nodes { id } } }")
    for lead in body["data"]["leads"]["nodes"]:
        await api.graphql(
            tenant.write_key,
            "mutation($id: ID!, $s: ID!) { moveLead(id: $id, stageId: $s) { id } }",
            {"id": lead["id"], "s": str(tenant.stage_ids[2])},
        )
    authenticator: Authenticator = server.app[keys.AUTHENTICATOR]
    return await authenticator.authenticate(f"Bearer {key}")
