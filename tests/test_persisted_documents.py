"""Persisted documents: Apollo's automatic persisted queries by POST and GET (cacheable),
`documentId` requests, trusted documents from manifests (`leadgate documents add`) with
LEADGATE_TRUSTED_DOCUMENTS=only, and Apollo Client's own PersistedQueryLink run in Node.

The store is shared by the whole session, so every test hashes a document of its own (a
unique comment or operation name).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.db.statements import StatementCounter
from leadgate.domain.documents import Document
from leadgate.services.documents import trust_documents
from tests.processes import leadgate
from tests.support import Api, Tenant, bearer, error_codes, fewest_statements, header
from tests.ws_client import connect

JS_DIR: Final = Path(__file__).with_name("js")
NPM_DEADLINE: Final = 180.0
NODE_DEADLINE: Final = 30.0
GRAPHQL_RESPONSE_JSON: Final = "application/graphql-response+json"


def unique(document: str = "{ stages { stageKey } }") -> str:
    """`document` under a comment no other test uses: a hash of its own."""
    return f"# {uuid.uuid4()}\n{document}"


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def apq(document: str, version: object = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha(document)}}


async def post(
    api: Api, key: str, payload: dict[str, Any], *, accept: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    async with api.session.post(
        f"{api.base}/graphql", json=payload, headers={**bearer(key), "Accept": accept}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def get(
    api: Api, key: str, params: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    async with api.session.get(
        f"{api.base}/graphql", params=params, headers={**bearer(key), **(headers or {})}
    ) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


def hashed_get(document: str) -> dict[str, str]:
    return {"extensions": json.dumps(apq(document))}


def stage_keys(body: dict[str, Any]) -> list[str]:
    return [s["stageKey"] for s in body["data"]["stages"]]


@dataclass
class Gateway:
    """Another gateway process on the session's database, and what it was asked."""

    api: Api
    statements: StatementCounter
    # (method, whether a document's text was sent, status) of each /graphql request.
    seen: list[tuple[str, bool, int]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    app = create_app(dataclasses.replace(settings, dispatcher_enabled=False))
    seen: list[tuple[str, bool, int]] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        if request.path == "/graphql":
            sent = request.query.get("query") if request.method == "GET" else None
            if request.method == "POST":
                sent = json.loads(await request.read() or b"{}").get("query")
            seen.append((request.method, bool(sent), response.status))

    app.on_response_prepare.append(record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session=session, base=str(server.make_url("")).rstrip("/"))
            yield Gateway(api, server.app[keys.STATEMENTS], seen)
    finally:
        await server.close()


@pytest.fixture(scope="module")
async def second(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Gateway]:
    async with gateway(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def trusted(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Gateway]:
    async with gateway(dataclasses.replace(settings, trusted_documents="only")) as running:
        yield running


# --- automatic persisted queries ---------------------------------------------------------------


async def test_a_hash_alone_is_persisted_query_not_found_until_the_document_is_sent_with_it(
    api: Api, tenant: Tenant
) -> None:
    document = unique()

    status, missing = await post(api, tenant.read_key, {"extensions": apq(document)})
    registered_status, registered = await post(
        api, tenant.read_key, {"query": document, "extensions": apq(document)}
    )
    by_hash_status, by_hash = await post(api, tenant.read_key, {"extensions": apq(document)})

    # Apollo's protocol, exactly: its links match this message or this code.
    assert status == 200
    assert missing["errors"][0]["message"] == "PersistedQueryNotFound"
    assert error_codes(missing) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert "data" not in missing
    assert registered_status == by_hash_status == 200
    assert stage_keys(by_hash) == stage_keys(registered)
    assert len(stage_keys(by_hash)) == 6


async def test_an_unknown_hash_is_404_under_the_graphql_response_media_type(
    api: Api, tenant: Tenant
) -> None:
    status, body = await post(
        api, tenant.read_key, {"extensions": apq(unique())}, accept=GRAPHQL_RESPONSE_JSON
    )

    assert status == 404
    assert error_codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_hash_that_does_not_match_its_document_is_refused(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    document = unique()

    status, body = await post(
        api, tenant.read_key, {"query": document, "extensions": apq(unique())}
    )

    assert status == 400
    assert error_codes(body) == ["BAD_REQUEST"]
    assert body["errors"][0]["message"] == "provided sha does not match query"
    assert await stored(pool, document) is None


async def test_an_unsupported_persisted_query_version_is_a_bad_request(
    api: Api, tenant: Tenant
) -> None:
    document = unique()

    status, body = await post(
        api, tenant.read_key, {"query": document, "extensions": apq(document, version=2)}
    )

    assert status == 400
    assert error_codes(body) == ["BAD_REQUEST"]
    assert "version" in body["errors"][0]["message"]


async def test_a_document_the_gate_refuses_is_not_registered(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    broken, invalid = unique("{ stages { stageKey }"), unique("{ stages { nope } }")

    for document in (broken, invalid):
        _, body = await post(api, tenant.read_key, {"query": document, "extensions": apq(document)})
        assert error_codes(body) in (["BAD_REQUEST"], ["VALIDATION_ERROR"])

    assert await stored(pool, broken) is None
    assert await stored(pool, invalid) is None


async def test_a_registered_document_runs_by_hash_on_another_process(
    api: Api, tenant: Tenant, second: Gateway
) -> None:
    document = unique()
    await post(api, tenant.read_key, {"query": document, "extensions": apq(document)})

    status, body = await post(second.api, tenant.read_key, {"extensions": apq(document)})

    assert status == 200
    assert len(stage_keys(body)) == 6


async def test_a_cached_hash_costs_the_query_s_statements_and_no_more(
    api: Api, tenant: Tenant, statements: StatementCounter
) -> None:
    document = unique()
    await post(api, tenant.read_key, {"query": document})  # the key, now cached
    free_text = await fewest_statements(
        statements, lambda: post(api, tenant.read_key, {"query": document})
    )
    await post(api, tenant.read_key, {"query": document, "extensions": apq(document)})

    by_hash = await fewest_statements(
        statements, lambda: post(api, tenant.read_key, {"extensions": apq(document)})
    )

    assert by_hash == free_text


# --- GET ---------------------------------------------------------------------------------------


async def test_a_query_by_hash_over_get_is_privately_cacheable_and_revalidates_with_its_etag(
    api: Api, tenant: Tenant
) -> None:
    document = unique()
    await post(api, tenant.read_key, {"query": document, "extensions": apq(document)})

    status, body, headers = await get(api, tenant.read_key, hashed_get(document))
    etag = header(headers, "ETag")
    assert etag is not None
    again, empty, revalidated = await get(
        api, tenant.read_key, hashed_get(document), {"If-None-Match": etag}
    )

    assert status == 200
    assert len(stage_keys(json.loads(body))) == 6
    # The answer is the credential's organization's data: no shared cache may keep it.
    assert header(headers, "Cache-Control") == "private, max-age=0"
    assert etag.startswith('"')
    assert "Authorization" in (header(headers, "Vary") or "")
    assert again == 304
    assert empty == b""
    assert header(revalidated, "ETag") == etag


async def test_a_hash_unknown_by_get_is_not_found_and_not_cacheable(
    api: Api, tenant: Tenant
) -> None:
    status, body, headers = await get(api, tenant.read_key, hashed_get(unique()))

    assert status == 200
    assert error_codes(json.loads(body)) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert header(headers, "ETag") is None
    assert "private" not in (header(headers, "Cache-Control") or "")


async def test_a_persisted_mutation_is_refused_over_get(api: Api, tenant: Tenant) -> None:
    # Admitted, so registered, though a read key may not run it (FORBIDDEN): nothing changes.
    document = unique(f'mutation {{ assignLead(id: "{uuid.uuid4()}", advisorId: null) {{ id }} }}')
    _, body = await post(api, tenant.read_key, {"query": document, "extensions": apq(document)})
    assert error_codes(body) == ["FORBIDDEN"]

    status, _, headers = await get(api, tenant.read_key, hashed_get(document))

    assert status == 405
    assert header(headers, "Allow") == "POST"


# --- documentId --------------------------------------------------------------------------------


async def test_a_document_id_runs_the_stored_document_with_or_without_its_prefix(
    api: Api, tenant: Tenant
) -> None:
    document = unique("query($n: Int!) { leads(limit: $n) { nodes { id } } }")
    await post(
        api,
        tenant.read_key,
        {"query": document, "extensions": apq(document), "variables": {"n": 1}},
    )

    for document_id in (f"sha256:{sha(document)}", sha(document)):
        status, body = await post(
            api, tenant.read_key, {"documentId": document_id, "variables": {"n": 2}}
        )
        assert status == 200
        assert len(body["data"]["leads"]["nodes"]) == 2


async def test_an_unknown_document_id_is_not_found_and_a_foreign_one_is_a_bad_request(
    api: Api, tenant: Tenant
) -> None:
    _, unknown = await post(api, tenant.read_key, {"documentId": f"sha256:{sha(unique())}"})
    status, foreign = await post(api, tenant.read_key, {"documentId": "md5:abc"})

    assert error_codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert status == 400
    assert error_codes(foreign) == ["BAD_REQUEST"]


async def test_a_document_id_with_a_document_beside_it_is_a_bad_request(
    api: Api, tenant: Tenant
) -> None:
    document = unique()

    status, body = await post(
        api, tenant.read_key, {"documentId": sha(document), "query": document}
    )

    assert status == 400
    assert error_codes(body) == ["BAD_REQUEST"]


# --- trusted documents -------------------------------------------------------------------------


async def test_documents_add_trusts_an_apollo_manifest_and_a_codegen_manifest(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    apollo_doc, codegen_doc = unique("query A { stages { id } }"), unique("{ advisors { id } }")
    apollo = tmp_path / "persisted-query-manifest.json"
    apollo.write_text(json.dumps(apollo_manifest(apollo_doc, "A")))
    codegen = tmp_path / "persisted-documents.json"
    codegen.write_text(json.dumps({sha(codegen_doc): codegen_doc}))
    env = {**os.environ, "DATABASE_URL": database_url}

    first = (await leadgate("documents", "add", str(apollo), env=env)).ok()
    (await leadgate("documents", "add", str(codegen), env=env)).ok()
    repeated = (await leadgate("documents", "add", str(apollo), env=env)).ok()

    assert "1 added" in first.stdout
    assert "1 already trusted" in repeated.stdout
    assert await stored(pool, apollo_doc) == (True, "A")
    assert await stored(pool, codegen_doc) == (True, None)


async def test_documents_add_refuses_a_whole_manifest_over_one_bad_document(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    good, broken = unique(), unique("{ stages {")
    sha1_keyed = unique("{ advisors { id } }")
    env = {**os.environ, "DATABASE_URL": database_url}
    unparsable = tmp_path / "unparsable.json"
    unparsable.write_text(json.dumps({sha(good): good, sha(broken): broken}))
    codegen_sha1 = tmp_path / "sha1.json"
    codegen_sha1.write_text(
        json.dumps({hashlib.sha1(sha1_keyed.encode()).hexdigest(): sha1_keyed})  # noqa: S324
    )

    refused = await leadgate("documents", "add", str(unparsable), env=env)
    wrong_hash = await leadgate("documents", "add", str(codegen_sha1), env=env)

    assert refused.returncode == wrong_hash.returncode == 1
    assert "cannot run" in refused.stderr
    assert "hashAlgorithm: 'sha256'" in wrong_hash.stderr
    assert await stored(pool, good) is None
    assert await stored(pool, sha1_keyed) is None


async def test_trusted_only_refuses_a_free_text_document_before_any_sql(
    trusted: Gateway, tenant: Tenant
) -> None:
    await post(trusted.api, tenant.read_key, {"documentId": sha(unique())})  # the key, cached
    before = trusted.statements.total

    status, body = await post(trusted.api, tenant.read_key, {"query": "{ stages { id } }"})

    assert status == 400
    assert error_codes(body) == ["PERSISTED_QUERY_REQUIRED"]
    assert trusted.statements.total == before


async def test_trusted_only_runs_a_manifest_document_and_a_known_hash_costs_no_lookup(
    trusted: Gateway, api: Api, tenant: Tenant, pool: asyncpg.Pool, statements: StatementCounter
) -> None:
    document = unique()
    await trust(pool, document)
    await post(api, tenant.read_key, {"query": document})  # the key, now cached
    query_alone = await fewest_statements(
        statements, lambda: post(api, tenant.read_key, {"query": document})
    )
    first_status, first = await post(trusted.api, tenant.read_key, {"documentId": sha(document)})

    before = trusted.statements.total
    status, body = await post(trusted.api, tenant.read_key, {"documentId": sha(document)})

    assert first_status == status == 200
    assert stage_keys(body) == stage_keys(first)
    assert trusted.statements.total - before == query_alone


async def test_trusted_only_neither_registers_nor_runs_apq_documents(
    trusted: Gateway, api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    registered, new = unique(), unique()
    await post(api, tenant.read_key, {"query": registered, "extensions": apq(registered)})

    _, by_hash = await post(trusted.api, tenant.read_key, {"extensions": apq(registered)})
    status, sent = await post(trusted.api, tenant.read_key, {"query": new, "extensions": apq(new)})

    assert error_codes(by_hash) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert status == 400
    assert error_codes(sent) == ["PERSISTED_QUERY_REQUIRED"]
    assert await stored(pool, new) is None


# --- WebSocket ---------------------------------------------------------------------------------


async def socket_answer(api: Api, key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The first frame answering one graphql-transport-ws operation with `payload`."""
    url = api.base.replace("http://", "ws://") + "/graphql"
    async with connect(api.session, url, key) as ws:
        await ws.send_json({"id": "1", "type": "subscribe", "payload": payload})
        frame: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), 5)
        return frame


async def test_a_stored_document_runs_by_hash_over_the_websocket(api: Api, tenant: Tenant) -> None:
    document = unique()
    await post(api, tenant.read_key, {"query": document, "extensions": apq(document)})

    frame = await socket_answer(api, tenant.read_key, {"extensions": apq(document)})

    assert frame["type"] == "next"
    assert len(stage_keys(frame["payload"])) == 6


async def test_trusted_only_refuses_free_text_over_the_websocket_too(
    trusted: Gateway, tenant: Tenant
) -> None:
    await post(trusted.api, tenant.read_key, {"query": "{ stages { id } }"})  # the key, cached
    before = trusted.statements.total

    frame = await socket_answer(trusted.api, tenant.read_key, {"query": "{ stages { id } }"})

    assert frame["type"] == "error"
    assert [e["extensions"]["code"] for e in frame["payload"]] == ["PERSISTED_QUERY_REQUIRED"]
    assert trusted.statements.total == before


async def test_trusted_only_refuses_free_text_over_server_sent_events_too(
    trusted: Gateway, tenant: Tenant
) -> None:
    await post(trusted.api, tenant.read_key, {"query": "{ stages { id } }"})  # the key, cached
    before = trusted.statements.total

    async with trusted.api.session.post(
        f"{trusted.api.base}/graphql",
        json={"query": "subscription { leadStageChanged { eventId } }"},
        headers={**bearer(tenant.read_key), "Accept": "text/event-stream"},
    ) as resp:
        stream = await asyncio.wait_for(resp.text(), 5)

    assert "PERSISTED_QUERY_REQUIRED" in stream
    assert trusted.statements.total == before


# --- Apollo Client in Node ---------------------------------------------------------------------


@pytest.fixture(scope="session")
async def apollo_script() -> Path:
    """tests/js/apq.mjs, with its pinned npm packages installed on first use."""
    npm = shutil.which("npm")
    assert shutil.which("node") and npm, "these tests need Node.js and npm on PATH"
    if not (JS_DIR / "node_modules" / "@apollo" / "client").is_dir():
        process = await asyncio.create_subprocess_exec(
            npm,
            "ci",
            "--no-audit",
            "--no-fund",
            cwd=JS_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), NPM_DEADLINE)
        assert process.returncode == 0, output.decode()
    return JS_DIR / "apq.mjs"


async def test_apollo_persisted_query_link_retries_an_unknown_hash_then_sends_the_hash_alone(
    second: Gateway, tenant: Tenant, apollo_script: Path
) -> None:
    # Apollo prints the document before hashing it (comments go): unique operation names.
    by_post = f"query ApqPost{uuid.uuid4().hex} {{ stages {{ stageKey }} }}"
    by_get = f"query ApqGet{uuid.uuid4().hex} {{ stages {{ stageKey }} }}"
    second.seen.clear()
    process = await asyncio.create_subprocess_exec(
        "node",
        str(apollo_script),
        f"{second.api.base}/graphql",
        by_post,
        by_get,
        env={**os.environ, "LEADGATE_API_KEY": tenant.read_key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), NODE_DEADLINE)
    assert process.returncode == 0, stderr.decode()

    results = [json.loads(line) for line in stdout.decode().splitlines()]
    assert [(r["client"], r["run"]) for r in results] == [
        ("post", 1),
        ("post", 2),
        ("get", 1),
        ("get", 2),
    ]
    assert all(len(r["data"]["stages"]) == 6 for r in results)
    # Apollo Client asks for application/graphql-response+json: an unknown hash is a 404.
    assert second.seen == [
        ("POST", False, 404),  # the hash alone: unknown
        ("POST", True, 200),  # the document with its hash: run and stored
        ("POST", False, 200),  # the hash alone again
        ("GET", False, 404),
        ("POST", True, 200),  # Apollo resends a document by POST
        ("GET", False, 200),
    ]


# --- helpers -----------------------------------------------------------------------------------


def apollo_manifest(document: str, name: str) -> dict[str, Any]:
    return {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": sha(document), "name": name, "type": "query", "body": document}],
    }


async def stored(pool: asyncpg.Pool, document: str) -> tuple[bool, str | None] | None:
    row = await pool.fetchrow(
        "SELECT trusted, operation_name FROM persisted_documents WHERE sha256 = $1", sha(document)
    )
    return None if row is None else (row["trusted"], row["operation_name"])


async def trust(pool: asyncpg.Pool, document: str) -> None:
    """As `leadgate documents add` does (tested above), without a process per test."""
    await trust_documents(pool, [Document(sha(document), document)])
