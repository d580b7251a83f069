"""Import files (issue 12 #3): CSV with a header row, or JSON lines, read into lead inputs.

A file is read whole before anything is written: a malformed one (not UTF-8, a ragged row, an
overlong line, a line that is not a JSON object, an unknown column) is refused as a whole with
a VALIDATION_ERROR on the field `file`, naming the row. A well-formed file yields one input per
row, in the API's field names, for the one lead validator to judge row by row.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson

from leadgate.domain.errors import FieldError, ValidationFailed
from leadgate.domain.formats import iso_utc
from leadgate.domain.lead_fields import CREATE_INPUTS

# A lead with every field at its limit (custom fields 16 KiB) is far below this; a longer line
# is a broken file (a missing newline, a binary), refused before it is parsed.
MAX_LINE_BYTES: Final = 256 * 1024
# A CSV cell of `tags` holds the tags separated by this (a comma would need quoting).
TAG_SEPARATOR: Final = ";"
# Every source an import writes is csv_import: the column is not the file's to choose.
COLUMNS: Final = tuple(f.input_name for f in CREATE_INPUTS if f.input_name != "source")
_JSON_COLUMNS: Final = frozenset({"customFields", "externalIds"})
_LIST_COLUMNS: Final = frozenset({"tags"})
_BOM: Final = b"\xef\xbb\xbf"


class ImportFormat(enum.Enum):
    CSV = "csv"
    NDJSON = "ndjson"


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One row of the file: its number (1 is the first row after a CSV header) and the
    lead input it gives; `problems` are cells that could not even be read (bad JSON)."""

    number: int
    raw: dict[str, Any]
    problems: tuple[FieldError, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportJob:
    id: UUID
    status: str
    format: str
    filename: str | None
    total_rows: int
    created_count: int
    updated_count: int
    failed_count: int
    failure: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class RowError:
    id: int
    row: int
    field: str | None
    message: str


def job_document(job: ImportJob) -> dict[str, Any]:
    """The job as the REST API shows it."""
    return {
        "id": str(job.id),
        "type": "import",
        "status": job.status,
        "format": job.format,
        "filename": job.filename,
        "counts": {
            "total": job.total_rows,
            "created": job.created_count,
            "updated": job.updated_count,
            "failed": job.failed_count,
        },
        "failure": job.failure,
        "createdBy": job.created_by,
        "createdAt": iso_utc(job.created_at),
        "startedAt": iso_utc(job.started_at) if job.started_at else None,
        "completedAt": iso_utc(job.completed_at) if job.completed_at else None,
    }


def job_response(job: ImportJob, request_id: str) -> bytes:
    """POST /v1/imports' answer, stored under its idempotency key."""
    return orjson.dumps({"data": job_document(job), "meta": {"requestId": request_id}})


def response_job_id(body: bytes) -> UUID:
    """The job a stored `job_response` shows."""
    return UUID(orjson.loads(body)["data"]["id"])


def malformed(message: str) -> ValidationFailed:
    return ValidationFailed([FieldError("file", message)], f"The import file {message}")


def _text(data: bytes) -> str:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    for number, line in enumerate(data.split(b"\n"), start=1):
        if len(line) > MAX_LINE_BYTES:
            raise malformed(f"line {number} is longer than {MAX_LINE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed(f"is not UTF-8 (byte {exc.start})") from None
    if "\x00" in text:
        raise malformed("contains a NUL character (a binary file?)")
    return text


def _cell(column: str, value: str) -> tuple[Any, FieldError | None]:
    if column in _LIST_COLUMNS:
        return [t for t in (t.strip() for t in value.split(TAG_SEPARATOR)) if t], None
    if column in _JSON_COLUMNS:
        try:
            return orjson.loads(value), None
        except orjson.JSONDecodeError:
            return None, FieldError(column, "must be a JSON object")
    return value, None


def _csv_rows(text: str) -> list[ImportRow]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise malformed("has no header row")
        names = [h.strip() for h in header]
        unknown = [n for n in names if n not in COLUMNS]
        if unknown:
            raise malformed(
                f"has unknown columns: {', '.join(unknown[:5])} (known: {', '.join(COLUMNS)})"
            )
        if len(set(names)) != len(names):
            raise malformed("has a column twice in its header")
        rows: list[ImportRow] = []
        for cells in reader:
            if not cells or cells == [""]:
                continue  # a blank line
            number = len(rows) + 1
            if len(cells) != len(names):
                raise malformed(f"row {number} has {len(cells)} cells, the header {len(names)}")
            raw: dict[str, Any] = {}
            problems: list[FieldError] = []
            for name, value in zip(names, cells, strict=True):
                if value == "":
                    continue  # an empty cell leaves the field out
                raw[name], problem = _cell(name, value)
                if problem is not None:
                    problems.append(problem)
            rows.append(ImportRow(number, raw, tuple(problems)))
    except csv.Error as exc:
        raise malformed(f"is not valid CSV near line {reader.line_num}: {exc}") from None
    return rows


def _ndjson_rows(text: str) -> list[ImportRow]:
    rows: list[ImportRow] = []
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise malformed(f"line {line_number} is not JSON") from None
        if not isinstance(value, dict):
            raise malformed(f"line {line_number} is not a JSON object")
        rows.append(ImportRow(len(rows) + 1, value))
    return rows


_EXTENSIONS: Final = {
    ".csv": ImportFormat.CSV,
    ".ndjson": ImportFormat.NDJSON,
    ".jsonl": ImportFormat.NDJSON,
}


def format_from_name(filename: str) -> ImportFormat | None:
    """The format a file's extension names (.csv; .ndjson or .jsonl), if any."""
    for extension, found in _EXTENSIONS.items():
        if filename.lower().endswith(extension):
            return found
    return None


def read_rows(data: bytes, file_format: ImportFormat) -> list[ImportRow]:
    """Every row of a well-formed file, or ValidationFailed on `file` for a malformed one."""
    text = _text(data)
    rows = _csv_rows(text) if file_format is ImportFormat.CSV else _ndjson_rows(text)
    if not rows:
        raise malformed("has no rows")
    return rows


def iter_batches(rows: list[ImportRow], size: int) -> Iterator[list[ImportRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
