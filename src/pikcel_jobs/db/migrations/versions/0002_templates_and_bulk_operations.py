"""templates and bulk operations

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:06:35.513874
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "bulk_operations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("shop", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column(
            "selection",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_operations")),
    )
    with op.batch_alter_table("bulk_operations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bulk_operations_shop_created", ["shop", "created_at"], unique=False
        )

    op.create_table(
        "job_templates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("shop", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tool_id", sa.String(length=100), nullable=False),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_templates")),
        sa.UniqueConstraint("shop", "name", name="uq_job_templates_shop_name"),
    )
    with op.batch_alter_table("job_templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_templates_shop"), ["shop"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("job_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_templates_shop"))

    op.drop_table("job_templates")
    with op.batch_alter_table("bulk_operations", schema=None) as batch_op:
        batch_op.drop_index("ix_bulk_operations_shop_created")

    op.drop_table("bulk_operations")
