"""Exports of the jobs list: the same filter as the list (`jobs.repository.filtered`),
read in keyset batches of a few thousand rows, each in its own short read transaction,
and turned into CSV or XLSX as they come, so memory stays flat whatever the row count.

CSV: UTF-8 with a BOM (Excel then reads accents right), RFC 4180 quoting, CRLF.
XLSX: `exports.xlsx.StreamingXlsx` (rows streamed into a temporary file, package parts
from xlsxwriter), then the file is streamed and deleted. A sheet holds at most
1,048,576 rows; beyond that the export continues on "Jobs (2)", "Jobs (3)", ...

Spreadsheet formula injection: a text cell starting with `=`, `+`, `-`, `@`, tab or
carriage return is prefixed with `'`, so a product title like `=HYPERLINK(...)` shows
as text instead of running when the file is opened (OWASP "CSV injection"). XLSX cells
are written as strings (never formulas) and get the same prefix, so a file re-saved as
CSV from Excel stays safe too.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.exports import repository
from pikcel_jobs.exports.xlsx import StreamingXlsx, XlsxColumn
from pikcel_jobs.jobs.schemas import JobFilter

log = logging.getLogger("pikcel_jobs.exports")

BATCH_SIZE = 2000
FILE_CHUNK = 256 * 1024
FORMULA_START = frozenset("=+-@\t\r")

OpenSession = Callable[[], AbstractAsyncContextManager[AsyncSession]]

# Header names are the job's camelCase API fields (DESIGN §5), in repository order.
COLUMNS = (
    XlsxColumn("id", "plain", 38),
    XlsxColumn("createdAt", "datetime", 20),
    XlsxColumn("completedAt", "datetime", 20),
    XlsxColumn("status", "plain", 11),
    XlsxColumn("priority", "plain", 9),
    XlsxColumn("toolId", "text", 20),
    XlsxColumn("toolName", "text", 22),
    XlsxColumn("productId", "text", 30),
    XlsxColumn("productTitle", "text", 30),
    XlsxColumn("creditsUsed", "int", 11),
    XlsxColumn("processingTimeMs", "int", 17),
    XlsxColumn("errorMessage", "text", 40),
    XlsxColumn("outputImageUrl", "text", 40),
    XlsxColumn("pikcelJobId", "text", 28),
    XlsxColumn("attempt", "int", 8),
    XlsxColumn("batchId", "plain", 38),
    XlsxColumn("metadata", "text", 40),
)
assert len(COLUMNS) == len(repository.EXPORT_COLUMNS)
HEADERS = [c.header for c in COLUMNS]
METADATA = HEADERS.index("metadata")
TEXT = [i for i, c in enumerate(COLUMNS) if c.kind == "text" and i != METADATA]
# "plain" columns hold ids we generate and enums of the state machine: nothing in them
# to escape or guard.
DATES = [i for i, c in enumerate(COLUMNS) if c.kind == "datetime"]


def neutralise(text: str) -> str:
    """Keep a spreadsheet from reading a cell as a formula."""
    return "'" + text if text and text[0] in FORMULA_START else text


def iso(moment: datetime) -> str:
    """UTC to the second: 2026-10-01T17:00:00Z."""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="seconds")[:19] + "Z"


def metadata_text(raw: str | None) -> str:
    """The stored JSON text; empty for no metadata; real characters, not \\u escapes."""
    if not raw or raw in ("{}", "null"):
        return ""
    if "\\u" in raw:
        with suppress(ValueError):
            raw = json.dumps(json.loads(raw), ensure_ascii=False)
    return neutralise(raw)


def prepare(row: Sequence[Any], *, iso_dates: bool) -> list[Any]:
    """A row of the file: text guarded, metadata as JSON text, dates as text (CSV) or
    left as datetimes (XLSX writes date cells)."""
    cells = list(row)
    for i in TEXT:
        value = cells[i]
        if value and value[0] in FORMULA_START:
            cells[i] = "'" + value
    cells[METADATA] = metadata_text(cells[METADATA])
    if iso_dates:
        for i in DATES:
            value = cells[i]
            if value is not None:
                cells[i] = iso(value)
    return cells


def filename(extension: str, today: datetime | None = None) -> str:
    return f"pikcel-jobs-{(today or datetime.now(UTC)):%Y%m%d}.{extension}"


async def batches(
    open_session: OpenSession, *, shop: str, job_filter: JobFilter, batch_size: int = BATCH_SIZE
) -> AsyncIterator[Sequence[Any]]:
    """The filtered jobs, newest first, `batch_size` rows at a time. Jobs created while
    the export runs are newer than its first row and so are not included."""
    after: tuple[datetime, str] | None = None
    while True:
        async with open_session() as session:
            rows = await repository.next_batch(
                session, shop=shop, job_filter=job_filter, after=after, limit=batch_size
            )
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
        last: Sequence[Any] = rows[-1]
        after = (last[1], last[0])  # (created_at, id)


async def csv_stream(
    open_session: OpenSession, *, shop: str, job_filter: JobFilter, batch_size: int = BATCH_SIZE
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # None is written as an empty cell
    writer.writerow(HEADERS)
    yield b"\xef\xbb\xbf" + buffer.getvalue().encode()
    async for rows in batches(
        open_session, shop=shop, job_filter=job_filter, batch_size=batch_size
    ):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([prepare(row, iso_dates=True) for row in rows])
        yield buffer.getvalue().encode("utf-8", errors="replace")


def _write_xlsx_rows(book: StreamingXlsx, rows: Sequence[Sequence[Any]]) -> None:
    book.write_rows([prepare(row, iso_dates=False) for row in rows])


async def xlsx_stream(
    open_session: OpenSession, *, shop: str, job_filter: JobFilter, batch_size: int = BATCH_SIZE
) -> AsyncIterator[bytes]:
    """Rows go into a temporary file (in a worker thread: it is CPU work), then the file
    is streamed and removed, whether the download finishes or not."""
    fd, path = tempfile.mkstemp(prefix="pikcel-export-", suffix=".xlsx")
    os.close(fd)
    try:
        book = StreamingXlsx(path, COLUMNS)
        try:
            # The next batch is read while the writer thread turns this one into XML.
            send, receive = anyio.create_memory_object_stream[Sequence[Any]](1)

            async def read_batches() -> None:
                async with send:
                    async for rows in batches(
                        open_session, shop=shop, job_filter=job_filter, batch_size=batch_size
                    ):
                        await send.send(rows)

            async with anyio.create_task_group() as group, receive:
                group.start_soon(read_batches)
                async for rows in receive:
                    await anyio.to_thread.run_sync(_write_xlsx_rows, book, rows)
            await anyio.to_thread.run_sync(book.close)
        except BaseExceptionGroup as failed:  # the reader (or the writer) failed
            book.abort()
            if len(failed.exceptions) == 1:
                raise failed.exceptions[0] from None
            raise
        except BaseException:  # failed or cancelled (client gone): no await from here
            book.abort()
            raise
        with open(path, "rb") as file:  # noqa: ASYNC230 (chunks are read in a thread)
            while chunk := await anyio.to_thread.run_sync(file.read, FILE_CHUNK):
                yield chunk
    finally:
        try:
            os.unlink(path)
        except OSError:
            log.warning("could not remove the export file %s", path)
