"""ai jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 03:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ai_job",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("parameters_json", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("result_series_json", sa.Text(), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.Column("timings_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ai_job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ai_job_model"), ["model"], unique=False)
        batch_op.create_index(batch_op.f("ix_ai_job_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_ai_job_study_uid"), ["study_uid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ai_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ai_job_study_uid"))
        batch_op.drop_index(batch_op.f("ix_ai_job_state"))
        batch_op.drop_index(batch_op.f("ix_ai_job_model"))
    op.drop_table("ai_job")
