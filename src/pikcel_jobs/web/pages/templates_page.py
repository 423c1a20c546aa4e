"""`/app/templates`: saved job configurations — list, create, edit, delete, and "apply
to products" (a link to the new-job page with the template picked).

Forms post back here (HTML has no PUT/DELETE) with the CSRF token of `web/csrf.py`;
the work is done by `templates.service`, the same code as the JSON API."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from pikcel_jobs.core.errors import Conflict, InvalidInput
from pikcel_jobs.pikcel.schemas import Tool
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.templates import service
from pikcel_jobs.templates.models import JobTemplate
from pikcel_jobs.templates.schemas import TemplateCreate, TemplateUpdate
from pikcel_jobs.web import csrf
from pikcel_jobs.web.deps import AppRuntime, Db
from pikcel_jobs.web.pages.common import PageRoute, redirect, render, tools_or_none

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PRIORITIES = ("low", "normal", "high", "urgent")
FIELDS = ("name", "description", "toolId", "parameters", "priority")


@dataclass
class TemplateForm:
    name: str = ""
    description: str = ""
    tool_id: str = ""
    parameters: str = "{}"
    priority: str = "normal"
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, template: JobTemplate) -> TemplateForm:
        return cls(
            name=template.name,
            description=template.description or "",
            tool_id=template.tool_id,
            parameters=json.dumps(template.parameters or {}, indent=2, ensure_ascii=False),
            priority=template.priority,
        )

    @classmethod
    async def posted(cls, request: Request) -> TemplateForm:
        form = await request.form()

        def one(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        return cls(
            name=one("name"),
            description=one("description"),
            tool_id=one("toolId"),
            parameters=one("parameters") or "{}",
            priority=one("priority") or "normal",
        )

    def payload(self) -> dict[str, Any] | None:
        """The API body, or None with `errors` filled in."""
        try:
            parameters = json.loads(self.parameters)
        except json.JSONDecodeError as exc:
            self.errors["parameters"] = f"This is not valid JSON ({exc.msg}, line {exc.lineno})."
            return None
        if not isinstance(parameters, dict):
            self.errors["parameters"] = 'Give a JSON object, such as {"format": "png"}.'
            return None
        return {
            "name": self.name,
            "description": self.description.strip() or None,
            "toolId": self.tool_id,
            "parameters": parameters,
            "priority": self.priority,
        }


def field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        name = loc[0] if loc and loc[0] in FIELDS else "form"
        message = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
        errors.setdefault(name, message[:1].upper() + message[1:] + ".")
    return errors


async def render_form(
    request: Request,
    *,
    shop: str,
    runtime: AppRuntime,
    form: TemplateForm,
    template: JobTemplate | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    tools: list[Tool] | None = await tools_or_none(runtime)
    return render(
        request, "templates_form.html",
        {"form": form, "template": template, "tools": tools, "priorities": PRIORITIES,
         "tool_ids": {t.id for t in tools or []}},
        shop=shop, active="templates", status_code=status_code,
    )  # fmt: skip


@router.get("/app/templates", response_class=HTMLResponse)
async def templates_list(
    request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> HTMLResponse:
    async with db(read_only=True) as session:
        templates = await service.list_templates(session, shop=shop)
    tools = await tools_or_none(runtime) if templates else None
    names = {t.id: t.name for t in tools or []}
    return render(
        request, "templates.html", {"templates": templates, "tool_names": names},
        shop=shop, active="templates",
    )  # fmt: skip


@router.get("/app/templates/new", response_class=HTMLResponse)
async def new_template_form(
    request: Request, shop: ShopDomain, runtime: AppRuntime
) -> HTMLResponse:
    params = request.query_params
    form = TemplateForm(tool_id=params.get("toolId", "")[:100])
    return await render_form(request, shop=shop, runtime=runtime, form=form)


@router.post("/app/templates")
async def create_template(
    request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> Response:
    await csrf.check_csrf(request, shop)
    form = await TemplateForm.posted(request)
    payload = form.payload()
    if payload is not None:
        try:
            data = TemplateCreate.model_validate(payload)
            async with db() as session:
                template = await service.create_template(session, shop=shop, data=data)
            return redirect(
                request, f"/app/templates#template-{template.id}",
                flash=f"Template “{template.name}” saved.",
            )  # fmt: skip
        except ValidationError as exc:
            form.errors.update(field_errors(exc))
        except Conflict as exc:
            form.errors["name"] = exc.message[:1].upper() + exc.message[1:] + "."
        except InvalidInput as exc:
            form.errors["form"] = exc.message
    return await render_form(request, shop=shop, runtime=runtime, form=form, status_code=400)


@router.get("/app/templates/{template_id}", response_class=HTMLResponse)
async def edit_template_form(
    template_id: str, request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> HTMLResponse:
    async with db(read_only=True) as session:
        template = await service.get_template(session, shop=shop, template_id=template_id)
    return await render_form(
        request, shop=shop, runtime=runtime, form=TemplateForm.of(template), template=template
    )


@router.post("/app/templates/{template_id}")
async def update_template(
    template_id: str, request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> Response:
    await csrf.check_csrf(request, shop)
    async with db(read_only=True) as session:
        template = await service.get_template(session, shop=shop, template_id=template_id)
    form = await TemplateForm.posted(request)
    payload = form.payload()
    if payload is not None:
        try:
            data = TemplateUpdate.model_validate(payload)
            async with db() as session:
                template = await service.update_template(
                    session, shop=shop, template_id=template_id, data=data
                )
            return redirect(
                request, f"/app/templates#template-{template.id}",
                flash=f"Template “{template.name}” updated.",
            )  # fmt: skip
        except ValidationError as exc:
            form.errors.update(field_errors(exc))
        except Conflict as exc:
            form.errors["name"] = exc.message[:1].upper() + exc.message[1:] + "."
        except InvalidInput as exc:
            form.errors["form"] = exc.message
    return await render_form(
        request, shop=shop, runtime=runtime, form=form, template=template, status_code=400
    )


@router.post("/app/templates/{template_id}/delete")
async def delete_template(template_id: str, request: Request, shop: ShopDomain, db: Db) -> Response:
    await csrf.check_csrf(request, shop)
    async with db() as session:
        template = await service.get_template(session, shop=shop, template_id=template_id)
        name = template.name
        await service.delete_template(session, shop=shop, template_id=template_id)
    return redirect(request, "/app/templates", flash=f"Template “{name}” deleted.")
