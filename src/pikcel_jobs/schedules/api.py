"""JSON routes for recurring schedules."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pikcel_jobs.jobs.api import ok
from pikcel_jobs.schedules import service
from pikcel_jobs.schedules.models import Schedule
from pikcel_jobs.schedules.schemas import ScheduleCreate, ScheduleOut, ScheduleUpdate
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import Db

router = APIRouter(prefix="/api/schedules", tags=["schedules"])


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    return ScheduleOut.model_validate(schedule).model_dump(by_alias=True, mode="json")


@router.get("")
async def list_schedules(shop: ShopDomain, db: Db) -> JSONResponse:
    async with db(read_only=True) as session:
        rows = await service.list_schedules(session, shop=shop)
    return ok(schedules=[schedule_json(s) for s in rows])


@router.post("", status_code=201)
async def create_schedule(body: ScheduleCreate, shop: ShopDomain, db: Db) -> JSONResponse:
    """Run a template on the products a Shopify search finds, on a cron expression (UTC)."""
    async with db() as session:
        schedule = await service.create_schedule(session, shop=shop, data=body)
    return ok(201, schedule=schedule_json(schedule))


@router.patch("/{schedule_id}")
async def update_schedule(
    schedule_id: str, body: ScheduleUpdate, shop: ShopDomain, db: Db
) -> JSONResponse:
    async with db() as session:
        schedule = await service.update_schedule(
            session, shop=shop, schedule_id=schedule_id, data=body
        )
    return ok(schedule=schedule_json(schedule))


@router.delete("/{schedule_id}")
async def delete_schedule(schedule_id: str, shop: ShopDomain, db: Db) -> JSONResponse:
    async with db() as session:
        await service.delete_schedule(session, shop=shop, schedule_id=schedule_id)
    return ok()
