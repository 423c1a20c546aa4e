"""Form actions of the settings page's notification log: send a test, send again."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from pikcel_jobs.core.errors import AppError, NotFound
from pikcel_jobs.notifications import repository, service
from pikcel_jobs.notifications.models import DeliveryStatus
from pikcel_jobs.notifications.tasks import deliver_now
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web import csrf
from pikcel_jobs.web.deps import AppRuntime, Db
from pikcel_jobs.web.pages.common import PageRoute, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)
BACK = "/app/settings#deliveries"


@router.post("/app/settings/notifications/test")
async def send_test(request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime) -> Response:
    await csrf.check_csrf(request, shop)
    try:
        async with db() as session:
            created = await service.create_tests(
                session, shop=shop, channel=None, hold_seconds=runtime.settings.lease_seconds
            )
    except AppError as exc:
        if isinstance(exc, NotFound):
            raise
        return redirect(
            request, BACK, flash=exc.message[:1].upper() + exc.message[1:] + ".", level="warning"
        )
    ids = [d.id for d in created]
    await deliver_now(runtime.worker_context(f"web:{shop}"[:100]), ids)
    async with db(read_only=True) as session:
        rows = [await repository.get_for_shop(session, shop=shop, delivery_id=i) for i in ids]
    failed = [r for r in rows if r.status != DeliveryStatus.SENT]
    if not failed:
        return redirect(request, BACK, flash="Test sent to " + ", ".join(r.target for r in rows))
    problems = "; ".join(f"{r.target}: {r.last_error or 'not sent yet'}" for r in failed)
    return redirect(request, BACK, flash=f"The test did not go through — {problems}",
                    level="critical")  # fmt: skip


@router.post("/app/settings/deliveries/{delivery_id}/replay")
async def replay(
    request: Request, delivery_id: str, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> Response:
    await csrf.check_csrf(request, shop)
    try:
        async with db() as session:
            copy = await service.replay(session, shop=shop, delivery_id=delivery_id)
    except AppError as exc:
        if isinstance(exc, NotFound):
            raise
        return redirect(
            request, BACK, flash=exc.message[:1].upper() + exc.message[1:] + ".", level="warning"
        )
    runtime.nudge()
    return redirect(request, BACK, flash=f"Queued again for {copy.target}.")
