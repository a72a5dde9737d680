"""UPS-RS events made by the job mirror, for the API processes to relay (workitem_event)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workitem_event",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("info", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_workitem_event_created_at", "workitem_event", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_workitem_event_created_at", table_name="workitem_event")
    op.drop_table("workitem_event")
