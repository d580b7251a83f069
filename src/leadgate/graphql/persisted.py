"""Persisted documents on the wire: which text a request runs, and caching of hashed GETs.

- Apollo's automatic persisted queries: `extensions.persistedQuery {version: 1, sha256Hash}`.
  The hash alone runs the stored document, or answers PERSISTED_QUERY_NOT_FOUND (the client
  then sends the document with its hash); a document with its hash must match it, and is
  stored once the gate admits it (it parsed, validated and kept within the limits).
- The GraphQL-over-HTTP persisted-documents proposal: `documentId` (`sha256:<hex>` or hex).
- LEADGATE_TRUSTED_DOCUMENTS=only: only manifest documents run; free text is refused before
  any SQL, and nothing is registered.
- A query run by its hash over GET is cacheable by the client: `Cache-Control: private`
  (the answer is the credential's organization's data; no shared cache may keep it) and a
  strong `ETag` of the body, so a revalidation costs a 304 without the body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from graphql import GraphQLError, parse

from leadgate.domain.documents import Document, document_hash, document_id, sha256_id
from leadgate.domain.errors import BadRequest, PersistedQueryNotFound, PersistedQueryRequired
from leadgate.services.documents import PersistedDocuments

APQ_VERSION = 1


@dataclass(frozen=True, slots=True)
class Resolved:
    query: str = field(repr=False)
    # An APQ client's first send: its hash, stored once the gate admits the document.
    register: str | None = None
    # Run from the store by its hash alone: a GET of it may be cached.
    by_hash: bool = False


async def resolve(params: Mapping[str, Any], documents: PersistedDocuments) -> Resolved:
    """The document `params` (a request's, or a WebSocket operation's payload) asks to run."""
    query, extensions, given_id = (params.get(k) for k in ("query", "extensions", "documentId"))
    for name, value, kind in (("query", query, str), ("documentId", given_id, str)):
        if value is not None and not isinstance(value, kind):
            raise BadRequest(f"`{name}` must be a string or null")
    if extensions is not None and not isinstance(extensions, dict):
        raise BadRequest("`extensions` must be an object or null")
    query = query or None
    persisted = (extensions or {}).get("persistedQuery")
    if given_id is not None:
        if query is not None or persisted is not None:
            raise BadRequest("Send either `documentId` or a document, not both")
        return Resolved(await _stored(document_id(given_id), documents), by_hash=True)
    if persisted is not None:
        sha256 = _apq_hash(persisted)
        if query is None:
            return Resolved(await _stored(sha256, documents), by_hash=True)
        if document_hash(query) != sha256:
            raise BadRequest("provided sha does not match query")
        if documents.trusted_only:
            if await documents.find(sha256) is None:
                raise PersistedQueryRequired()
            return Resolved(query)
        return Resolved(query, register=None if documents.cached(sha256) else sha256)
    if query is None:
        raise BadRequest("No GraphQL query found in the request")
    if documents.trusted_only:
        raise PersistedQueryRequired()
    return Resolved(query)


def cache(request: web.Request, response: web.Response, body: bytes, *, max_age: int) -> None:
    """Mark a successful answer (`body`) to a hashed GET cacheable; 304 if the client has it."""
    etag = hashlib.sha256(body).hexdigest()[:32]
    response.etag = etag
    response.headers["Cache-Control"] = f"private, max-age={max_age}"
    vary = [v for v in (response.headers.get("Vary"), "Accept, Authorization") if v]
    response.headers["Vary"] = ", ".join(vary)
    if any(tag.value in (etag, "*") for tag in request.if_none_match or ()):
        response.set_status(304)
        response.body = b""


async def _stored(sha256: str, documents: PersistedDocuments) -> str:
    body = await documents.find(sha256)
    if body is None:
        raise PersistedQueryNotFound()
    return body


def _apq_hash(persisted: object) -> str:
    if not isinstance(persisted, dict):
        raise BadRequest("`extensions.persistedQuery` must be an object")
    if persisted.get("version") != APQ_VERSION:
        raise BadRequest(
            f"Unsupported persisted query version {persisted.get('version')!r} (only 1)"
        )
    sha256 = sha256_id(persisted.get("sha256Hash"))
    if sha256 is None:
        raise BadRequest("`extensions.persistedQuery.sha256Hash` must be 64 hex digits")
    return sha256


def check_syntax(document: Document, *, max_tokens: int) -> None:
    """Refuse a manifest's document that could never run: it does not parse, or it is over
    the token limit (checked against the schema only when it runs: a manifest may be loaded
    before the deploy whose schema it was written for)."""
    try:
        parse(document.body, max_tokens=max_tokens)
    except GraphQLError as exc:
        name = document.operation_name or document.sha256
        raise BadRequest(f"Document {name} cannot run: {exc.message}") from exc
