"""Persisted documents: their SHA-256 ids, and the manifests clients generate.

A document's id is the lowercase hex SHA-256 of its UTF-8 text, the id Apollo's
`PersistedQueryLink` sends (`extensions.persistedQuery.sha256Hash`), that Apollo's
`generate-persisted-query-manifest` writes by default, and that the GraphQL-over-HTTP
persisted-documents proposal spells `sha256:<hex>` in `documentId`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

from leadgate.domain.errors import BadRequest

APOLLO_MANIFEST_FORMAT: Final = "apollo-persisted-query-manifest"
_SHA256_HEX: Final = re.compile(r"[0-9a-fA-F]{64}")
_SHA1_HEX: Final = re.compile(r"[0-9a-fA-F]{40}")


@dataclass(frozen=True, slots=True)
class Document:
    sha256: str
    body: str = field(repr=False)
    operation_name: str | None = None


def document_hash(body: str) -> str:
    # surrogatepass: a lone surrogate from a JSON body hashes (and then mismatches) instead of
    # raising; a client's encoder would have replaced it.
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def sha256_id(value: object) -> str | None:
    """`value` as a normalised (lowercase) SHA-256 hex id, or None if it is not one."""
    if isinstance(value, str) and _SHA256_HEX.fullmatch(value):
        return value.lower()
    return None


def document_id(value: str) -> str:
    """The hash of a `documentId` (`sha256:<hex>` or bare `<hex>`); other ids are refused."""
    prefix, colon, rest = value.partition(":")
    digest = sha256_id(rest if colon and prefix == "sha256" else value)
    if digest is None:
        raise BadRequest(
            "`documentId` must be `sha256:<64 hex digits>` (or the bare hex): this gateway "
            "knows documents by the SHA-256 of their text"
        )
    return digest


def manifest_documents(manifest: object, *, max_chars: int) -> list[Document]:
    """The documents of an Apollo persisted-query manifest or of GraphQL Codegen's
    `persisted-documents.json`, each checked against its id; the first fault refuses all."""
    if isinstance(manifest, dict) and manifest.get("format") == APOLLO_MANIFEST_FORMAT:
        documents = _apollo(manifest)
    elif isinstance(manifest, dict) and all(isinstance(v, str) for v in manifest.values()):
        documents = [(str(key), body, None) for key, body in manifest.items()]
    else:
        raise BadRequest(
            "Not a manifest: expected Apollo's apollo-persisted-query-manifest or GraphQL "
            'Codegen\'s {"<sha256>": "<document>"}'
        )
    unique: dict[str, Document] = {}
    for given, body, name in documents:
        unique[_checked(given, body, max_chars)] = Document(document_hash(body), body, name)
    return list(unique.values())


def _apollo(manifest: dict[object, object]) -> list[tuple[str, str, str | None]]:
    if manifest.get("version") != 1:
        raise BadRequest(f"Unsupported Apollo manifest version {manifest.get('version')!r}")
    operations = manifest.get("operations")
    if not isinstance(operations, list):
        raise BadRequest("An Apollo manifest's `operations` must be a list")
    documents = []
    for operation in operations:
        if not (
            isinstance(operation, dict)
            and isinstance(operation.get("id"), str)
            and isinstance(operation.get("body"), str)
        ):
            raise BadRequest(f"An Apollo manifest operation needs `id` and `body`: {operation!r}")
        name = operation.get("name")
        documents.append(
            (operation["id"], operation["body"], name if isinstance(name, str) else None)
        )
    return documents


def _checked(given: str, body: str, max_chars: int) -> str:
    if not body.strip():
        raise BadRequest(f"Document {given} is empty")
    if len(body) > max_chars:
        raise BadRequest(f"Document {given} is over {max_chars} characters (the body limit)")
    digest = document_hash(body)
    if sha256_id(given) != digest:
        hint = (
            " (GraphQL Codegen hashes with SHA-1 by default: set persistedDocuments: "
            "{ hashAlgorithm: 'sha256' })"
            if _SHA1_HEX.fullmatch(given)
            else ""
        )
        raise BadRequest(f"Document id {given} is not the SHA-256 of its body{hint}")
    return digest
