"""PostgreSQL: NOTIFY job_events on every insert into the outbox, so each web process's
event hub wakes the moment any process commits a job change. SQLite: nothing to do.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION pikcel_notify_job_events() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('job_events', '');
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER job_events_notify AFTER INSERT ON job_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION pikcel_notify_job_events()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS job_events_notify ON job_events")
    op.execute("DROP FUNCTION IF EXISTS pikcel_notify_job_events()")
