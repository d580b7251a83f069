"""`leadgate dev-token` (issue 10 #5): a token signed by the data directory's development key,
trusted (and its JWKS served at /.well-known/jwks.json) by a `serve --demo` gateway only."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import jwt
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.services import dev_tokens
from tests.processes import free_port, leadgate
from tests.support import Api, Tenant, error_codes
from tests.test_cli import serving, wait_until_healthy

LEADS_TOTAL: Final = "{ leads(limit: 1) { total } }"
CREATE_LEAD: Final = 'mutation { createLead(input: {businessName: "Dev Bakery"}) { id } }'


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[Api]:
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(session=session, base=str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


def env_for(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "LEADGATE_DATA_DIR": str(data_dir)}


async def dev_token(data_dir: Path, *args: str) -> str:
    result = (await leadgate("dev-token", *args, env=env_for(data_dir))).ok()
    return result.stdout.strip()


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_dev_token_mints_the_requested_claims(tmp_path: Path) -> None:
    org = uuid.uuid4()
    token = await dev_token(tmp_path, "--org", str(org), "--role", "viewer", "--ttl", "15m")
    claims = unverified(token)
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert (claims["org_id"], claims["role"]) == (str(org), "viewer")
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert abs(claims["iat"] - time.time()) < 60


async def test_the_default_role_is_editor_for_an_hour(tmp_path: Path) -> None:
    claims = unverified(await dev_token(tmp_path, "--org", str(uuid.uuid4())))
    assert claims["role"] == "editor"
    assert claims["exp"] - claims["iat"] == 3600


async def test_the_key_is_created_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = await dev_token(tmp_path, "--org", str(uuid.uuid4()))
    second = await dev_token(tmp_path, "--org", str(uuid.uuid4()))
    key_file = tmp_path / dev_tokens.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    kids = {jwt.get_unverified_header(token)["kid"] for token in (first, second)}
    assert kids == {dev_tokens.public_jwks(tmp_path)["keys"][0]["kid"]}


async def test_a_bad_ttl_is_a_usage_error(tmp_path: Path) -> None:
    result = await leadgate(
        "dev-token", "--org", str(uuid.uuid4()), "--ttl", "soon", env=env_for(tmp_path)
    )
    assert result.returncode == 2
    assert "duration" in result.stderr


async def test_a_demo_gateway_trusts_the_dev_token_and_serves_its_jwks(
    settings: Settings, tenant: Tenant, tmp_path: Path
) -> None:
    token = await dev_token(tmp_path, "--org", str(tenant.id))
    demo = dataclasses.replace(settings, demo_jwks=dev_tokens.public_jwks(tmp_path))
    async with gateway(demo) as api:
        status, body = await api.graphql(token, LEADS_TOTAL)
        _, created = await api.graphql(token, CREATE_LEAD)
        async with api.session.get(f"{api.base}/.well-known/jwks.json") as resp:
            jwks_status, jwks = resp.status, await resp.json()
    assert (status, body["data"]["leads"]["total"]) == (200, 30)
    assert "errors" not in created, created
    assert jwks_status == 200
    assert jwks == dev_tokens.public_jwks(tmp_path)
    assert all("d" not in key for key in jwks["keys"])  # public keys only


async def test_a_gateway_without_demo_refuses_the_dev_token_and_serves_no_jwks(
    api: Api, tenant: Tenant, tmp_path: Path
) -> None:
    token = await dev_token(tmp_path, "--org", str(tenant.id))
    status, body = await api.graphql(token, LEADS_TOTAL)
    async with api.session.get(f"{api.base}/.well-known/jwks.json") as resp:
        jwks_status = resp.status
    assert (status, error_codes(body)) == (401, ["UNAUTHENTICATED"])
    assert jwks_status in (401, 404)


async def test_a_viewer_dev_token_reads_but_cannot_write(
    settings: Settings, tenant: Tenant, tmp_path: Path
) -> None:
    token = await dev_token(tmp_path, "--org", str(tenant.id), "--role", "viewer")
    demo = dataclasses.replace(settings, demo_jwks=dev_tokens.public_jwks(tmp_path))
    async with gateway(demo) as api:
        reads = await api.graphql(token, LEADS_TOTAL)
        _, writes = await api.graphql(token, CREATE_LEAD)
    assert reads[0] == 200
    assert error_codes(writes) == ["FORBIDDEN"]


async def test_serve_demo_prints_a_dev_token_beside_the_api_key(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**env_for(tmp_path / "data"), "DATABASE_URL": database_url}
    async with (
        serving(
            "--demo", "--port", str(port), env=env, cwd=tmp_path, log=tmp_path / "serve.log"
        ) as serve,
        aiohttp.ClientSession() as session,
    ):
        key_line = await serve.line_starting_with("API key:")
        token_line = await serve.line_starting_with("Dev token:")
        base = f"http://127.0.0.1:{port}"
        await wait_until_healthy(session, base, serve)
        token = token_line.split(":", 1)[1].split()[0]
        api = Api(session=session, base=base)
        status, body = await api.graphql(token, LEADS_TOTAL)
        async with session.get(f"{base}/.well-known/jwks.json") as resp:
            jwks_status = resp.status
        assert await serve.stop() == 0
    assert key_line.split()[2].startswith("lw_live_")
    assert unverified(token)["role"] == "editor"
    assert status == 200, body
    assert body["data"]["leads"]["total"] >= 200
    assert jwks_status == 200
