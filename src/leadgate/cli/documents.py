"""`leadgate documents add`: trust a client's persisted-document manifest."""

from __future__ import annotations

import argparse
import asyncio
import json

from leadgate.cli.database import with_pool
from leadgate.cli.output import say
from leadgate.config import Settings
from leadgate.domain.documents import manifest_documents
from leadgate.domain.errors import AppError
from leadgate.graphql import persisted
from leadgate.services.documents import trust_documents


def cmd_documents_add(settings: Settings, args: argparse.Namespace) -> None:
    try:
        manifest = json.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AppError(f"cannot read the manifest {args.file}: {exc}") from exc
    found = manifest_documents(manifest, max_chars=settings.max_body_bytes)
    for document in found:
        persisted.check_syntax(document, max_tokens=settings.max_document_tokens)
    trusted = asyncio.run(with_pool(settings, lambda pool: trust_documents(pool, found)))
    say(
        f"{len(found)} trusted documents from {args.file}: {trusted.added} added, "
        f"{trusted.promoted} trusted now (registered by APQ before), {trusted.already} "
        "already trusted"
    )
