"""The same Alembic migrations on SQLite and PostgreSQL: up from empty, one step down, up again,
and the migrated schema matches the models (no drift)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from pikcel_jobs.db.migrate import current_revision, downgrade, head_revision, sync_url, upgrade
from pikcel_jobs.db.models import Base
from tests.support.databases import database


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_upgrade_downgrade_upgrade(kind: str, tmp_path: Path) -> None:
    with database(kind, tmp_path) as url:
        upgrade(url)
        head = head_revision()
        assert current_revision(url) == head
        downgrade(url, "-1")
        assert current_revision(url) != head
        upgrade(url)
        assert current_revision(url) == head
        engine = create_engine(sync_url(url))
        try:
            with engine.connect() as conn:
                tables = set(inspect(conn).get_table_names())
                drift = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        finally:
            engine.dispose()
        assert {"jobs", "job_attempts", "job_batches", "job_events", "shops"} <= tables
        assert drift == [], f"models and migrations differ: {drift}"
