"""POST /v1/imports, GET /v1/imports/{id} and GET /v1/imports/{id}/errors (issue 12 #3)."""

from __future__ import annotations

import re
from typing import Final

import orjson
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from leadgate import keys
from leadgate.domain.errors import (
    BadRequest,
    FieldError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from leadgate.domain.ids import parse_uuid
from leadgate.domain.import_files import ImportFormat, format_from_name, job_document
from leadgate.rest.leads import json_response
from leadgate.services.imports import ImportFile
from leadgate.services.lead_writes import WriteContext

routes = web.RouteTableDef()

# The body types an import takes, and the format each one means.
BODY_FORMATS: Final = {
    "application/x-ndjson": ImportFormat.NDJSON,
    "application/jsonl": ImportFormat.NDJSON,
    "text/csv": ImportFormat.CSV,
}
MAX_ERRORS_PAGE: Final = 1000
_CHUNK: Final = 64 * 1024


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The import file is over {limit} bytes (LEADGATE_MAX_IMPORT_BYTES)")


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refused as soon as it passes `limit` (aiohttp's own limit, the 1 MiB
    LEADGATE_MAX_BODY_BYTES, applies only to read(), which this route does not use)."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _format_of(filename: str | None, content_type: str | None) -> ImportFormat | None:
    if content_type in BODY_FORMATS:
        return BODY_FORMATS[content_type]
    return format_from_name(filename) if filename else None


async def _multipart(request: web.Request, limit: int) -> ImportFile:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        return await _file_part(await request.multipart(), limit)
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        # aiohttp's multipart reader refuses a broken body with these (AssertionError too).
        raise BadRequest("Malformed multipart/form-data body") from exc


async def _file_part(reader: MultipartReader, limit: int) -> ImportFile:
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name != "file":
            continue
        content_type = part.headers.get("Content-Type", "").split(";")[0].strip() or None
        file_format = _format_of(part.filename, content_type)
        if file_format is None:
            raise ValidationFailed.single(
                "file",
                "must be a .csv, .ndjson or .jsonl file, or typed text/csv or application/x-ndjson",
            )
        data = await _read_part(part, limit)
        return ImportFile(data=data, format=file_format, filename=part.filename)
    raise ValidationFailed.single("file", "is required: a multipart part named file")


async def _upload(request: web.Request) -> ImportFile:
    limit = request.config_dict[keys.SETTINGS].max_import_bytes
    if request.content_type == "multipart/form-data":
        return await _multipart(request, limit)
    file_format = BODY_FORMATS.get(request.content_type)
    if file_format is None:
        raise BadRequest(
            "An import is multipart/form-data (a part named file), application/x-ndjson or text/csv"
        )
    return ImportFile(data=await _read_body(request, limit), format=file_format)


@routes.post("/imports")
async def create_import(request: web.Request) -> web.Response:
    ctx = WriteContext(
        principal=keys.request_principal(request),
        request_id=keys.request_id(request),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    # Refused before the file is read: a read key's upload is not worth receiving.
    if not ctx.principal.can_write:
        raise Forbidden("Importing leads needs a write key or the editor role")
    started = await request.config_dict[keys.IMPORTER].start(ctx, await _upload(request))
    response = web.Response(body=started.body, status=202, content_type="application/json")
    response.headers["Location"] = f"/v1/imports/{started.job.id}"
    if started.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@routes.get("/imports/{id}")
async def get_import(request: web.Request) -> web.Response:
    job_id = parse_uuid(request.match_info["id"])
    if job_id is None:
        raise NotFound("Import not found")
    job = await request.config_dict[keys.IMPORTER].job(keys.request_principal(request), job_id)
    return json_response(
        {"data": job_document(job), "meta": {"requestId": keys.request_id(request)}}
    )


# A page's cursor is "<row>-<error id>" of its last item.
_CURSOR: Final = re.compile(r"([0-9]{1,9})-([0-9]{1,18})")


def _page_parameters(request: web.Request) -> tuple[tuple[int, int], int]:
    errors: list[FieldError] = []
    cursor = request.query.get("cursor")
    limit = request.query.get("limit", "100")
    after = (0, 0)
    if cursor is not None:
        found = _CURSOR.fullmatch(cursor)
        if found is None:
            errors.append(FieldError("cursor", "must be a previous page's meta.nextCursor"))
        else:
            after = (int(found[1]), int(found[2]))
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_ERRORS_PAGE):
        errors.append(FieldError("limit", f"must be an integer from 1 to {MAX_ERRORS_PAGE}"))
    if errors:
        raise ValidationFailed(errors)
    return after, int(limit)


@routes.get("/imports/{id}/errors")
async def list_import_errors(request: web.Request) -> web.Response:
    """The rows an import refused, by row: `{row, field, message}`, a page at a time."""
    job_id = parse_uuid(request.match_info["id"])
    if job_id is None:
        raise NotFound("Import not found")
    after, limit = _page_parameters(request)
    importer = request.config_dict[keys.IMPORTER]
    found = await importer.errors(keys.request_principal(request), job_id, after=after, limit=limit)
    data = [{"row": e.row, "field": e.field, "message": e.message} for e in found]
    meta = {
        "nextCursor": f"{found[-1].row}-{found[-1].id}" if len(found) == limit else None,
        "requestId": keys.request_id(request),
    }
    return web.Response(
        body=orjson.dumps({"data": data, "meta": meta}), content_type="application/json"
    )
