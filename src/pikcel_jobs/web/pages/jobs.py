"""`/app/jobs` (list with filters, keyset pagination, bulk actions), `/app/jobs/{id}`
(the live job tracker) and the no-JavaScript forms for one job's actions."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from starlette.datastructures import QueryParams

from pikcel_jobs.batches.models import JobBatch
from pikcel_jobs.core.errors import InvalidInput, NotFound
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.params import FILTER_KEYS, PAGING_KEYS, filter_from_query, paging_from_query
from pikcel_jobs.jobs.schemas import JobFilter
from pikcel_jobs.jobs.states import ACTIVE, RETRYABLE, TERMINAL, JobStatus, PushStatus
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web import csrf
from pikcel_jobs.web.deps import AppRuntime, Db
from pikcel_jobs.web.pages import new_job
from pikcel_jobs.web.pages.common import (
    PageRoute,
    call_api,
    has_route,
    latest_event_id,
    query_with,
    redirect,
    render,
    tools_or_none,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)
router.include_router(new_job.routes)  # /app/jobs/new before /app/jobs/{job_id}
log = logging.getLogger("pikcel_jobs.web.pages")

PAGE_SIZES = (25, 50, 100)
# Query parameters Shopify admin adds when it opens an embedded app (the session cookie
# is set from id_token on the way; the list's URL keeps only its own keys).
SHOPIFY_LAUNCH_KEYS = frozenset(
    {"id_token", "shop", "host", "embedded", "hmac", "locale", "session", "timestamp", "prefetch"}
)
STATUSES = [s.value for s in JobStatus]
BULK_ACTIONS = {
    "retry": ("Retry", "retried", RETRYABLE),
    "sync": ("Sync", "synced", frozenset({JobStatus.PENDING, JobStatus.PROCESSING})),
    "cancel": ("Cancel", "cancelled", ACTIVE),
}
# ---- Query string: the same keys as GET /api/jobs ----


def canonical_query(params: QueryParams) -> str | None:
    """The clean form of a filter form's submission, or None when it already is clean:
    empty fields dropped, `metaKey`+`metaValue` turned into `meta.<key>=<value>`, a
    date-only `to` made to include that whole day."""
    pairs: list[tuple[str, str]] = []
    changed = False
    meta_key = (params.get("metaKey") or "").strip()
    meta_value = (params.get("metaValue") or "").strip()
    for key, value in params.multi_items():
        if key in ("metaKey", "metaValue") or key in SHOPIFY_LAUNCH_KEYS or value.strip() == "":
            changed = True
            continue
        if key == "to" and _is_date(value):
            value, changed = f"{value}T23:59:59", True
        pairs.append((key, value.strip()))
    if meta_key and meta_value:
        pairs = [(k, v) for k, v in pairs if k != f"meta.{meta_key}"]
        pairs.append((f"meta.{meta_key}", meta_value))
    if not changed:
        return None
    return urlencode(pairs)


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def filter_query(params: QueryParams) -> str:
    """Only the filter part of a query string (no cursor, limit, offset)."""
    return query_with(
        QueryParams([(k, v) for k, v in params.multi_items() if k not in PAGING_KEYS])
    )


@dataclass
class FilterView:
    """What the filter form shows, read back from the query string."""

    statuses: list[str]
    tool_id: str
    product_id: str
    batch_id: str
    date_from: str
    date_to: str
    q: str
    meta: list[tuple[str, str]]
    limit: int
    active_count: int


def filter_view(params: QueryParams, limit: int) -> FilterView:
    statuses = [s for v in params.getlist("status") for s in v.split(",") if s]
    meta = [(k[5:], v) for k, v in params.multi_items() if k.startswith("meta.")]
    view = FilterView(
        statuses=statuses,
        tool_id=params.get("toolId", ""),
        product_id=params.get("productId", ""),
        batch_id=params.get("batchId", ""),
        date_from=params.get("from", "")[:10],
        date_to=params.get("to", "")[:10],
        q=params.get("q", ""),
        meta=meta,
        limit=limit,
        active_count=0,
    )
    view.active_count = sum(1 for k in params if k in FILTER_KEYS or k.startswith("meta."))
    return view


def eligible_counts(by_status: dict[str, int]) -> dict[str, int]:
    """For each bulk action, how many of the counted jobs it can change."""
    return {
        action: sum(by_status.get(status.value, 0) for status in statuses)
        for action, (_, _, statuses) in BULK_ACTIONS.items()
    }


def filter_json(job_filter: JobFilter) -> str:
    """The filter as POST /api/jobs/bulk takes it (camelCase, only what is set)."""
    data = job_filter.model_dump(by_alias=True, mode="json", exclude_defaults=True)
    return json.dumps(data, separators=(",", ":"))


async def recent_batches(session: Any, shop: str) -> list[JobBatch]:
    stmt = (
        select(JobBatch).where(JobBatch.shop == shop).order_by(JobBatch.created_at.desc()).limit(30)
    )
    return list((await session.execute(stmt)).scalars().all())


@router.get("/app/jobs", response_class=HTMLResponse)
async def jobs_list(request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime) -> Response:
    params = request.query_params
    clean = canonical_query(params)
    if clean is not None:
        return RedirectResponse(f"/app/jobs?{clean}" if clean else "/app/jobs", status_code=302)
    error: str | None = None
    try:
        job_filter = filter_from_query(params)
        paging = paging_from_query(params)
    except InvalidInput as exc:
        error = exc.message
        job_filter, paging = None, None
    tools_task = asyncio.create_task(tools_or_none(runtime))
    jobs: list[Job] = []
    next_cursor: str | None = None
    total = 0
    eligible = {action: 0 for action in BULK_ACTIONS}
    try:
        async with db(read_only=True) as session:
            if job_filter is not None and paging is not None:
                try:
                    page = await service.list_jobs(
                        session, shop=shop, job_filter=job_filter, cursor=paging.cursor,
                        limit=paging.limit, offset=paging.offset, with_total=False,
                    )  # fmt: skip
                    stats = await service.job_stats(session, shop=shop, job_filter=job_filter)
                    jobs, next_cursor, total = list(page.jobs), page.next_cursor, stats.total
                    eligible = eligible_counts(stats.by_status)
                except InvalidInput as exc:
                    error = exc.message
            batches = await recent_batches(session, shop)
            last_id = await latest_event_id(session, shop=shop)
    except BaseException:
        tools_task.cancel()
        raise
    tools = await tools_task
    limit = paging.limit if paging else 25
    return render(
        request, "jobs/list.html",
        {
            "jobs": jobs, "total": total, "next_cursor": next_cursor, "error": error,
            "params": params, "fv": filter_view(params, limit), "statuses": STATUSES,
            "page_sizes": PAGE_SIZES, "tools": tools, "batches": batches,
            "is_first_page": not params.get("cursor") and not params.get("offset"),
            "filter_qs": filter_query(params),
            "filter_json": filter_json(job_filter) if job_filter else "{}",
            "bulk_actions": BULK_ACTIONS, "eligible": eligible,
        },
        shop=shop, active="jobs", live=True, last_event_id=last_id,
        status_code=400 if error else 200,
    )  # fmt: skip


# ---- One job ----


# Shopify buttons: (action, label, tone, push statuses in which it applies)
PUSH_BUTTONS = [
    ("push", "Push to Shopify", "primary", "none failed reverted rejected"),
    ("replace", "Replace product image", "", "none failed reverted rejected"),
    ("approve", "Approve", "primary", "awaiting_review"),
    ("reject", "Reject", "critical", "awaiting_review"),
    ("revert", "Revert push", "", "pushed"),
]


def push_buttons(job: Job, request: Request) -> list[tuple[str, str, str, str]]:
    """The Shopify buttons this job can ever show: their route exists, the job belongs
    to a product (and, to replace, to one of its images). The live module shows each
    one only in its push statuses."""
    out = []
    for action, label, tone, when in PUSH_BUTTONS:
        if not job.product_id or (action == "replace" and not job.image_id):
            continue
        if has_route(request, JOB_ACTIONS[action][0], "POST"):
            out.append((action, label, tone, when))
    return out


def available_actions(job: Job) -> dict[str, bool]:
    """Which buttons the tracker shows for this job's state right now."""
    status = JobStatus(job.status)
    push = PushStatus(job.push_status).value
    completed = status == JobStatus.COMPLETED and bool(job.output_key or job.output_image_url)
    shown = {
        "retry": status in RETRYABLE,
        "cancel": status not in TERMINAL,
        "sync": status not in TERMINAL and job.pikcel_job_id is not None,
        "download": completed,
    }
    for action, _, _, when in PUSH_BUTTONS:
        shown[action] = completed and push in when.split()
    return shown


def event_title(kind: str, data: dict[str, Any], status: str) -> str:
    if kind == "created":
        return "Job created" + (" (scheduled)" if data.get("to") == "scheduled" else "")
    if kind == "status":
        to = data.get("to", status)
        if data.get("attempt"):
            return f"Retried: attempt {data['attempt']}"
        return f"Status: {data.get('from', '?')} → {to}"
    if kind == "progress":
        return f"Progress {data.get('progress', '')}%".strip()
    if kind == "dispatched":
        return "Sent to PikcelAI"
    if kind == "output":
        return "Output image stored"
    if kind == "push":
        return f"Shopify: {str(data.get('to', '')).replace('_', ' ')}"
    return kind.replace("_", " ").capitalize()


@router.get("/app/jobs/{job_id}", response_class=HTMLResponse)
async def job_detail(request: Request, job_id: str, shop: ShopDomain, db: Db) -> Response:
    async with db(read_only=True) as session:
        detail = await service.get_job_detail(session, shop=shop, job_id=job_id)
        last_id = await latest_event_id(session, shop=shop)
    job = detail.job
    duration_ms = job.processing_time_ms
    if duration_ms is None and job.started_at and job.completed_at:
        duration_ms = int((job.completed_at - job.started_at).total_seconds() * 1000)
    events = [
        {"title": event_title(e.kind, e.data or {}, e.status), "at": e.created_at, "e": e}
        for e in detail.events
        if e.kind != "progress"
    ]
    return render(
        request, "jobs/detail.html",
        {
            "job": job, "attempts": detail.attempts, "events": events,
            "actions": available_actions(job), "duration_ms": duration_ms,
            "push_buttons": push_buttons(job, request),
            "job_actions": JOB_ACTIONS,
            "parameters_json": json.dumps(job.parameters or {}, indent=2, sort_keys=True),
            "metadata_json": json.dumps(job.meta or {}, indent=2, sort_keys=True),
        },
        shop=shop, active="jobs", live=True, last_event_id=last_id,
    )  # fmt: skip


# ---- One job's actions without JavaScript (the JS module calls the JSON API) ----

# page action → (JSON route, extra body, message when done)
JOB_ACTIONS: dict[str, tuple[str, dict[str, str], str]] = {
    "retry": ("/api/jobs/retry", {}, "Retrying: a new attempt is queued."),
    "cancel": ("/api/jobs/cancel", {}, "The job was cancelled."),
    "sync": ("/api/jobs/sync", {}, "Synced with PikcelAI."),
    "push": ("/api/jobs/push-to-shopify", {}, "Pushing the image to Shopify…"),
    "replace": ("/api/jobs/push-to-shopify", {"mode": "replace"}, "Replacing the product image…"),
    "revert": ("/api/jobs/revert", {}, "Reverting the Shopify image…"),
    "approve": ("/api/jobs/approve", {}, "Approved: the image will be pushed to Shopify."),
    "reject": ("/api/jobs/reject", {}, "Rejected: the image will not be pushed."),
}


def back_to(request: Request, job_id: str) -> str:
    """Back where the form was (the list or the job), never to another site."""
    ref = request.headers.get("referer", "")
    host = request.headers.get("host", "")
    prefix = f"{request.url.scheme}://{host}"
    if host and ref.startswith(prefix + "/app/jobs"):
        return ref[len(prefix) :]
    return f"/app/jobs/{job_id}"


@router.post("/app/jobs/{job_id}/{action}")
async def job_action(request: Request, job_id: str, action: str, shop: ShopDomain) -> Response:
    """The form behind each tracker button: the same JSON route the JS module calls,
    run in-process with the caller's credentials, then back with a message."""
    if action not in JOB_ACTIONS:
        raise NotFound("there is no such action on a job")
    await csrf.check_csrf(request, shop)
    path, extra, done = JOB_ACTIONS[action]
    answer = await call_api(request, "POST", path, json={"jobId": job_id, **extra})
    back = back_to(request, job_id)
    if answer is None:
        return redirect(request, back, flash="That action is not available yet.", level="warning")
    status, body = answer
    if status == 404 and body.get("error", {}).get("code") == "NOT_FOUND":
        raise NotFound(body["error"].get("message", "job not found"))
    if status >= 400:
        message = body.get("error", {}).get("message") or "That didn't work; try again."
        return redirect(request, back, flash=message[:1].upper() + message[1:], level="critical")
    return redirect(request, back, flash=done)


# ---- Bulk actions: selected rows, or every job matching the filter ----


@dataclass
class BulkRequest:
    action: str
    job_ids: list[str]
    job_filter: JobFilter | None  # set when the scope is "all matching the filter"
    filter_qs: str
    back: str


async def read_bulk(request: Request) -> BulkRequest:
    form = await request.form()
    action = str(form.get("action") or "")
    if action not in BULK_ACTIONS:
        raise InvalidInput("choose what to do with the jobs: retry, sync or cancel")
    filter_qs = str(form.get("filter") or "")
    back = str(form.get("back") or "/app/jobs")
    if not back.startswith("/app/jobs") or "//" in back:
        back = "/app/jobs"
    if form.get("scope") == "filter":
        return BulkRequest(action, [], filter_from_query(QueryParams(filter_qs)), filter_qs, back)
    ids = [v for v in form.getlist("jobIds") if isinstance(v, str) and 0 < len(v) <= 64]
    if not ids:
        raise InvalidInput("select at least one job, or all jobs matching the filter")
    if len(ids) > 1000:
        raise InvalidInput("select at most 1,000 jobs, or use all jobs matching the filter")
    return BulkRequest(action, list(dict.fromkeys(ids)), None, filter_qs, back)


async def bulk_counts(db: Db, shop: str, bulk: BulkRequest) -> tuple[int, int]:
    """(jobs selected, jobs the action can change)."""
    async with db(read_only=True) as session:
        if bulk.job_filter is not None:
            stats = await service.job_stats(session, shop=shop, job_filter=bulk.job_filter)
            return stats.total, eligible_counts(stats.by_status)[bulk.action]
        rows = (
            await session.execute(
                select(Job.status).where(Job.shop == shop, Job.id.in_(bulk.job_ids))
            )
        ).scalars()
        statuses = list(rows)
    allowed = {s.value for s in BULK_ACTIONS[bulk.action][2]}
    return len(statuses), sum(1 for s in statuses if s in allowed)


@router.post("/app/jobs/bulk", response_class=HTMLResponse)
async def bulk(request: Request, shop: ShopDomain, db: Db) -> Response:
    """Without JavaScript: a confirmation page first, then the bulk operation."""
    await csrf.check_csrf(request, shop)
    form = await request.form()
    try:
        bulk_request = await read_bulk(request)
    except InvalidInput as exc:
        back = str(form.get("back") or "/app/jobs")
        back = back if back.startswith("/app/jobs") and "//" not in back else "/app/jobs"
        return redirect(request, back, flash=exc.message.capitalize() + ".", level="warning")
    selected, eligible = await bulk_counts(db, shop, bulk_request)
    label, done, _ = BULK_ACTIONS[bulk_request.action]
    if form.get("confirm") != "1":
        return render(
            request, "jobs/bulk_confirm.html",
            {"bulk": bulk_request, "selected": selected, "eligible": eligible, "label": label,
             "done": done},
            shop=shop, active="jobs",
        )  # fmt: skip
    body: dict[str, Any] = {"action": bulk_request.action}
    if bulk_request.job_filter is not None:
        body["filter"] = json.loads(filter_json(bulk_request.job_filter))
    else:
        body["jobIds"] = bulk_request.job_ids
    answer = await call_api(request, "POST", "/api/jobs/bulk", json=body)
    if answer is None:
        return redirect(
            request, bulk_request.back, level="warning",
            flash="Bulk actions are not available yet on this server; act on jobs one by one.",
        )  # fmt: skip
    status, data = answer
    if status >= 400:
        message = (data.get("error") or {}).get("message") or "The bulk action failed."
        return redirect(request, bulk_request.back, flash=message, level="critical")
    operation = data.get("operation") or {}
    total = operation.get("total", eligible)
    return redirect(
        request, bulk_request.back,
        flash=f"{label} started for {total} job{'s' if total != 1 else ''}; "
        "the list updates as they change.",
    )  # fmt: skip
