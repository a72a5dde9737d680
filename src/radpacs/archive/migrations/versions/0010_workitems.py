"""UPS workitems and their subscriptions (PS3.4 Annex CC)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workitem",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("transaction_uid", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("patient_name_lower", sa.String(length=400), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("accession_number", sa.String(length=64), nullable=False),
        sa.Column("scheduled_start", sa.String(length=14), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("worklist_label", sa.String(length=64), nullable=False),
        sa.Column("readiness", sa.String(length=16), nullable=False),
        sa.Column("dataset", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("uid"),
    )
    with op.batch_alter_table("workitem") as batch:
        batch.create_index("ix_workitem_state", ["state"])
        batch.create_index("ix_workitem_patient_id", ["patient_id"])
        batch.create_index("ix_workitem_scheduled_start", ["scheduled_start"])
    op.create_table(
        "workitem_subscription",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=False),
        sa.Column("workitem_uid", sa.String(length=64), nullable=False),
        sa.Column("filter", sa.Text(), nullable=False),
        sa.Column("deletion_lock", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("workitem_subscription") as batch:
        batch.create_index("ix_workitem_subscription_ae_title", ["ae_title"])


def downgrade() -> None:
    op.drop_table("workitem_subscription")
    op.drop_table("workitem")
