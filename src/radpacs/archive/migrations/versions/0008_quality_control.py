"""quality-control status per instance

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_control",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.String(length=1024), nullable=False),
        sa.Column("set_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("sop_uid"),
    )
    with op.batch_alter_table("quality_control") as batch:
        batch.create_index("ix_quality_control_study_uid", ["study_uid"])
        batch.create_index("ix_quality_control_status", ["status"])


def downgrade() -> None:
    op.drop_table("quality_control")
