"""Job templates: saved configurations a merchant applies to products. Functions take
the session and never commit."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.core.errors import Conflict, InvalidInput, NotFound
from pikcel_jobs.db.base import new_id, utcnow
from pikcel_jobs.templates import repository
from pikcel_jobs.templates.models import JobTemplate
from pikcel_jobs.templates.schemas import TemplateCreate, TemplateUpdate


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"a template named '{name}' already exists in this shop; choose another name",
        code="TEMPLATE_NAME_TAKEN",
    )


async def _flush(session: AsyncSession, name: str) -> None:
    """The unique constraint is the last word when two requests race for one name."""
    try:
        await session.flush()
    except IntegrityError:
        raise _name_taken(name) from None


async def list_templates(session: AsyncSession, *, shop: str) -> Sequence[JobTemplate]:
    return await repository.list_for_shop(session, shop=shop)


async def get_template(session: AsyncSession, *, shop: str, template_id: str) -> JobTemplate:
    template = await repository.get(session, shop=shop, template_id=template_id)
    if template is None:
        raise NotFound("template not found")
    return template


async def create_template(session: AsyncSession, *, shop: str, data: TemplateCreate) -> JobTemplate:
    if await repository.count_for_shop(session, shop=shop) >= repository.MAX_TEMPLATES:
        raise InvalidInput(
            f"a shop can keep at most {repository.MAX_TEMPLATES} templates; delete some first"
        )
    if await repository.find_by_name(session, shop=shop, name=data.name):
        raise _name_taken(data.name)
    now = utcnow()
    template = JobTemplate(
        id=new_id(), shop=shop, name=data.name, description=data.description or None,
        tool_id=data.tool_id, parameters=data.parameters, priority=data.priority,
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(template)
    await _flush(session, data.name)
    return template


async def update_template(
    session: AsyncSession, *, shop: str, template_id: str, data: TemplateUpdate
) -> JobTemplate:
    template = await get_template(session, shop=shop, template_id=template_id)
    changes = data.model_dump(exclude_unset=True)
    for required in ("name", "tool_id", "parameters", "priority"):
        if required in changes and changes[required] is None:
            raise InvalidInput(f"{required.replace('_id', 'Id')}: may not be empty")
    name = changes.get("name")
    if name is not None and await repository.find_by_name(
        session, shop=shop, name=name, exclude_id=template.id
    ):
        raise _name_taken(name)
    for field, value in changes.items():
        setattr(template, field, (value or None) if field == "description" else value)
    template.updated_at = utcnow()
    await _flush(session, template.name)
    return template


async def delete_template(session: AsyncSession, *, shop: str, template_id: str) -> None:
    template = await get_template(session, shop=shop, template_id=template_id)
    await session.delete(template)
    await session.flush()
