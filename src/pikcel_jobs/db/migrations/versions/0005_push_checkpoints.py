"""push checkpoints

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 16:25:04.124835
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("push_resource_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("push_step_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("push_tries", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("push_tries")
        batch_op.drop_column("push_step_at")
        batch_op.drop_column("push_resource_url")
