"""follow-up tables

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "followup_source",
        sa.Column("sop_uid", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("patient_name", sa.String(400), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False, index=True),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "followup_finding",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column(
            "source_sop_uid",
            sa.String(64),
            sa.ForeignKey("followup_source.sop_uid", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False, index=True),
        sa.Column("study_date", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("volume_mm3", sa.Float(), nullable=True),
        sa.Column("long_axis_mm", sa.Float(), nullable=True),
        sa.Column("short_axis_mm", sa.Float(), nullable=True),
    )
    op.create_table(
        "followup_anchor",
        sa.Column("series_uid", sa.String(64), primary_key=True),
        sa.Column("x", sa.Float(), nullable=True),
        sa.Column("y", sa.Float(), nullable=True),
        sa.Column("z", sa.Float(), nullable=True),
    )
    op.create_table(
        "followup_correction",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_by", sa.String(128), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "followup_patient",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("patient_name", sa.String(400), nullable=False),
        sa.Column("timepoints", sa.Integer(), nullable=False),
        sa.Column("lesions", sa.Integer(), nullable=False),
        sa.Column("latest_response", sa.String(16), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "followup_timepoint",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "patient_id",
            sa.String(64),
            sa.ForeignKey("followup_patient.patient_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("date", sa.String(8), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False, index=True),
    )
    op.create_table(
        "followup_lesion",
        sa.Column("uid", sa.String(64), primary_key=True),
        sa.Column(
            "patient_id",
            sa.String(64),
            sa.ForeignKey("followup_patient.patient_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("tracking_id", sa.String(16), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("lymph_node", sa.Boolean(), nullable=False),
        sa.Column("organ", sa.String(64), nullable=False),
        sa.Column("first_visit", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.String(8), nullable=False),
    )
    op.create_table(
        "followup_measurement",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "lesion_uid",
            sa.String(64),
            sa.ForeignKey("followup_lesion.uid", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("volume_mm3", sa.Float(), nullable=True),
        sa.Column("long_axis_mm", sa.Float(), nullable=True),
        sa.Column("short_axis_mm", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    for table in (
        "followup_measurement",
        "followup_lesion",
        "followup_timepoint",
        "followup_patient",
        "followup_correction",
        "followup_anchor",
        "followup_finding",
        "followup_source",
    ):
        op.drop_table(table)
