"""Notifications: email and signed merchant webhooks about jobs, batches and a daily digest.

A change that deserves a message writes a `NotificationDelivery` row (the outbox) in the
same transaction (`hooks.py`); the worker delivers due rows under a lease, records every
attempt, and retries failures with exponential backoff (`tasks.py`)."""
