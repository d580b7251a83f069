"""importLeads (issue 12 #3): GraphQL has no file upload, so the rows come as a String.

The string is bounded by the GraphQL body limit (LEADGATE_MAX_BODY_BYTES, 1 MiB by default);
a larger file goes through POST /v1/imports (LEADGATE_MAX_IMPORT_BYTES). Either way the answer
is the job, polled at GET /v1/imports/{id}.
"""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from leadgate.domain.errors import Internal
from leadgate.domain.import_files import ImportFormat as FileFormat
from leadgate.domain.import_files import ImportJob as JobRecord
from leadgate.services.imports import Importer, ImportFile
from leadgate.services.lead_writes import WriteContext


@strawberry.enum(description="The format of an import's rows")
class ImportFormat(enum.Enum):
    CSV = "csv"
    NDJSON = "ndjson"


@strawberry.enum(description="Where an import job is")
class ImportStatus(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@strawberry.type(
    description="A bulk import: its rows are written in batches in the background; the "
    "refused rows are at GET /v1/imports/{id}/errors."
)
class ImportJob:
    id: strawberry.ID
    status: ImportStatus
    format: ImportFormat
    total_rows: int
    created_count: int
    updated_count: int
    failed_count: int
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_record(cls, job: JobRecord) -> ImportJob:
        return cls(
            id=strawberry.ID(str(job.id)),
            status=ImportStatus(job.status),
            format=ImportFormat(job.format),
            total_rows=job.total_rows,
            created_count=job.created_count,
            updated_count=job.updated_count,
            failed_count=job.failed_count,
            created_at=job.created_at,
            completed_at=job.completed_at,
        )


async def start_import(
    importer: Importer | None, ctx: WriteContext, content: str, file_format: ImportFormat
) -> tuple[ImportJob, bool]:
    """The job created for the rows, and whether it is an idempotent replay."""
    if importer is None:  # a context built without the app's services
        raise Internal()
    upload = ImportFile(data=content.encode(), format=FileFormat(file_format.value))
    started = await importer.start(ctx, upload)
    return ImportJob.from_record(started.job), started.replayed
