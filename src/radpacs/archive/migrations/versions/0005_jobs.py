"""one job table for every kind: ai_job rows become job rows of kind "ai"

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 05:50:00
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SCALE = 10000  # an AI job's progress (0..1) is kept as done of 10000
_TEXT = [
    "id",
    "model",
    "study_uid",
    "series_uid",
    "parameters_json",
    "trigger",
    "state",
    "error",
    "result_series_json",
    "result_json",
    "timings_json",
]
_TIMES = ["created_at", "started_at", "finished_at", "heartbeat_at", "next_attempt_at"]


def upgrade() -> None:
    job = op.create_table(
        "job",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index("ix_job_kind", ["kind"], unique=False)
        batch_op.create_index("ix_job_kind_key", ["kind", "key"], unique=False)
        batch_op.create_index("ix_job_label", ["label"], unique=False)
        batch_op.create_index("ix_job_state", ["state"], unique=False)
        batch_op.create_index("ix_job_study_uid", ["study_uid"], unique=False)
    text, when = sa.Text(), sa.DateTime(timezone=True)
    old = sa.table(
        "ai_job",
        *(sa.column(name, text) for name in _TEXT),
        sa.column("progress", sa.Float()),
        sa.column("attempts", sa.Integer()),
        sa.column("max_attempts", sa.Integer()),
        sa.column("cancel_requested", sa.Boolean()),
        *(sa.column(name, when) for name in _TIMES),
    )
    rows = [dict(row._mapping) for row in op.get_bind().execute(sa.select(old))]
    if rows:
        op.bulk_insert(job, [_job_row(row) for row in rows])
    with op.batch_alter_table("ai_job", schema=None) as batch_op:
        batch_op.drop_index("ix_ai_job_study_uid")
        batch_op.drop_index("ix_ai_job_state")
        batch_op.drop_index("ix_ai_job_model")
    op.drop_table("ai_job")


def _job_row(row: dict[str, object]) -> dict[str, object]:
    parameters = json.loads(str(row["parameters_json"] or "{}"))
    params = {
        "model": row["model"],
        "study": row["study_uid"],
        "series": row["series_uid"] or "",
        "parameters": parameters,
        "trigger": row["trigger"],
    }
    key = json.dumps(
        [row["model"], row["study_uid"], row["series_uid"] or "", parameters], sort_keys=True
    )
    result = {
        "result_series": json.loads(str(row["result_series_json"] or "[]")),
        "timings": json.loads(str(row["timings_json"] or "{}")),
    }
    progress = float(row["progress"] or 0.0)  # type: ignore[arg-type]
    return {
        "id": row["id"],
        "kind": "ai",
        "key": key,
        "study_uid": row["study_uid"],
        "label": row["model"],
        "params_json": json.dumps(params, sort_keys=True),
        "state": row["state"],
        "done": round(progress * _SCALE),
        "total": _SCALE,
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "cancel_requested": row["cancel_requested"],
        "error": row["error"] or "",
        "result_json": json.dumps(result),
        "output": row["result_json"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "heartbeat_at": row["heartbeat_at"],
        "next_attempt_at": row["next_attempt_at"],
    }


def downgrade() -> None:
    raise NotImplementedError("the job table holds kinds the ai_job table cannot hold")
