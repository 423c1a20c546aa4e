"""`/app/jobs/new`: pick a tool and images (URLs, or product images from the shop),
parameters, priority, optional template and schedule; see the credit estimate; create
one job, or a batch when several images are picked.

Its router is named `routes` (not `router`): `jobs.py` includes it ahead of
`/app/jobs/{job_id}` so "new" is never read as a job id."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import select

from pikcel_jobs.batches import service as batches
from pikcel_jobs.batches.schemas import MAX_BATCH_IMAGES, BatchCreate, BatchImage
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.schemas import JobCreate
from pikcel_jobs.net.fetch import UnsafeURL, check_input_urls
from pikcel_jobs.pikcel.schemas import Tool
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.shops.models import Shop
from pikcel_jobs.templates.models import JobTemplate
from pikcel_jobs.web import csrf
from pikcel_jobs.web.deps import AppRuntime, Db
from pikcel_jobs.web.errors import describe_validation
from pikcel_jobs.web.pages.common import PageRoute, call_api, redirect, render, tools_or_none
from pikcel_jobs.web.ratelimit import rate_limit

routes = APIRouter(route_class=PageRoute, include_in_schema=False)

PRIORITIES = ("low", "normal", "high", "urgent")
MAX_URLS = 100


@dataclass
class NewJobForm:
    tool_id: str = ""
    image_urls: str = ""
    picked: list[str] = field(default_factory=list)  # JSON of picked product images
    product_id: str = ""
    product_title: str = ""
    parameters: str = "{}"
    priority: str = "normal"
    template_id: str = ""
    scheduled_for: str = ""
    tz_offset: str = ""
    batch_name: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def urls(self) -> list[str]:
        return [u.strip() for u in self.image_urls.replace(",", "\n").splitlines() if u.strip()]

    def picked_images(self) -> list[dict[str, str]]:
        out = []
        for raw in self.picked:
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            if isinstance(data, dict) and isinstance(data.get("url"), str):
                out.append({k: str(v) for k, v in data.items() if v is not None})
        return out

    def image_count(self) -> int:
        return len(self.urls()) + len(self.picked_images())


def tool_by_id(tools: list[Tool] | None, tool_id: str) -> Tool | None:
    return next((t for t in tools or [] if t.id == tool_id), None)


async def fetch_products(request: Request, query: str, cursor: str) -> dict[str, Any] | None:
    """`GET /api/products` with the caller's credentials; None when that route is not
    there yet (the page then offers image URLs only)."""
    params = {k: v for k, v in (("query", query), ("cursor", cursor)) if v}
    answer = await call_api(request, "GET", "/api/products", params=params)
    if answer is None:
        return None
    status, data = answer
    if status != 200:
        message = str((data.get("error") or {}).get("message") or "try again in a moment")
        return {"error": f"Your products can't be shown: {message}. Paste image URLs instead."}
    return data


async def shop_defaults(db: Db, shop: str) -> dict[str, Any]:
    async with db(read_only=True) as session:
        row = await session.get(Shop, shop)
        templates = (
            (
                await session.execute(
                    select(JobTemplate).where(JobTemplate.shop == shop).order_by(JobTemplate.name)
                )
            )
            .scalars()
            .all()
        )
    return {"settings": dict(row.settings or {}) if row else {}, "templates": list(templates)}


async def render_form(
    request: Request,
    *,
    shop: str,
    form: NewJobForm,
    tools: list[Tool] | None,
    templates: list[JobTemplate],
    status_code: int = 200,
    preview: bool = False,
) -> HTMLResponse:
    params = request.query_params
    products = await fetch_products(
        request, params.get("productQuery", ""), params.get("productCursor", "")
    )
    tool = tool_by_id(tools, form.tool_id)
    count = form.image_count()
    estimate = tool.credits_required * max(count, 1) if tool else None
    return render(
        request, "jobs/new.html",
        {
            "form": form, "tools": tools, "tool": tool, "templates": templates,
            "priorities": PRIORITIES, "products": products, "image_count": count,
            "estimate": estimate, "preview": preview,
            "picked_urls": {p["url"] for p in form.picked_images()},
            "product_query": params.get("productQuery", ""),
            "tool_defaults": {
                t.id: json.dumps(t.default_parameters or {}, indent=2) for t in tools or []
            },
        },
        shop=shop, active="new", status_code=status_code,
    )  # fmt: skip


@routes.get("/app/jobs/new", response_class=HTMLResponse)
async def new_job_form(request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime) -> Response:
    tools = await tools_or_none(runtime)
    defaults = await shop_defaults(db, shop)
    settings = defaults["settings"]
    params = request.query_params
    form = NewJobForm(
        tool_id=params.get("toolId") or str(settings.get("defaultToolId") or ""),
        priority=params.get("priority") or str(settings.get("defaultPriority") or "normal"),
        image_urls=params.get("imageUrl", ""),
        product_id=params.get("productId", ""),
        template_id=params.get("templateId", ""),
    )
    template = next((t for t in defaults["templates"] if t.id == form.template_id), None)
    if template is not None:
        form.tool_id, form.priority = template.tool_id, template.priority
        form.parameters = json.dumps(template.parameters or {}, indent=2)
    else:
        tool = tool_by_id(tools, form.tool_id)
        if tool and tool.default_parameters:
            form.parameters = json.dumps(tool.default_parameters, indent=2)
    if form.priority not in PRIORITIES:
        form.priority = "normal"
    return await render_form(
        request, shop=shop, form=form, tools=tools, templates=defaults["templates"]
    )


def read_form(data: Any) -> NewJobForm:
    def one(name: str) -> str:
        value = data.get(name)
        return value.strip() if isinstance(value, str) else ""

    return NewJobForm(
        tool_id=one("toolId"),
        image_urls=one("imageUrls"),
        picked=[v for v in data.getlist("productImage") if isinstance(v, str)][:MAX_BATCH_IMAGES],
        product_id=one("productId"),
        product_title=one("productTitle"),
        parameters=one("parameters") or "{}",
        priority=one("priority") or "normal",
        template_id=one("templateId"),
        scheduled_for=one("scheduledFor"),
        tz_offset=one("tzOffset"),
        batch_name=one("batchName"),
    )


def parse_parameters(form: NewJobForm) -> dict[str, Any] | None:
    try:
        value = json.loads(form.parameters)
    except json.JSONDecodeError as exc:
        form.errors["parameters"] = (
            f"Parameters are not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            'Write an object such as {"quality": "high"}, or {} for none.'
        )
        return None
    if not isinstance(value, dict):
        form.errors["parameters"] = 'Parameters must be a JSON object, such as {"quality": "high"}.'
        return None
    return value


def parse_schedule(form: NewJobForm) -> datetime | None:
    if not form.scheduled_for:
        return None
    try:
        local = datetime.fromisoformat(form.scheduled_for)
    except ValueError:
        form.errors["scheduledFor"] = "Give the schedule time as a date and time."
        return None
    if local.tzinfo is None:
        try:
            offset = int(form.tz_offset or 0)  # JS getTimezoneOffset(): minutes behind UTC
        except ValueError:
            offset = 0
        local = (local + timedelta(minutes=offset)).replace(tzinfo=UTC)
    if local < datetime.now(UTC) - timedelta(minutes=1):
        form.errors["scheduledFor"] = (
            "The schedule time is in the past; leave it empty to start now."
        )
        return None
    return local


@routes.post("/app/jobs/new", response_class=HTMLResponse, dependencies=[rate_limit("create")])
async def create_job(request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime) -> Response:
    await csrf.check_csrf(request, shop)
    data = await request.form()
    form = read_form(data)
    tools = await tools_or_none(runtime)
    defaults = await shop_defaults(db, shop)
    tool = tool_by_id(tools, form.tool_id)
    if not form.tool_id:
        form.errors["toolId"] = "Choose a tool."
    elif tools is not None and tool is None:
        form.errors["toolId"] = f"PikcelAI has no tool '{form.tool_id}'. Choose one from the list."
    elif tool is not None and not tool.is_active:
        form.errors["toolId"] = f"{tool.name} is not available right now. Choose another tool."
    if form.priority not in PRIORITIES:
        form.errors["priority"] = "Choose a priority from the list."
    urls, picked = form.urls(), form.picked_images()
    if len(urls) > MAX_URLS:
        form.errors["imageUrls"] = f"Paste at most {MAX_URLS} image URLs at once."
    if not urls and not picked:
        form.errors["imageUrls"] = "Add an image: paste its URL, or pick product images below."
    parameters = parse_parameters(form)
    scheduled = parse_schedule(form)
    template_id = form.template_id or None
    images: list[BatchImage] = []
    if not form.errors:
        try:
            images = [
                BatchImage(input_image_url=u, product_id=form.product_id or None) for u in urls
            ] + [
                BatchImage(
                    input_image_url=p["url"],
                    product_id=p.get("productId"),
                    product_title=p.get("productTitle"),
                    image_id=p.get("imageId"),
                )
                for p in picked
            ]
        except ValidationError as exc:
            form.errors["imageUrls"] = "An image is not usable: " + describe_validation(
                list(exc.errors())
            ).replace("input_image_url", "URL").replace("inputImageUrl", "URL")
    if images and not form.errors:
        try:
            await check_input_urls([str(i.input_image_url) for i in images], runtime.fetch_policy)
        except UnsafeURL as exc:
            form.errors["imageUrls"] = f"An image address can't be used: {exc}."
    if form.errors or "preview" in data:
        return await render_form(
            request, shop=shop, form=form, tools=tools, templates=defaults["templates"],
            status_code=400 if form.errors else 200, preview="preview" in data,
        )  # fmt: skip
    tool_name = tool.name if tool else None
    async with db() as session:
        if len(images) == 1:
            image = images[0]
            job = await service.create_job(
                session, shop=shop, tool_name=tool_name,
                input_image_url=str(image.input_image_url),
                data=JobCreate(
                    tool_id=form.tool_id, input_image_url=image.input_image_url,
                    product_id=image.product_id, product_title=image.product_title or None,
                    image_id=image.image_id, parameters=parameters or {},
                    priority=form.priority,
                    template_id=template_id, scheduled_for=scheduled,
                    metadata={"source": "new-job-page"},
                ),
            )  # fmt: skip
            target, message = f"/app/jobs/{job.id}", "Job created. It starts in a moment."
        else:
            batch, jobs = await batches.create_batch(
                session, shop=shop, tool_name=tool_name,
                data=BatchCreate(
                    name=form.batch_name or None, tool_id=form.tool_id, images=images,
                    parameters=parameters or {}, priority=form.priority,
                    template_id=template_id, scheduled_for=scheduled,
                    metadata={"source": "new-job-page"},
                ),
            )  # fmt: skip
            target = f"/app/jobs?batchId={batch.id}"
            message = f"{len(jobs)} jobs created in one batch."
    runtime.nudge()
    if scheduled is not None:
        message += f" Scheduled for {scheduled:%Y-%m-%d %H:%M} UTC."
    return redirect(request, target, flash=message)
