"""`GET /api/events`: the shop's job events as Server-Sent Events. One connection per
page whatever the number of jobs shown; `Last-Event-ID` resumes after a reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from pikcel_jobs.core.errors import InvalidInput
from pikcel_jobs.events.hub import EventHub, replay
from pikcel_jobs.shops.auth import ShopDomain

router = APIRouter(tags=["events"])
HEARTBEAT_SECONDS = 15.0


def last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput("Last-Event-ID must be an event id")
    return int(raw)


@router.get("/api/events", response_class=StreamingResponse)
async def events(request: Request, shop: ShopDomain) -> StreamingResponse:
    hub: EventHub = request.app.state.hub
    after = last_event_id(request)
    sub = hub.subscribe(shop)  # subscribe before replaying, so nothing falls between

    async def stream() -> AsyncIterator[bytes]:
        replayed: set[int] = set()
        try:
            yield b"retry: 2000\n: connected\n\n"
            if after:
                for old in await replay(hub.sessions, shop=shop, after=after):
                    replayed.add(old.id)
                    yield old.encode()
            while True:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                if message is None:
                    return
                if message.id in replayed:
                    continue
                yield message.encode()
        finally:
            sub.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
