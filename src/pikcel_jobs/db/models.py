"""Imports every model so `Base.metadata` is complete (Alembic, tests)."""

from pikcel_jobs.analytics.rollups import JobRollup
from pikcel_jobs.batches.models import JobBatch
from pikcel_jobs.bulk.models import BulkOperation
from pikcel_jobs.db.base import Base
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.notifications.models import NotificationAttempt, NotificationDelivery
from pikcel_jobs.schedules.models import Schedule
from pikcel_jobs.shops.models import Shop
from pikcel_jobs.templates.models import JobTemplate
from pikcel_jobs.webhooks.models import WebhookReceipt
from pikcel_jobs.worker.models import WorkerProcess

__all__ = [
    "Base",
    "BulkOperation",
    "Job",
    "JobAttempt",
    "JobBatch",
    "JobEvent",
    "JobRollup",
    "JobTemplate",
    "NotificationAttempt",
    "NotificationDelivery",
    "Schedule",
    "Shop",
    "WebhookReceipt",
    "WorkerProcess",
]
