"""Persisted documents: looked up by hash through a bounded in-process cache, registered by
APQ clients, trusted from manifests (`leadgate documents add`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

import asyncpg

from leadgate.domain.documents import Document
from leadgate.store import documents
from leadgate.store.documents import Trusted

# A hash always names the same text, so a cached document never goes stale: the bounds only
# keep memory in check (a client registering documents without end evicts the oldest).
MAX_CACHED_DOCUMENTS: Final = 5_000
MAX_CACHED_CHARS: Final = 16 * 1024 * 1024


class PersistedDocuments:
    """The documents this process may run by hash.

    With `trusted_only` (LEADGATE_TRUSTED_DOCUMENTS=only) only manifest documents are found
    and nothing is registered. Unknown hashes are not cached: a document added by another
    process or by `leadgate documents add` is found on its next request.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        trusted_only: bool,
        max_documents: int = MAX_CACHED_DOCUMENTS,
        max_chars: int = MAX_CACHED_CHARS,
    ) -> None:
        self._pool = pool
        self.trusted_only = trusted_only
        self._max_documents = max_documents
        self._max_chars = max_chars
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._chars = 0

    def cached(self, sha256: str) -> str | None:
        body = self._cache.get(sha256)
        if body is not None:
            self._cache.move_to_end(sha256)
        return body

    async def find(self, sha256: str) -> str | None:
        """The document with this hash, or None; a cached one costs no SQL."""
        body = self.cached(sha256)
        if body is None:
            async with self._pool.acquire() as conn:
                body = await documents.find_document(conn, sha256, trusted_only=self.trusted_only)
            if body is not None:
                self._remember(sha256, body)
        return body

    async def register(self, sha256: str, body: str) -> None:
        """Store an APQ client's document (its hash already checked against its text)."""
        if self.trusted_only:
            raise RuntimeError("documents are not registered in trusted-documents mode")
        if self.cached(sha256) is None:
            async with self._pool.acquire() as conn:
                await documents.register_document(conn, sha256, body)
            self._remember(sha256, body)

    def _remember(self, sha256: str, body: str) -> None:
        if len(body) > self._max_chars:
            return
        self._cache[sha256] = body
        self._chars += len(body)
        while len(self._cache) > self._max_documents or self._chars > self._max_chars:
            _, evicted = self._cache.popitem(last=False)
            self._chars -= len(evicted)


async def trust_documents(pool: asyncpg.Pool, manifest: Sequence[Document]) -> Trusted:
    """A manifest's documents, all trusted in one transaction (all or none)."""
    async with pool.acquire() as conn, conn.transaction():
        return await documents.trust_documents(conn, manifest)
