"""`leadgate import`: a CSV or JSON lines file into an organization, with a progress bar."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import asyncpg

from leadgate.cli.database import operator, with_pool
from leadgate.cli.output import Progress, say
from leadgate.config import Settings
from leadgate.domain.import_files import ImportFormat, format_from_name
from leadgate.services.imports import Importer, ImportFile
from leadgate.services.lead_writes import WriteContext


def cmd_import(settings: Settings, args: argparse.Namespace) -> None:
    path = Path(args.file)
    file_format = ImportFormat(args.format) if args.format else format_from_name(path.name)
    if file_format is None:
        say("error: name the format with --format (the file is not .csv, .ndjson or .jsonl)")
        raise SystemExit(2)
    upload = ImportFile(data=path.read_bytes(), format=file_format, filename=path.name)
    ctx = WriteContext(principal=operator(args.org), request_id="cli")

    async def work(pool: asyncpg.Pool) -> None:
        importer = Importer(
            pool,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
            notify=settings.writes_notify,
        )
        if args.dry_run:
            report = await importer.dry_run(ctx.principal, upload)
            for row, field, message in report.errors[:100]:
                say(f"row {row}: {field or '(row)'} {message}")
            say(f"dry run: {report.total:,} rows, {report.valid:,} valid, nothing written")
            return
        job = await importer.import_now(ctx, upload, progress=lambda total: Progress(total, "rows"))
        say(
            f"import {job.id} {job.status}: {job.created_count:,} created, "
            f"{job.failed_count:,} failed of {job.total_rows:,} "
            f"(errors: GET /v1/imports/{job.id}/errors)"
        )

    started = time.monotonic()
    asyncio.run(with_pool(settings, work))
    say(f"in {time.monotonic() - started:.1f}s")
