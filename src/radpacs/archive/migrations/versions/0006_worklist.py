"""modality worklist

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worklist_item",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("patient_name", sa.String(length=400), nullable=False),
        sa.Column("patient_name_lower", sa.String(length=400), nullable=False),
        sa.Column("patient_birth_date", sa.String(length=8), nullable=False),
        sa.Column("patient_sex", sa.String(length=16), nullable=False),
        sa.Column("accession_number", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("requested_procedure_id", sa.String(length=64), nullable=False),
        sa.Column("requested_procedure_description", sa.String(length=400), nullable=False),
        sa.Column("referring_physician", sa.String(length=400), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("station_ae_title", sa.String(length=16), nullable=False),
        sa.Column("scheduled_date", sa.String(length=8), nullable=False),
        sa.Column("scheduled_time", sa.String(length=13), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("step_description", sa.String(length=400), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("item_id"),
    )
    with op.batch_alter_table("worklist_item") as batch:
        batch.create_index("ix_worklist_item_patient_id", ["patient_id"])
        batch.create_index("ix_worklist_item_accession_number", ["accession_number"])
        batch.create_index("ix_worklist_item_modality", ["modality"])
        batch.create_index("ix_worklist_item_scheduled_date", ["scheduled_date"])


def downgrade() -> None:
    op.drop_table("worklist_item")
