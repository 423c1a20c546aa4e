"""Exports of the jobs list: the same filter as the list (`jobs.repository.filtered`),
read in keyset batches of a few thousand rows, each in its own short read transaction,
and turned into CSV or XLSX as they come, so memory stays flat whatever the row count.

CSV: UTF-8 with a BOM (Excel then reads accents right), RFC 4180 quoting, CRLF.
XLSX: xlsxwriter in `constant_memory` mode (one row in memory, strings inline) into a
temporary file, which is then streamed and deleted. A sheet holds at most 1,048,576
rows; beyond that the export continues on "Jobs (2)", "Jobs (3)", ...

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
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import xlsxwriter
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.exports import repository
from pikcel_jobs.jobs.schemas import JobFilter

log = logging.getLogger("pikcel_jobs.exports")

BATCH_SIZE = 2000
FILE_CHUNK = 256 * 1024
XLSX_MAX_ROWS = 1_048_576  # per sheet, header included
XLSX_MAX_TEXT = 32_000  # Excel's cell limit is 32,767 UTF-16 units
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

OpenSession = Callable[[], AbstractAsyncContextManager[AsyncSession]]


@dataclass(frozen=True)
class Column:
    header: str
    kind: str  # text | int | datetime | json
    width: int


# Header names are the job's camelCase API fields (DESIGN §5), in repository order.
COLUMNS = (
    Column("id", "text", 38),
    Column("createdAt", "datetime", 20),
    Column("completedAt", "datetime", 20),
    Column("status", "text", 11),
    Column("priority", "text", 9),
    Column("toolId", "text", 20),
    Column("toolName", "text", 22),
    Column("productId", "text", 30),
    Column("productTitle", "text", 30),
    Column("creditsUsed", "int", 11),
    Column("processingTimeMs", "int", 17),
    Column("errorMessage", "text", 40),
    Column("outputImageUrl", "text", 40),
    Column("pikcelJobId", "text", 28),
    Column("attempt", "int", 8),
    Column("batchId", "text", 38),
    Column("metadata", "json", 40),
)
assert len(COLUMNS) == len(repository.EXPORT_COLUMNS)
HEADERS = [c.header for c in COLUMNS]


def neutralise(text: str) -> str:
    """Keep a spreadsheet from reading a cell as a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata_text(value: Any) -> str:
    if not value:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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


# ---- CSV ----


def csv_cells(row: Sequence[Any]) -> list[object]:
    cells: list[object] = []
    for column, value in zip(COLUMNS, row, strict=True):
        if value is None:
            cells.append("")
        elif column.kind == "datetime":
            cells.append(iso(value))
        elif column.kind == "int":
            cells.append(value)
        elif column.kind == "json":
            cells.append(neutralise(metadata_text(value)))
        else:
            cells.append(neutralise(str(value)))
    return cells


async def csv_stream(
    open_session: OpenSession, *, shop: str, job_filter: JobFilter, batch_size: int = BATCH_SIZE
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    yield b"\xef\xbb\xbf" + buffer.getvalue().encode()
    async for rows in batches(
        open_session, shop=shop, job_filter=job_filter, batch_size=batch_size
    ):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(csv_cells(row) for row in rows)
        yield buffer.getvalue().encode()


# ---- XLSX ----


class XlsxWriter:
    """One workbook in a temporary file; rows are appended batch by batch (in a worker
    thread: xlsxwriter is CPU work and must not hold up the event loop)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.book = xlsxwriter.Workbook(
            path,
            {
                "constant_memory": True,
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        self.header_format = self.book.add_format({"bold": True, "bg_color": "#F1F1F1"})
        self.date_format = self.book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self.sheets = 0
        self.row = 0
        self._new_sheet()

    def _new_sheet(self) -> None:
        self.sheets += 1
        self.sheet = self.book.add_worksheet(
            "Jobs" if self.sheets == 1 else f"Jobs ({self.sheets})"
        )
        for index, column in enumerate(COLUMNS):
            self.sheet.set_column(index, index, column.width)
        self.sheet.write_row(0, 0, HEADERS, self.header_format)
        self.sheet.freeze_panes(1, 0)
        self.row = 1

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        for values in rows:
            if self.row >= XLSX_MAX_ROWS:
                self._new_sheet()
            sheet, r = self.sheet, self.row
            for c, (column, value) in enumerate(zip(COLUMNS, values, strict=True)):
                if value is None:
                    continue
                kind = column.kind
                if kind == "int":
                    sheet.write_number(r, c, value)
                elif kind == "datetime":
                    naive = value.astimezone(UTC).replace(tzinfo=None)
                    sheet.write_datetime(r, c, naive, self.date_format)
                else:
                    text = metadata_text(value) if kind == "json" else str(value)
                    if text:
                        sheet.write_string(r, c, neutralise(text)[:XLSX_MAX_TEXT])
            self.row += 1

    def close(self) -> None:
        self.book.close()


async def xlsx_stream(
    open_session: OpenSession, *, shop: str, job_filter: JobFilter, batch_size: int = BATCH_SIZE
) -> AsyncIterator[bytes]:
    fd, path = tempfile.mkstemp(prefix="pikcel-export-", suffix=".xlsx")
    os.close(fd)
    try:
        writer = XlsxWriter(path)
        async for rows in batches(
            open_session, shop=shop, job_filter=job_filter, batch_size=batch_size
        ):
            await anyio.to_thread.run_sync(writer.write_rows, rows)
        await anyio.to_thread.run_sync(writer.close)
        with open(path, "rb") as file:  # noqa: ASYNC230 (chunks are read in a thread)
            while chunk := await anyio.to_thread.run_sync(file.read, FILE_CHUNK):
                yield chunk
    finally:
        try:
            os.unlink(path)
        except OSError:
            log.warning("could not remove the export file %s", path)
