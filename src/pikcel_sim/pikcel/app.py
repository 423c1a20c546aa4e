"""The PikcelAI simulator as an ASGI app: every endpoint of the API contract, plus `/_sim/*`."""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from .config import FaultConfig, SimConfig
from .engine import Engine
from .faults import FaultMiddleware
from .store import (
    ACTIVE,
    STATUSES,
    Counters,
    FileStore,
    SimBulk,
    SimJob,
    SimUser,
    digest,
    iso,
)
from .tools import TEMPLATES, TEMPLATES_BY_ID, TOOLS, ToolSpec, check_parameters
from .webhooks import WebhookSender, signing_key

log = logging.getLogger("pikcel_sim.pikcel")

Priority = Literal["low", "normal", "high", "urgent"]
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_BULK_IMAGES = 500
# Config read once at start (workers, clients, routes): not changeable by a reset.
RESTART_FIELDS = frozenset({"image_workers", "webhook_concurrency", "fetch_timeout",
                            "webhook_timeout", "admin_enabled"})


# -- envelopes and errors -------------------------------------------------------------------

class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None,
       **extra: Any) -> JSONBody:
    return JSONBody({"success": True, "data": data, **extra}, status_code=status,
                    headers=headers)


class SimError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error}


_HTTP_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
}


def _validation_error(exc: RequestValidationError) -> JSONBody:
    errors = exc.errors()
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query")),
         "message": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONBody(error_body("INVALID_JSON", "The request body is not valid JSON.",
                                   details), status_code=400)
    if any(tuple(e.get("loc", ())) == ("body",) for e in errors):
        return JSONBody(error_body(
            "INVALID_JSON",
            "The request body must be a JSON object (Content-Type: application/json).",
            details), status_code=400)
    first = details[0] if details else {"field": "", "message": "invalid request"}
    where = f"{first['field']}: " if first["field"] else ""
    return JSONBody(error_body("VALIDATION_ERROR", f"{where}{first['message']}", details),
                    status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    async def sim_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SimError)
        return JSONBody(error_body(exc.code, exc.message, exc.details),
                        status_code=exc.status, headers=exc.headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_error(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 404 and message == "Not Found":
            message = f"No such endpoint: {request.method} {request.url.path}"
        return JSONBody(error_body(code, message), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("simulator bug on %s %s", request.method, request.url.path)
        return JSONBody(error_body("INTERNAL_ERROR", "Unexpected simulator error."),
                        status_code=500)

    app.add_exception_handler(SimError, sim_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


# -- request bodies -------------------------------------------------------------------------

def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


class DispatchBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tool_id: str = Field(min_length=1)
    input_image_url: str = Field(min_length=1, max_length=4096)
    parameters: dict[str, Any] | None = None
    template_id: str | None = None
    priority: Priority = "normal"
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("input_image_url")
    @classmethod
    def _check_input(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


class BulkImage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str = Field(min_length=1, max_length=4096)
    metadata: dict[str, Any] | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class BulkBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tool_id: str = Field(min_length=1)
    input_images: list[BulkImage] = Field(min_length=1, max_length=MAX_BULK_IMAGES)
    parameters: dict[str, Any] | None = None
    template_id: str | None = None
    priority: Priority = "normal"
    webhook_url: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


class ForceBody(BaseModel):
    error_message: str | None = None
    progress: int | None = Field(None, ge=0, le=99)


class ConfigPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_scale: float | None = Field(None, gt=0)
    auto_progress: bool | None = None
    send_webhooks: bool | None = None
    webhook_secret: str | None = None
    public_url: str | None = None
    default_credits: int | None = Field(None, ge=0)
    inactive_tools: list[str] | None = None
    webhook_max_attempts: int | None = Field(None, ge=1)
    webhook_retry_seconds: float | None = Field(None, ge=0)


class CreditsBody(BaseModel):
    credits_balance: int = Field(ge=0)


# -- the simulator's state ------------------------------------------------------------------

class Simulator:
    """All state of one simulated PikcelAI; `app.state.sim`."""

    def __init__(self, config: SimConfig) -> None:
        self.initial = config.model_copy(deep=True)
        self.config = config
        if config.seed is None:
            config.seed = random.SystemRandom().randrange(2**31)
            self.initial.seed = config.seed
        if config.webhook_secret:
            signing_key(config.webhook_secret)  # fail at start on a bad whsec_ secret
        self.tools: dict[str, ToolSpec] = TOOLS
        self.counters = Counters()
        self.files = FileStore(config.file_retention)
        self.engine = Engine(self)
        self.webhooks = WebhookSender(self)
        self.started = False
        self._init_state()

    def _init_state(self) -> None:
        seed = self.config.seed
        self.fault_rng = random.Random(f"{seed}:faults")
        self.throttle_until = 0.0  # monotonic end of the current 429 burst
        self.users_by_key: dict[str, SimUser] = {}
        self.users_by_id: dict[str, SimUser] = {}
        self.jobs: dict[str, SimJob] = {}
        self.bulks: dict[str, SimBulk] = {}
        self.idempotency: dict[tuple[str, str], tuple[str, int, str]] = {}
        self.job_seq = 0
        self._jitter: dict[str, float] = {}
        for key, label in self.config.api_keys.items():
            self._make_user(key, label)

    async def start(self) -> None:
        """Start the scheduler and the webhook workers (the app's lifespan does this; when
        the app is mounted inside another one, the first request does)."""
        if self.started:
            return
        self.started = True
        await self.engine.start()
        await self.webhooks.start()

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        await self.webhooks.stop()
        await self.engine.stop()

    def reset(self, overrides: dict[str, Any] | None = None) -> None:
        """Back to the state at construction (config, users, no jobs, zero counters), with
        `overrides` of the construction config applied until the next reset."""
        fixed = sorted(set(overrides or ()) & RESTART_FIELDS)
        if fixed:
            raise SimError(422, "VALIDATION_ERROR",
                           f"{', '.join(fixed)} cannot change without a restart")
        merged = {**self.initial.model_dump(), **(overrides or {})}
        config = _model(SimConfig, merged)
        if config.seed is None:
            config.seed = self.initial.seed
        self.engine.clear()
        self.webhooks.clear()
        self.config = config
        self.files = FileStore(self.config.file_retention)
        self.counters.reset()
        self._init_state()

    def log_exception(self, what: str) -> None:
        log.exception("simulator error in %s", what)

    # users

    def _make_user(self, key: str, label: str) -> SimUser:
        existing = next((u for u in self.users_by_id.values() if u.label == label), None)
        if existing is not None:  # two keys for one user share the account
            self.users_by_key[key] = existing
            return existing
        now = time.time()
        balance = self.config.credits.get(label, self.config.default_credits)
        user = SimUser(
            label=label, id="usr_" + digest("user", label)[:16],
            email=label if "@" in label else f"{label}@pikcel.test",
            credits_balance=balance, credits_included=balance,
            created_at=now, updated_at=now,
        )
        self.users_by_key[key] = user
        self.users_by_id[user.id] = user
        return user

    def authenticate(self, authorization: str | None) -> SimUser:
        if not authorization:
            raise SimError(401, "UNAUTHORIZED",
                           "Missing API key: send 'Authorization: Bearer <key>'.")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise SimError(401, "UNAUTHORIZED",
                           "Malformed Authorization header: expected 'Bearer <key>'.")
        user = self.users_by_key.get(key)
        if user is None:
            if not self.config.open_mode:
                raise SimError(401, "INVALID_API_KEY", "Invalid API key.")
            user = self._make_user(key, "user-" + digest("key", key)[:8])
        return user

    # jobs

    def job_jitter(self, job: SimJob) -> float:
        """A stable per-job speed factor in [0.8, 1.2], from the seed and the job's number."""
        factor = self._jitter.get(job.id)
        if factor is None:
            factor = random.Random(f"{self.config.seed}:job:{job.seq}:speed").uniform(0.8, 1.2)
            self._jitter[job.id] = factor
        return factor

    def tool(self, tool_id: str) -> ToolSpec:
        tool = self.tools.get(tool_id)
        if tool is None:
            raise SimError(400, "TOOL_NOT_FOUND", f"Unknown tool '{tool_id}'.",
                           {"tool_id": tool_id, "available": sorted(self.tools)})
        if tool_id in self.config.inactive_tools:
            raise SimError(400, "TOOL_NOT_FOUND",
                           f"Tool '{tool_id}' is not active at the moment.",
                           {"tool_id": tool_id, "is_active": False})
        return tool

    def resolve_parameters(self, tool: ToolSpec, template_id: str | None,
                           parameters: dict[str, Any] | None) -> dict[str, Any]:
        merged = {k: v for k, v in tool.default_parameters.items() if v is not None}
        if template_id is not None:
            template = TEMPLATES_BY_ID.get(template_id)
            if template is None:
                raise SimError(400, "TEMPLATE_NOT_FOUND", f"Unknown template '{template_id}'.",
                               {"template_id": template_id})
            merged.update(template["parameters"])
        merged.update(parameters or {})
        problems = check_parameters(tool, merged)
        if problems:
            raise SimError(400, "INVALID_PARAMETERS",
                           f"Invalid parameters for {tool.id}: {'; '.join(problems)}.",
                           {"problems": problems})
        return merged

    def check_credits(self, user: SimUser, needed: int) -> None:
        if user.available < needed:
            raise SimError(
                402, "INSUFFICIENT_CREDITS",
                f"Insufficient credits: this needs {needed} credit(s) but only "
                f"{max(0, user.available)} are available.",
                {"required": needed, "credits_balance": user.credits_balance,
                 "credits_reserved": user.reserved},
            )

    def create_job(self, user: SimUser, tool: ToolSpec, *, input_image_url: str,
                   parameters: dict[str, Any], template_id: str | None, priority: str,
                   webhook_url: str | None, metadata: dict[str, Any] | None, origin: str,
                   idempotency_key: str | None = None, bulk_id: str | None = None) -> SimJob:
        self.job_seq += 1
        seq = self.job_seq
        now = time.time()
        job_rng = random.Random(f"{self.config.seed}:job:{seq}")
        job = SimJob(
            id="job_" + digest(self.config.seed, "job", seq, self.config.id_namespace)[:24],
            seq=seq, user_id=user.id,
            tool_id=tool.id, tool_name=tool.name, cost=tool.credits_required,
            priority=priority, input_image_url=input_image_url, parameters=parameters,
            template_id=template_id, webhook_url=webhook_url, metadata=metadata,
            origin=self.config.public_url or origin, created_at=now, updated_at=now,
            will_fail=job_rng.random() < self.config.faults.job_failure_rate,
            idempotency_key=idempotency_key, bulk_id=bulk_id,
        )
        self.jobs[job.id] = job
        user.job_ids.append(job.id)
        user.reserved += job.cost
        self.counters.jobs_created += 1
        if idempotency_key is not None:
            self.counters.idempotency_jobs[idempotency_key] += 1
        self.engine.on_created(job)
        return job

    def emit(self, event: str, job: SimJob) -> None:
        if job.webhook_url and self.config.send_webhooks:
            self.webhooks.emit(event, job.to_dict())

    def user_job(self, user: SimUser, job_id: str) -> SimJob:
        job = self.jobs.get(job_id)
        if job is None or job.user_id != user.id:
            raise SimError(404, "JOB_NOT_FOUND", f"Job '{job_id}' was not found.",
                           {"job_id": job_id})
        return job

    def any_job(self, job_id: str) -> SimJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise SimError(404, "JOB_NOT_FOUND", f"Job '{job_id}' was not found.")
        return job

    def bulk_dict(self, bulk: SimBulk, base_url: str) -> dict[str, Any]:
        jobs = [self.jobs[i] for i in bulk.job_ids if i in self.jobs]
        completed = sum(j.status == "completed" for j in jobs)
        failed = sum(j.status in ("failed", "cancelled") for j in jobs)
        if completed + failed < len(jobs):
            status = "pending" if all(j.status == "pending" for j in jobs) else "processing"
        elif failed == len(jobs):
            status = "failed"
        elif failed:
            status = "completed_with_errors"
        else:
            status = "completed"
        updated = max([bulk.created_at, *(j.updated_at for j in jobs)])
        return {
            "id": bulk.id, "total_images": len(jobs), "completed": completed, "failed": failed,
            "status": status, "jobs": [j.to_dict(self.base(base_url)) for j in jobs],
            "created_at": iso(bulk.created_at), "updated_at": iso(updated),
        }

    def base(self, request_base: str) -> str:
        return (self.config.public_url or request_base).rstrip("/")

    def ledger(self) -> dict[str, Any]:
        return {user.label: user.ledger() for user in self.users_by_id.values()}


def _parse_when(value: str | None, field: str, *, end: bool = False) -> float | None:
    if value is None or value == "":
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            return moment + 86400 - 1e-6 if end else moment
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SimError(422, "VALIDATION_ERROR",
                       f"{field}: not an ISO-8601 date or date-time: {value!r}",
                       [{"field": field, "message": "invalid date", "type": "value_error"}],
                       ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def request_origin(request: Request) -> str:
    """The URL this app is served at, mount prefix included (no trailing slash)."""
    base = str(request.base_url).rstrip("/")
    root = request.scope.get("root_path", "")
    app_root = request.scope.get("app_root_path", "")
    if root.startswith(app_root) and not base.endswith(root):
        base += root[len(app_root):]
    return base


def current_user(request: Request) -> SimUser:
    sim: Simulator = request.app.state.sim
    return sim.authenticate(request.headers.get("authorization"))


User = Annotated[SimUser, Depends(current_user)]


def _model(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SimError(422, "VALIDATION_ERROR", f"{where}: {first['msg']}",
                       [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"],
                         "type": e["type"]} for e in exc.errors()]) from None


# -- the app --------------------------------------------------------------------------------

def create_app(config: SimConfig | None = None) -> FastAPI:
    """A fresh simulator (its own state) as a FastAPI app; `app.state.sim` is the state."""
    sim = Simulator(config or SimConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await sim.start()
        try:
            yield
        finally:
            await sim.stop()

    app = FastAPI(title="PikcelAI simulator", version="1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.sim = sim
    install_error_handlers(app)
    app.add_middleware(FaultMiddleware, sim=sim)

    def base_of(request: Request) -> str:
        return sim.base(request_origin(request))

    # -- the PikcelAI API ---------------------------------------------------------------

    @app.get("/api/ai-models")
    async def list_tools(user: User) -> Response:
        tools = [t.to_dict(active=t.id not in sim.config.inactive_tools)
                 for t in sim.tools.values()]
        return ok(tools, count=len(tools))

    @app.post("/api/jobs/dispatch")
    async def dispatch(body: DispatchBody, request: Request, user: User) -> Response:
        key = request.headers.get("idempotency-key")
        fingerprint = digest(body.tool_id, body.input_image_url, body.template_id,
                             json.dumps(body.parameters, sort_keys=True, default=str))
        if key is not None:
            seen = sim.idempotency.get((user.id, key))
            if seen is not None:
                job_id, status, seen_fingerprint = seen
                if seen_fingerprint != fingerprint:
                    raise SimError(422, "IDEMPOTENCY_KEY_REUSED",
                                   "This Idempotency-Key was used for a different request.",
                                   {"job_id": job_id})
                return ok(sim.jobs[job_id].to_dict(base_of(request)), status,
                          {"Idempotent-Replayed": "true"})
        tool = sim.tool(body.tool_id)
        parameters = sim.resolve_parameters(tool, body.template_id, body.parameters)
        sim.check_credits(user, tool.credits_required)
        job = sim.create_job(
            user, tool, input_image_url=body.input_image_url, parameters=parameters,
            template_id=body.template_id, priority=body.priority,
            webhook_url=body.webhook_url, metadata=body.metadata,
            origin=request_origin(request), idempotency_key=key,
        )
        if key is not None:
            sim.idempotency[(user.id, key)] = (job.id, 201, fingerprint)
        return ok(job.to_dict(base_of(request)), 201)

    @app.get("/api/jobs")
    async def list_jobs(
        request: Request, user: User,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
        status: str | None = None, tool_id: str | None = None,
        from_date: str | None = None, to_date: str | None = None,
    ) -> Response:
        wanted: set[str] | None = None
        if status:
            wanted = {s.strip() for s in status.split(",") if s.strip()}
            unknown = wanted - set(STATUSES)
            if unknown:
                raise SimError(422, "VALIDATION_ERROR",
                               f"status: unknown status {sorted(unknown)[0]!r}; expected one "
                               f"of {', '.join(STATUSES)}",
                               [{"field": "status", "message": "unknown status",
                                 "type": "enum"}])
        start = _parse_when(from_date, "from_date")
        end = _parse_when(to_date, "to_date", end=True)
        matched: list[SimJob] = []
        for job_id in reversed(user.job_ids):
            job = sim.jobs[job_id]
            if wanted is not None and job.status not in wanted:
                continue
            if tool_id and job.tool_id != tool_id:
                continue
            if start is not None and job.created_at < start:
                continue
            if end is not None and job.created_at > end:
                continue
            matched.append(job)
        page = matched[offset: offset + limit]
        base = base_of(request)
        return ok([j.to_dict(base) for j in page], count=len(page), total=len(matched),
                  has_more=offset + len(page) < len(matched))

    @app.get("/api/jobs/{job_id}")
    async def get_job(job_id: str, request: Request, user: User) -> Response:
        return ok(sim.user_job(user, job_id).to_dict(base_of(request)))

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str, request: Request, user: User) -> Response:
        job = sim.user_job(user, job_id)
        if job.status in ACTIVE:
            sim.engine.cancel(job)
        return ok(job.to_dict(base_of(request)))

    @app.get("/api/profiles/me")
    async def profile(user: User) -> Response:
        return ok(user.profile())

    @app.post("/api/upload")
    async def upload(
        request: Request, user: User,
        file: Annotated[UploadFile, File()],
        folder: Annotated[str, Form()] = "uploads",
    ) -> Response:
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise SimError(413, "FILE_TOO_LARGE", "The file is larger than 20 MB.")
        if not data:
            raise SimError(400, "EMPTY_FILE", "The uploaded file is empty.")
        mime = (file.content_type or "application/octet-stream").split(";")[0].strip()
        if not mime.startswith("image/"):
            raise SimError(400, "INVALID_FILE_TYPE",
                           f"Only images can be uploaded (got {mime}).", {"mime_type": mime})
        safe_folder = re.sub(r"[^A-Za-z0-9_-]+", "-", folder).strip("-") or "uploads"
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", file.filename or "image").strip("-.") or "image"
        path = f"uploads/{user.id}/{safe_folder}/{secrets.token_hex(8)}-{name}"
        sim.files.put(path, data, mime)
        return ok({
            "url": f"{base_of(request)}/files/{path}", "path": path, "size": len(data),
            "mime_type": mime, "uploaded_at": iso(time.time()),
        }, 201)

    @app.get("/api/enterprise/bulk/templates")
    async def list_templates(
        user: User, category: str | None = None, search: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        found = [
            t for t in TEMPLATES
            if (not category or t["category"] == category)
            and (not search or search.lower() in (t["name"] + " " + t["description"]).lower())
        ]
        page = found[offset: offset + limit]
        return ok(page, count=len(page), total=len(found),
                  has_more=offset + len(page) < len(found))

    @app.post("/api/enterprise/bulk/dispatch")
    async def bulk_dispatch(body: BulkBody, request: Request, user: User) -> Response:
        key = request.headers.get("idempotency-key")
        if key is not None:
            seen = sim.idempotency.get((user.id, "bulk:" + key))
            if seen is not None:
                return ok(sim.bulk_dict(sim.bulks[seen[0]], request_origin(request)), seen[1],
                          {"Idempotent-Replayed": "true"})
        tool = sim.tool(body.tool_id)
        parameters = sim.resolve_parameters(tool, body.template_id, body.parameters)
        sim.check_credits(user, tool.credits_required * len(body.input_images))
        bulk = SimBulk(id="bulk_" + digest(sim.config.seed, "bulk", sim.job_seq)[:24],
                       user_id=user.id, job_ids=[], created_at=time.time())
        for image in body.input_images:
            job = sim.create_job(
                user, tool, input_image_url=image.url, parameters=dict(parameters),
                template_id=body.template_id, priority=body.priority,
                webhook_url=body.webhook_url, metadata=image.metadata,
                origin=request_origin(request), bulk_id=bulk.id,
            )
            bulk.job_ids.append(job.id)
        sim.bulks[bulk.id] = bulk
        if key is not None:
            sim.idempotency[(user.id, "bulk:" + key)] = (bulk.id, 201, "")
        return ok(sim.bulk_dict(bulk, request_origin(request)), 201)

    @app.get("/files/{path:path}")
    async def files(path: str) -> Response:
        found = sim.files.get(path)
        if found is None:
            raise SimError(404, "FILE_NOT_FOUND", f"No file at /files/{path} (expired?).")
        data, mime = found
        return Response(data, media_type=mime, headers={"Cache-Control": "max-age=3600"})

    # -- admin endpoints for tests and benchmarks ---------------------------------------

    if sim.config.admin_enabled:
        install_admin(app, sim)

    return app


def install_admin(app: FastAPI, sim: Simulator) -> None:
    @app.get("/_sim/faults")
    async def get_faults() -> Response:
        return JSONBody(sim.config.faults.model_dump())

    @app.put("/_sim/faults")
    async def put_faults(request: Request) -> Response:
        """Replace the faults (fields left out go back to their defaults)."""
        sim.config.faults = _model(FaultConfig, await _json(request))
        return JSONBody(sim.config.faults.model_dump())

    @app.patch("/_sim/faults")
    async def patch_faults(request: Request) -> Response:
        """Change only the given fault fields."""
        merged = {**sim.config.faults.model_dump(), **await _json(request)}
        sim.config.faults = _model(FaultConfig, merged)
        return JSONBody(sim.config.faults.model_dump())

    @app.get("/_sim/config")
    async def get_config() -> Response:
        return JSONBody(sim.config.model_dump())

    @app.patch("/_sim/config")
    async def patch_config(request: Request) -> Response:
        patch = _model(ConfigPatch, await _json(request))
        for name, value in patch.model_dump(exclude_unset=True).items():
            setattr(sim.config, name, value)
        return JSONBody(sim.config.model_dump())

    @app.get("/_sim/counters")
    async def counters() -> Response:
        snapshot = sim.counters.snapshot()
        snapshot["webhooks"]["pending"] = sim.webhooks.pending
        snapshot["scheduled"] = len(sim.engine.heap)
        snapshot["jobs"] = len(sim.jobs)
        snapshot["seed"] = sim.config.seed
        return JSONBody(snapshot)

    @app.post("/_sim/counters/reset")
    async def reset_counters() -> Response:
        sim.counters.reset()
        return JSONBody({"ok": True})

    @app.get("/_sim/webhooks")
    async def webhook_log() -> Response:
        return JSONBody(list(sim.counters.webhook_log))

    @app.get("/_sim/ledger")
    async def ledger() -> Response:
        return JSONBody(sim.ledger())

    @app.put("/_sim/users/{label}/credits")
    async def set_credits(label: str, body: CreditsBody) -> Response:
        user = next((u for u in sim.users_by_id.values() if u.label == label), None)
        if user is None:
            raise SimError(404, "USER_NOT_FOUND", f"No user labelled '{label}'.")
        user.credits_balance = body.credits_balance
        user.updated_at = time.time()
        return JSONBody(user.ledger())

    @app.post("/_sim/reset")
    async def reset(request: Request) -> Response:
        """Forget everything; an optional `{"config": {...}}` overrides the start config."""
        body = await _json(request)
        overrides = body.get("config") or {}
        if not isinstance(overrides, dict):
            raise SimError(422, "VALIDATION_ERROR", "config must be an object")
        sim.reset(overrides)
        return JSONBody({"ok": True, "seed": sim.config.seed})

    @app.get("/_sim/jobs/{job_id}")
    async def peek_job(job_id: str, request: Request) -> Response:
        return JSONBody(sim.any_job(job_id).to_dict(sim.base(request_origin(request))))

    @app.post("/_sim/jobs/{job_id}/{action}")
    async def force(job_id: str, action: str, request: Request) -> Response:
        job = sim.any_job(job_id)
        raw = await request.body()
        body = _model(ForceBody, await _json(request)) if raw.strip() else ForceBody()
        if action == "start":
            sim.engine.start_job(job)
        elif action == "progress":
            sim.engine.advance(job, body.progress)
        elif action == "complete":
            await sim.engine.finish(job, force="complete")
        elif action == "fail":
            await sim.engine.finish(job, force="fail", error_message=body.error_message)
        elif action == "cancel":
            sim.engine.cancel(job)
        else:
            raise SimError(404, "NOT_FOUND",
                           f"Unknown action '{action}' (start, progress, complete, fail, cancel).")
        return JSONBody(job.to_dict(sim.base(request_origin(request))))


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        value = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise SimError(400, "INVALID_JSON", f"Body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SimError(400, "INVALID_JSON", "Body must be a JSON object.")
    return value
