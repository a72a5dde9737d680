"""deid pseudonyms

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 04:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deid_pseudonym",
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("original_patient_id", sa.String(length=200), nullable=False),
        sa.Column("original_patient_name", sa.String(length=400), nullable=False),
        sa.Column("issuer_of_patient_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pseudonym"),
    )


def downgrade() -> None:
    op.drop_table("deid_pseudonym")
