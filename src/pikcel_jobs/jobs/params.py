"""Reading the list's filters from a query string (API, pages, exports share this)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from starlette.datastructures import QueryParams

from pikcel_jobs.core.errors import InvalidInput
from pikcel_jobs.jobs.schemas import MAX_PAGE_SIZE, JobFilter
from pikcel_jobs.web.errors import describe_validation

FILTER_KEYS = {"status", "toolId", "productId", "batchId", "from", "to", "q"}
PAGING_KEYS = {"cursor", "limit", "offset"}


def _int(params: QueryParams, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}")
    return value


def filter_from_query(params: QueryParams) -> JobFilter:
    unknown = {
        k for k in params if k not in FILTER_KEYS | PAGING_KEYS and not k.startswith("meta.")
    }
    if unknown:
        raise InvalidInput(f"unknown query parameter: {', '.join(sorted(unknown))}")
    data: dict[str, object] = {k: params[k] for k in FILTER_KEYS - {"status"} if params.get(k)}
    statuses = [s for value in params.getlist("status") for s in value.split(",") if s]
    data["status"] = statuses
    data["meta"] = {k[5:]: v for k, v in params.items() if k.startswith("meta.") and k[5:]}
    try:
        return JobFilter.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation(list(exc.errors()))) from None


@dataclass
class Paging:
    cursor: str | None
    limit: int
    offset: int | None


def paging_from_query(params: QueryParams, default_limit: int = 25) -> Paging:
    cursor = params.get("cursor") or None
    if cursor and len(cursor) > 500:
        raise InvalidInput("the cursor is not valid; start again from the first page")
    limit = _int(params, "limit", default_limit, 1, MAX_PAGE_SIZE)
    offset = _int(params, "offset", None, 0, 1_000_000)
    return Paging(cursor=cursor, limit=limit or default_limit, offset=offset)
