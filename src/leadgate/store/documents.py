"""Persisted documents, keyed by the SHA-256 of their text (sql/migrations/0005).

Not tenant data: a document is a client's code, shared by every organization that runs it, so
these queries carry no organization_id (the migration says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from leadgate.domain.documents import Document

# $2: only documents loaded from a manifest (LEADGATE_TRUSTED_DOCUMENTS=only).
FIND_DOCUMENT: Final = """
SELECT body
FROM persisted_documents
WHERE sha256 = $1
  AND (trusted OR NOT $2::boolean)
"""

# An APQ registration: the text is fixed by its hash, so a second one changes nothing.
REGISTER_DOCUMENT: Final = """
INSERT INTO persisted_documents (sha256, body)
VALUES ($1, $2)
ON CONFLICT (sha256) DO NOTHING
"""

# A manifest: new documents and ones an APQ client registered before become trusted; rows
# already trusted are left alone and not returned.
TRUST_DOCUMENTS: Final = """
INSERT INTO persisted_documents (sha256, body, trusted, operation_name)
SELECT d.sha256, d.body, true, d.operation_name
FROM unnest($1::text[], $2::text[], $3::text[]) AS d(sha256, body, operation_name)
ON CONFLICT (sha256) DO UPDATE
SET trusted = true,
    operation_name = coalesce(EXCLUDED.operation_name, persisted_documents.operation_name)
WHERE NOT persisted_documents.trusted
RETURNING (xmax = 0) AS inserted
"""


@dataclass(frozen=True, slots=True)
class Trusted:
    added: int
    # Registered by an APQ client before, now trusted too.
    promoted: int
    already: int


async def find_document(conn: asyncpg.Connection, sha256: str, *, trusted_only: bool) -> str | None:
    body: str | None = await conn.fetchval(FIND_DOCUMENT, sha256, trusted_only)
    return body


async def register_document(conn: asyncpg.Connection, sha256: str, body: str) -> None:
    await conn.execute(REGISTER_DOCUMENT, sha256, body)


async def trust_documents(conn: asyncpg.Connection, documents: Sequence[Document]) -> Trusted:
    rows = await conn.fetch(
        TRUST_DOCUMENTS,
        [d.sha256 for d in documents],
        [d.body for d in documents],
        [d.operation_name for d in documents],
    )
    added = sum(1 for row in rows if row["inserted"])
    return Trusted(added=added, promoted=len(rows) - added, already=len(documents) - len(rows))
