"""What a delivery looks like on the wire: an email (plain text + HTML) or a webhook body."""

from __future__ import annotations

import json
from datetime import date
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from pikcel_jobs.config import Settings
from pikcel_jobs.notifications.models import Kind, NotificationDelivery

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    keep_trailing_newline=True,
)
TEMPLATE_OF = {
    Kind.JOB_COMPLETED: "job", Kind.JOB_FAILED: "job", Kind.BATCH_COMPLETED: "batch",
    Kind.DIGEST: "digest", Kind.TEST: "test",
}  # fmt: skip


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def tool_label(p: dict[str, Any]) -> str:
    return str(p.get("toolName") or (p.get("toolId") or "PikcelAI").replace("-", " ").capitalize())


def headline(kind: str, p: dict[str, Any]) -> tuple[str, str]:
    """(email subject, heading inside the email), in words a merchant understands."""
    if kind in (Kind.JOB_FAILED, Kind.JOB_COMPLETED):
        what = tool_label(p)
        on = p.get("productTitle") or ("a product image" if p.get("productId") else "an image")
        if kind == Kind.JOB_FAILED:
            return f"Job failed: {what} on {on}", f"{what} on {on} failed"
        return f"Job completed: {what} on {on}", f"{what} on {on} is ready"
    if kind == Kind.BATCH_COMPLETED:
        name = p.get("name") or "Your batch"
        total, done = int(p.get("totalJobs") or 0), int(p.get("completedJobs") or 0)
        failed = int(p.get("failedJobs") or 0) + int(p.get("cancelledJobs") or 0)
        if failed == 0:
            text = f"all {_plural(total, 'image')} done"
        elif done == 0:
            text = f"none of {_plural(total, 'image')} could be processed"
        else:
            text = f"{done} of {_plural(total, 'image')} done, {failed} failed"
        return f"Batch finished: {name} — {text}", f"{name}: {text}"
    if kind == Kind.DIGEST:
        label = day_label(p)
        counts = f"{p.get('completed', 0)} completed, {p.get('failed', 0)} failed"
        return f"Your PikcelAI summary for {label}: {counts}", f"Your summary for {label}"
    return "Test notification from PikcelAI", "Your notifications work"


def day_label(p: dict[str, Any]) -> str:
    try:
        day = date.fromisoformat(str(p.get("date")))
    except ValueError:
        return str(p.get("date"))
    return f"{day.day} {day:%B %Y}"


def link(settings: Settings, p: dict[str, Any]) -> str | None:
    path = p.get("path")
    return f"{settings.app_url}{path}" if isinstance(path, str) and path.startswith("/") else None


def compose_email(delivery: NotificationDelivery, settings: Settings) -> EmailMessage:
    p = dict(delivery.payload or {})
    subject, heading = headline(delivery.kind, p)
    context = {
        "kind": delivery.kind, "p": p, "shop": delivery.shop, "subject": subject,
        "heading": heading, "url": link(settings, p), "tool": tool_label(p),
        "day_label": day_label(p), "settings_url": f"{settings.app_url}/app/settings",
    }  # fmt: skip
    name = TEMPLATE_OF.get(delivery.kind, "test")  # type: ignore[call-overload]
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = delivery.target
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    domain = settings.mail_from.rsplit("@", 1)[-1].strip("> ") or "localhost"
    message["Message-ID"] = make_msgid(idstring=delivery.id, domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Pikcel-Delivery"] = delivery.id
    message.set_content(TEMPLATES.get_template(f"{name}.txt").render(context))
    message.add_alternative(TEMPLATES.get_template(f"{name}.html").render(context), subtype="html")
    return message


def webhook_body(delivery: NotificationDelivery, settings: Settings) -> bytes:
    """Standard Webhooks payload: `type`, `timestamp` (of the event), `data`."""
    p = dict(delivery.payload or {})
    p.pop("path", None)
    data = {**p, "shop": delivery.shop, "url": link(settings, dict(delivery.payload or {}))}
    body = {"type": delivery.kind, "timestamp": delivery.created_at.isoformat(), "data": data}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
