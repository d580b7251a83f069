"""Verify a webhook the gateway sent, with the Standard Webhooks reference library.

During a secret rotation's overlap the gateway signs with both secrets
(`webhook-signature: v1,<new> v1,<old>`): a receiver holding either one verifies. A receiver
that is itself mid-deployment may pass both of its secrets; any one verifying suffices.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping, Sequence

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from leadgate.client.models import Event


class InvalidWebhook(WebhookVerificationError):
    """The request is not a webhook signed by a secret you gave (or it is too old or new:
    more than 5 minutes from now, the reference library's tolerance against replays)."""


def verify_webhook(
    secret: str | Sequence[str], headers: Mapping[str, str], body: bytes | str
) -> Event:
    """The event of a webhook request whose signature one of `secret` (`whsec_…`) verifies.

    `headers` are the request's (any case); `body` its raw bytes, exactly as received: a
    body parsed and serialised again no longer matches its signature."""
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("give at least one webhook secret")
    plain = {name.lower(): value for name, value in headers.items()}
    try:
        text = body.decode() if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise InvalidWebhook("The body is not UTF-8") from exc
    last: Exception | None = None
    for candidate in secrets:
        try:
            Webhook(candidate).verify(text, plain, json_parse=False)
        except WebhookVerificationError as exc:
            last = exc
            continue
        except (ValueError, binascii.Error) as exc:
            # A malformed signature entry or secret: the library does not classify these.
            last = exc
            continue
        document = json.loads(text)
        if not isinstance(document, dict):
            raise InvalidWebhook("The body is not a JSON object")
        return Event.from_document(document)
    raise InvalidWebhook(str(last)) from last
