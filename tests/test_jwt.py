"""End-user JWTs beside API keys (issue 10 #1, #2): verified against a JWKS that the test
serves on loopback, mapped to organization, role and user; every refusal a 401 with a detail
code; on WebSockets an expiring token closes the connection with 4401."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg
import jwt
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.graphql.connections import RECHECK_SECONDS
from tests.support import (
    CREATE_LEAD,
    Api,
    Tenant,
    bearer,
    create_lead,
    error_codes,
    make_tenant,
)
from tests.test_subscription_js_client import js_client  # noqa: F401 - the npm install fixture
from tests.test_subscriptions import STAGE_CHANGES, first_lead, move
from tests.test_webhooks import CREATE_ENDPOINT
from tests.ws_client import connect, subscribe

ISSUER: Final = "https://idp.example.test/"
AUDIENCE: Final = "leadgate-tests"
SECRET: Final = "a-development-secret-of-at-least-32-bytes"
LEADS_TOTAL: Final = "{ leads(limit: 1) { total } }"
HOOK_URL: Final = "http://127.0.0.1:9/hook"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private: PrivateKey = field(repr=False)

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        jwk: dict[str, Any]
        if isinstance(public, rsa.RSAPublicKey):
            jwk = dict(RSAAlgorithm.to_jwk(public, as_dict=True))
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = dict(ECAlgorithm.to_jwk(public, as_dict=True))
        else:
            jwk = dict(OKPAlgorithm.to_jwk(public, as_dict=True))
        return {**jwk, "kid": self.kid, "use": "sig"}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, self.private, self.algorithm, headers={"kid": kid or self.kid})


def new_key(algorithm: str) -> SigningKey:
    private: PrivateKey
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    return SigningKey(
        kid=f"{algorithm}-{uuid.uuid4().hex[:8]}", algorithm=algorithm, private=private
    )


@dataclass
class IdentityProvider:
    """A JWKS on loopback whose keys, availability and fetch count the test controls."""

    server: TestServer
    keys: list[SigningKey]
    fetches: int = 0
    down: bool = False

    @property
    def url(self) -> str:
        return str(self.server.make_url("/jwks.json"))

    async def handle(self, _request: web.Request) -> web.Response:
        self.fetches += 1
        if self.down:
            return web.Response(status=503)
        return web.json_response({"keys": [key.public_jwk() for key in self.keys]})


@contextlib.asynccontextmanager
async def identity_provider(keys: list[SigningKey]) -> AsyncIterator[IdentityProvider]:
    app = web.Application()
    idp = IdentityProvider(server=TestServer(app, host="127.0.0.1"), keys=keys)
    app.router.add_get("/jwks.json", idp.handle)
    await idp.server.start_server()
    try:
        yield idp
    finally:
        await idp.server.close()


@contextlib.asynccontextmanager
async def gateway(settings: Settings, **changes: Any) -> AsyncIterator[Api]:
    server = TestServer(create_app(dataclasses.replace(settings, **changes)), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(session=session, base=str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


def claims(
    org: uuid.UUID | str, *, role: str | list[str] | None = "viewer", **changes: Any
) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"user-{uuid.uuid4().hex[:8]}",
        "iat": now,
        "exp": now + 300,
        "org_id": str(org),
        "role": role,
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def refusal(status: int, body: dict[str, Any]) -> str:
    """The detail code of a 401 (the message's last word, in parentheses)."""
    assert status == 401, body
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    message: str = body["errors"][0]["message"]
    return message.rsplit("(", 1)[1].rstrip(")")


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {algorithm: new_key(algorithm) for algorithm in ("RS256", "ES256", "EdDSA")}


@pytest.fixture(scope="module")
async def idp(keys: dict[str, SigningKey]) -> AsyncIterator[IdentityProvider]:
    async with identity_provider(list(keys.values())) as provider:
        yield provider


@pytest.fixture(scope="module")
async def api(settings: Settings, idp: IdentityProvider, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    """A gateway trusting the loopback JWKS, with an issuer and an audience (no HS256)."""
    async with gateway(
        settings, jwt_jwks_url=idp.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE
    ) as api:
        yield api


# --- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
async def test_a_token_signed_by_a_jwks_key_reads_its_organizations_leads(
    api: Api, keys: dict[str, SigningKey], tenant: Tenant, algorithm: str
) -> None:
    token = keys[algorithm].sign(claims(tenant.id))
    status, body = await api.graphql(token, LEADS_TOTAL)
    assert status == 200, body
    assert body["data"]["leads"]["total"] == 30


async def test_api_keys_keep_working_beside_tokens(api: Api, tenant: Tenant) -> None:
    status, body = await api.graphql(tenant.read_key, LEADS_TOTAL)
    assert (status, body["data"]["leads"]["total"]) == (200, 30)


async def test_a_token_expired_within_the_leeway_is_still_accepted(
    api: Api, keys: dict[str, SigningKey], tenant: Tenant
) -> None:
    token = keys["EdDSA"].sign(claims(tenant.id, exp=int(time.time()) - 30))
    status, body = await api.graphql(token, LEADS_TOTAL)
    assert status == 200, body


# --- refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"exp": -120}, "token_expired"),
        ({"nbf": 120}, "token_not_yet_valid"),
        ({"aud": "another-api"}, "token_wrong_audience"),
        ({"iss": "https://evil.example.test/"}, "token_wrong_issuer"),
        ({"exp": None}, "token_missing_claim"),
        ({"sub": None}, "token_missing_claim"),
        ({"org_id": "not-a-uuid"}, "token_bad_claim"),
        ({"role": "owner"}, "token_bad_claim"),
    ],
)
async def test_a_token_failing_a_claim_check_is_401_with_its_detail(
    api: Api, keys: dict[str, SigningKey], tenant: Tenant, changes: dict[str, Any], detail: str
) -> None:
    now = int(time.time())
    # Times are relative to now: exp -120 is two minutes ago (past the 60 s leeway).
    changes = {
        k: now + v if k in ("exp", "nbf") and v is not None else v for k, v in changes.items()
    }
    status, body = await api.graphql(keys["ES256"].sign(claims(tenant.id, **changes)), LEADS_TOTAL)
    assert refusal(status, body) == detail


async def test_a_token_for_an_unknown_organization_is_401(
    api: Api, keys: dict[str, SigningKey]
) -> None:
    status, body = await api.graphql(keys["RS256"].sign(claims(uuid.uuid4())), LEADS_TOTAL)
    assert refusal(status, body) == "token_unknown_organization"


async def test_the_organization_is_looked_up_only_after_the_signature_verified(
    api: Api, keys: dict[str, SigningKey]
) -> None:
    # An unknown organization behind a forged signature: the signature is what fails.
    genuine = keys["RS256"].sign(claims(uuid.uuid4()))
    forged = genuine.rsplit(".", 1)[0] + "." + b64(b"\x00" * 256)
    status, body = await api.graphql(forged, LEADS_TOTAL)
    assert refusal(status, body) == "token_bad_signature"


async def test_a_token_for_another_organization_sees_none_of_this_ones_leads(
    api: Api, keys: dict[str, SigningKey], tenant: Tenant, other_tenant: Tenant
) -> None:
    lead_id = await first_lead(api, tenant)
    token = keys["EdDSA"].sign(claims(other_tenant.id))
    status, body, _ = await api.rest("GET", f"/v1/leads/{lead_id}", token)
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")


async def test_alg_none_is_refused(api: Api, keys: dict[str, SigningKey], tenant: Tenant) -> None:
    token = unsigned({"alg": "none", "kid": keys["RS256"].kid}, claims(tenant.id)) + "."
    status, body = await api.graphql(token, LEADS_TOTAL)
    assert refusal(status, body) == "token_algorithm_refused"


def hs256_with_the_rsa_public_key(key: SigningKey, payload: dict[str, Any]) -> str:
    """The algorithm-confusion forgery: HMAC keyed with the (public) RSA key's PEM."""
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": key.kid}, payload)
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    api: Api, keys: dict[str, SigningKey], tenant: Tenant
) -> None:
    token = hs256_with_the_rsa_public_key(keys["RS256"], claims(tenant.id, role="admin"))
    status, body = await api.graphql(token, LEADS_TOTAL)
    assert refusal(status, body) == "token_algorithm_refused"


async def test_with_a_development_secret_hs256_works_and_the_confusion_still_fails(
    settings: Settings, keys: dict[str, SigningKey], idp: IdentityProvider, tenant: Tenant
) -> None:
    async with gateway(settings, jwt_jwks_url=idp.url, jwt_secret=SECRET) as api:
        good = jwt.encode(claims(tenant.id), SECRET, "HS256")
        forged = hs256_with_the_rsa_public_key(keys["RS256"], claims(tenant.id))
        accepted = await api.graphql(good, LEADS_TOTAL)
        refused = await api.graphql(forged, LEADS_TOTAL)
    assert accepted[0] == 200, accepted
    assert refusal(*refused) == "token_bad_signature"


async def test_a_token_when_no_verification_is_configured_is_401_not_accepted(
    server: TestServer, keys: dict[str, SigningKey], tenant: Tenant
) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(session=session, base=str(server.make_url("")).rstrip("/"))
        status, body = await api.graphql(keys["RS256"].sign(claims(tenant.id)), LEADS_TOTAL)
    assert refusal(status, body) == "token_not_accepted"


# --- the key set ------------------------------------------------------------------------------


async def test_an_unknown_kid_refetches_the_jwks_once_then_is_401(
    settings: Settings, keys: dict[str, SigningKey], tenant: Tenant
) -> None:
    stranger = new_key("EdDSA")
    async with (
        identity_provider([keys["EdDSA"]]) as idp,
        gateway(settings, jwt_jwks_url=idp.url) as api,
    ):
        known = await api.graphql(keys["EdDSA"].sign(claims(tenant.id)), LEADS_TOTAL)
        first = await api.graphql(stranger.sign(claims(tenant.id)), LEADS_TOTAL)
        # Within the 30 s refresh interval another unknown kid costs the provider nothing.
        second = await api.graphql(stranger.sign(claims(tenant.id), kid="other"), LEADS_TOTAL)
        fetches = idp.fetches
    assert known[0] == 200
    assert refusal(*first) == "token_unknown_key"
    assert refusal(*second) == "token_unknown_key"
    assert fetches == 2  # the first load, and one refresh for the unknown kid


async def test_rotated_jwks_keys_are_picked_up_without_a_restart(
    settings: Settings, tenant: Tenant
) -> None:
    old, new = new_key("ES256"), new_key("ES256")
    async with (
        identity_provider([old]) as idp,
        gateway(settings, jwt_jwks_url=idp.url) as api,
    ):
        before = await api.graphql(old.sign(claims(tenant.id)), LEADS_TOTAL)
        idp.keys = [new]
        rotated = await api.graphql(new.sign(claims(tenant.id)), LEADS_TOTAL)
        withdrawn = await api.graphql(old.sign(claims(tenant.id)), LEADS_TOTAL)
    assert before[0] == 200
    assert rotated[0] == 200, rotated
    assert refusal(*withdrawn) == "token_unknown_key"


async def test_while_the_identity_provider_is_down_the_cached_jwks_is_served(
    settings: Settings, tenant: Tenant
) -> None:
    key = new_key("EdDSA")
    async with (
        identity_provider([key]) as idp,
        gateway(
            settings,
            jwt_jwks_url=idp.url,
            jwt_jwks_refresh_seconds=0.1,
            jwt_jwks_max_age_seconds=0.1,
        ) as api,
    ):
        before = await api.graphql(key.sign(claims(tenant.id)), LEADS_TOTAL)
        idp.down = True
        await asyncio.sleep(0.15)
        during = await api.graphql(key.sign(claims(tenant.id)), LEADS_TOTAL)
        fetches = idp.fetches
    assert before[0] == 200
    assert during[0] == 200, during
    assert fetches == 2  # the refetch was tried, failed, and the held keys kept working


async def test_with_no_jwks_ever_fetched_a_down_provider_is_503_not_a_verdict(
    settings: Settings, tenant: Tenant
) -> None:
    key = new_key("EdDSA")
    async with identity_provider([key]) as idp, gateway(settings, jwt_jwks_url=idp.url) as api:
        idp.down = True
        status, body = await api.graphql(key.sign(claims(tenant.id)), LEADS_TOTAL)
    assert (status, error_codes(body)) == (503, ["SERVICE_UNAVAILABLE"])


# --- roles ------------------------------------------------------------------------------------


async def test_a_viewer_cannot_write(api: Api, keys: dict[str, SigningKey], tenant: Tenant) -> None:
    token = keys["EdDSA"].sign(claims(tenant.id, role="viewer"))
    _, body = await api.graphql(token, CREATE_LEAD, {"name": "Viewer Bakery"})
    status, rest_body, _ = await api.rest("POST", "/v1/leads", token, json={"businessName": "X"})
    assert error_codes(body) == ["FORBIDDEN"]
    assert (status, rest_body["error"]["code"]) == (403, "FORBIDDEN")


async def test_an_editor_writes_leads_but_cannot_manage_webhooks(
    api: Api, keys: dict[str, SigningKey], tenant: Tenant
) -> None:
    token = keys["EdDSA"].sign(claims(tenant.id, role="editor"))
    _, created = await api.graphql(token, CREATE_LEAD, {"name": "Editor Bakery"})
    _, hook = await api.graphql(
        token, CREATE_ENDPOINT, {"url": HOOK_URL, "types": ["lead.created"]}
    )
    assert "errors" not in created, created
    assert error_codes(hook) == ["FORBIDDEN"]


async def test_an_admin_manages_webhooks(
    api: Api, keys: dict[str, SigningKey], tenant: Tenant
) -> None:
    token = keys["EdDSA"].sign(claims(tenant.id, role=["viewer", "admin"]))
    _, hook = await api.graphql(
        token, CREATE_ENDPOINT, {"url": HOOK_URL, "types": ["lead.created"]}
    )
    assert "errors" not in hook, hook


async def test_a_token_without_a_role_claim_is_a_viewer(
    api: Api, keys: dict[str, SigningKey], tenant: Tenant
) -> None:
    token = keys["EdDSA"].sign(claims(tenant.id, role=None))
    reads = await api.graphql(token, LEADS_TOTAL)
    _, writes = await api.graphql(token, CREATE_LEAD, {"name": "Roleless Bakery"})
    assert reads[0] == 200
    assert error_codes(writes) == ["FORBIDDEN"]


async def test_the_claim_paths_are_configurable(
    settings: Settings, keys: dict[str, SigningKey], idp: IdentityProvider, tenant: Tenant
) -> None:
    namespaced = "https://leadgate.example/org"
    async with gateway(
        settings,
        jwt_jwks_url=idp.url,
        jwt_org_claim=namespaced,
        jwt_role_claim="app_metadata.role",
    ) as api:
        token = keys["EdDSA"].sign(
            claims(tenant.id, org_id=None, role=None, **{namespaced: str(tenant.id)})
            | {"app_metadata": {"role": "editor"}}
        )
        _, created = await api.graphql(token, CREATE_LEAD, {"name": "Namespaced Bakery"})
    assert "errors" not in created, created


# --- WebSockets -------------------------------------------------------------------------------


@pytest.mark.parametrize("via_header", [False, True])
async def test_a_token_authenticates_a_subscription(
    api: Api, keys: dict[str, SigningKey], tenant: Tenant, via_header: bool
) -> None:
    token = keys["ES256"].sign(claims(tenant.id))
    lead_id = await create_lead(api, tenant)
    url = api.base.replace("http://", "ws://") + "/graphql"
    async with connect(
        api.session,
        url,
        None if via_header else token,
        header_key=token if via_header else None,
    ) as ws:
        sub = await subscribe(ws, STAGE_CHANGES, {"leadId": lead_id})
        await asyncio.sleep(0.2)
        await move(api, tenant, lead_id, 3)
        change = (await sub.next())["data"]["leadStageChanged"]
    assert change["lead"]["id"] == lead_id


async def test_an_expired_token_is_refused_at_connection_init(
    api: Api, keys: dict[str, SigningKey], tenant: Tenant
) -> None:
    token = keys["ES256"].sign(claims(tenant.id, exp=int(time.time()) - 120))
    url = api.base.replace("http://", "ws://") + "/graphql"
    async with api.session.ws_connect(url, protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": bearer(token)})
        close = await asyncio.wait_for(ws.receive(), 5)
    assert (close.type, close.data) == (aiohttp.WSMsgType.CLOSE, 4401)


async def test_an_open_subscription_closes_with_4401_when_its_token_expires(
    settings: Settings, keys: dict[str, SigningKey], idp: IdentityProvider, pool: asyncpg.Pool
) -> None:
    tenant = await make_tenant(pool, leads=1)
    async with gateway(settings, jwt_jwks_url=idp.url, jwt_leeway_seconds=0.0) as api:
        expires = int(time.time()) + 2
        token = keys["EdDSA"].sign(claims(tenant.id, exp=expires))
        url = api.base.replace("http://", "ws://") + "/graphql"
        async with connect(api.session, url, token) as ws:
            await subscribe(ws, STAGE_CHANGES)
            while True:
                message = await asyncio.wait_for(ws.receive(), 5)
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                if orjson.loads(message.data)["type"] == "ping":
                    await ws.send_json({"type": "pong"})
            closed_at = time.time()
    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4401)
    # Not before `exp` (leeway 0 here), and within one re-check of it.
    assert expires <= closed_at < expires + RECHECK_SECONDS + 0.5


async def next_change(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """The next message that is not a ping (answered on the way)."""
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        if message.type is aiohttp.WSMsgType.TEXT and orjson.loads(message.data)["type"] == "ping":
            await ws.send_json({"type": "pong"})
            continue
        return message


async def test_after_a_4401_a_fresh_token_and_after_resume_with_what_was_missed(
    settings: Settings, keys: dict[str, SigningKey], idp: IdentityProvider, pool: asyncpg.Pool
) -> None:
    tenant = await make_tenant(pool)
    async with gateway(settings, jwt_jwks_url=idp.url, jwt_leeway_seconds=0.0) as api:
        lead_id = await create_lead(api, tenant)  # in the first stage: both moves are changes
        url = api.base.replace("http://", "ws://") + "/graphql"
        short = keys["EdDSA"].sign(claims(tenant.id, exp=int(time.time()) + 2))
        async with connect(api.session, url, short) as ws:
            sub = await subscribe(ws, STAGE_CHANGES, {"leadId": lead_id})
            await asyncio.sleep(0.2)
            await move(api, tenant, lead_id, 1)
            seen = (await sub.next())["data"]["leadStageChanged"]["eventId"]
            closed = await next_change(ws)
        await move(api, tenant, lead_id, 2)  # while no socket is open
        fresh = keys["EdDSA"].sign(claims(tenant.id))
        async with connect(api.session, url, fresh) as ws:
            sub = await subscribe(ws, STAGE_CHANGES, {"leadId": lead_id, "after": seen})
            missed = (await sub.next())["data"]["leadStageChanged"]
    assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, 4401)
    assert missed["toStage"]["stageKey"] == "qualified"
    assert int(missed["eventId"]) > int(seen)


async def read_json_line(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 10)
    assert line, "the node client ended early"
    parsed: dict[str, Any] = json.loads(line)
    return parsed


async def test_the_readme_graphql_ws_client_refreshes_its_token_and_resumes_after_a_4401(
    settings: Settings,
    keys: dict[str, SigningKey],
    idp: IdentityProvider,
    pool: asyncpg.Pool,
    js_client: Path,  # noqa: F811
) -> None:
    tenant = await make_tenant(pool)
    issued: list[str] = []
    first_token = asyncio.Event()

    async def token(_request: web.Request) -> web.Response:
        issued.append(keys["EdDSA"].sign(claims(tenant.id, exp=int(time.time()) + 2)))
        first_token.set()
        return web.Response(text=issued[-1])

    token_app = web.Application()
    token_app.router.add_get("/token", token)
    token_server = TestServer(token_app, host="127.0.0.1")
    await token_server.start_server()
    try:
        async with gateway(settings, jwt_jwks_url=idp.url, jwt_leeway_seconds=0.0) as api:
            lead_id = await create_lead(api, tenant)
            url = api.base.replace("http://", "ws://") + "/graphql"
            node = await asyncio.create_subprocess_exec(
                "node",
                str(js_client.with_name("token_refresh.mjs")),
                url,
                str(token_server.make_url("/token")),
                lead_id,
                "2",
                cwd=js_client.parent,
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                await asyncio.wait_for(first_token.wait(), 10)
                await asyncio.sleep(0.3)  # connected and subscribed
                await move(api, tenant, lead_id, 1)
                lines = [await read_json_line(node), await read_json_line(node)]
                await move(api, tenant, lead_id, 2)  # while it reconnects with a new token
                lines.append(await read_json_line(node))
                assert await asyncio.wait_for(node.wait(), 10) == 0
            finally:
                if node.returncode is None:
                    node.kill()
                    await node.wait()
    finally:
        await token_server.close()
    assert lines[1] == {"closed": 4401}
    stages = [line["event"]["toStage"]["stageKey"] for line in (lines[0], lines[2])]
    assert stages == ["contacted", "qualified"]
    assert len(issued) == 2  # one token per connection
