"""The Python SDK of leadgate: `Client` (blocking) and `AsyncClient` (asyncio).

    from leadgate.client import Client, LeadCreate

    with Client("https://leads.example.com", api_key="lw_live_…") as client:
        lead = client.leads.create(LeadCreate(business_name="Acme Corp"))
        for lead in client.leads.iterate(priority="high"):
            ...

This package imports nothing of the gateway's server code (an import-linter contract holds
that line), so it can be used with only aiohttp and standardwebhooks installed.
"""

from leadgate.client.async_client import AsyncClient, AsyncEvents, AsyncLeads
from leadgate.client.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    HeadersTooLarge,
    InternalError,
    LeadgateError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PersistedQueryNotFound,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    Unauthenticated,
    ValidationError,
)
from leadgate.client.inputs import UNSET, LeadCreate, LeadUpdate
from leadgate.client.models import (
    Actor,
    Event,
    EventPage,
    Lead,
    LeadPage,
    LeadPriority,
    LeadSource,
    Stage,
)
from leadgate.client.retry import RetryPolicy
from leadgate.client.sync_client import Client, Events, Leads
from leadgate.client.webhooks import InvalidWebhook, verify_webhook

__all__ = [
    "UNSET",
    "Actor",
    "AsyncClient",
    "AsyncEvents",
    "AsyncLeads",
    "BadRequest",
    "Client",
    "Conflict",
    "Event",
    "EventPage",
    "Events",
    "FieldError",
    "Forbidden",
    "HeadersTooLarge",
    "InternalError",
    "InvalidWebhook",
    "Lead",
    "LeadCreate",
    "LeadPage",
    "LeadPriority",
    "LeadSource",
    "LeadUpdate",
    "LeadgateError",
    "Leads",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PersistedQueryNotFound",
    "RateLimited",
    "RetryPolicy",
    "ServiceUnavailable",
    "Stage",
    "TransportError",
    "Unauthenticated",
    "ValidationError",
    "verify_webhook",
]
