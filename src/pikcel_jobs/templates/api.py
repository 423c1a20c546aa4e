"""JSON routes for job templates: `GET/POST /api/templates`,
`GET/PUT/DELETE /api/templates/{id}`. Another shop's template is a 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pikcel_jobs.jobs.api import ok
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.templates import service
from pikcel_jobs.templates.models import JobTemplate
from pikcel_jobs.templates.schemas import TemplateCreate, TemplateOut, TemplateUpdate
from pikcel_jobs.web.deps import Db

router = APIRouter(prefix="/api/templates", tags=["templates"])


def template_json(template: JobTemplate) -> dict[str, Any]:
    return TemplateOut.model_validate(template).model_dump(by_alias=True, mode="json")


@router.get("")
async def list_templates(shop: ShopDomain, db: Db) -> JSONResponse:
    async with db(read_only=True) as session:
        templates = await service.list_templates(session, shop=shop)
    return ok(templates=[template_json(t) for t in templates])


@router.post("", status_code=201)
async def create_template(body: TemplateCreate, shop: ShopDomain, db: Db) -> JSONResponse:
    async with db() as session:
        template = await service.create_template(session, shop=shop, data=body)
    return ok(201, template=template_json(template))


@router.get("/{template_id}")
async def get_template(template_id: str, shop: ShopDomain, db: Db) -> JSONResponse:
    async with db(read_only=True) as session:
        template = await service.get_template(session, shop=shop, template_id=template_id)
    return ok(template=template_json(template))


@router.put("/{template_id}")
async def update_template(
    template_id: str, body: TemplateUpdate, shop: ShopDomain, db: Db
) -> JSONResponse:
    """The fields given replace the template's; the others stay."""
    async with db() as session:
        template = await service.update_template(
            session, shop=shop, template_id=template_id, data=body
        )
    return ok(template=template_json(template))


@router.delete("/{template_id}")
async def delete_template(template_id: str, shop: ShopDomain, db: Db) -> JSONResponse:
    async with db() as session:
        await service.delete_template(session, shop=shop, template_id=template_id)
    return ok(deleted=template_id)
