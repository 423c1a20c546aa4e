"""The baseline of `webhook_ingestion`: a FastAPI handler that reads the body and answers
200, served by uvicorn in its own process exactly as `pikcel-jobs serve` is (same
uvicorn, same HTTP/1.1 stack, no database, no verification).

    python -m uvicorn bench._bare_webhook_app:app --port 8009
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/webhooks/pikcel")
async def webhook(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"success": True})


@app.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"ok": True})
