"""instance metadata as zstd frames; a pattern index for patient-name prefixes on PostgreSQL

Converts every instance's DICOM JSON text (``metadata_json``) into one zstd frame
(``metadata_zstd``, see radpacs.archive.metadata_codec) in batches of ``BATCH`` rows, each
committed on its own and logged with its progress, so that an interrupted run (a crash, a
Ctrl-C on a million instances) resumes at the first row not yet converted: the new column is
only added if missing and only rows without a frame are read. The text column is dropped
once every row has its frame. Disk space comes back with ``VACUUM`` (SQLite) or
``VACUUM FULL instance`` (PostgreSQL), which this migration leaves to the operator.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:20:00
"""

import logging

import sqlalchemy as sa
import zstandard
from alembic import context, op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BATCH = 2000  # rows per commit; tests set config.attributes["metadata_batch"]
LEVEL = 3  # radpacs.archive.metadata_codec.LEVEL, copied: a migration must not change later
PATTERN_INDEX = "ix_patient_name_lower_pattern"

log = logging.getLogger("radpacs.archive.migrations")

instance = sa.table(
    "instance",
    sa.column("pk", sa.Integer()),
    sa.column("metadata_json", sa.Text()),
    sa.column("metadata_zstd", sa.LargeBinary()),
)


def _columns(bind: sa.Connection) -> set[str]:
    return {column["name"] for column in sa.inspect(bind).get_columns("instance")}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {PATTERN_INDEX} "
            "ON patient (patient_name_lower varchar_pattern_ops)"
        )
    columns = _columns(bind)
    if "metadata_json" not in columns:
        return  # converted by an earlier, interrupted run that had already dropped the text
    if "metadata_zstd" not in columns:
        op.add_column("instance", sa.Column("metadata_zstd", sa.LargeBinary(), nullable=True))
    convert(bind, context.config.attributes.get("metadata_batch", BATCH))
    with op.batch_alter_table("instance") as batch:
        batch.drop_column("metadata_json")
        batch.alter_column("metadata_zstd", existing_type=sa.LargeBinary(), nullable=False)


def convert(bind: sa.Connection, batch_size: int = BATCH) -> int:
    """Give every row without a frame its frame, ``batch_size`` rows per commit; returns how
    many rows this call converted."""
    bind.commit()  # the new column (and what ran before) is kept even if a batch fails
    total = bind.scalar(sa.select(sa.func.count()).select_from(instance)) or 0
    left = (
        bind.scalar(
            sa.select(sa.func.count())
            .select_from(instance)
            .where(instance.c.metadata_zstd.is_(None))
        )
        or 0
    )
    if left:
        log.info("index metadata: %d of %d instances to compress", left, total)
    done, after = 0, 0
    update = (
        instance.update()
        .where(instance.c.pk == sa.bindparam("row_pk"))
        .values(metadata_zstd=sa.bindparam("frame"))
    )
    while True:
        rows = bind.execute(
            sa.select(instance.c.pk, instance.c.metadata_json)
            .where(instance.c.metadata_zstd.is_(None), instance.c.pk > after)
            .order_by(instance.c.pk)
            .limit(batch_size)
        ).all()
        if not rows:
            break
        bind.execute(
            update,
            [
                {"row_pk": pk, "frame": zstandard.compress(text.encode(), LEVEL)}
                for pk, text in rows
            ],
        )
        bind.commit()
        done += len(rows)
        after = rows[-1][0]
        log.info("index metadata: %d of %d instances compressed", done, left)
    return done


def downgrade() -> None:
    bind = op.get_bind()
    op.add_column("instance", sa.Column("metadata_json", sa.Text(), nullable=True))
    after = 0
    while True:
        rows = bind.execute(
            sa.select(instance.c.pk, instance.c.metadata_zstd)
            .where(instance.c.pk > after)
            .order_by(instance.c.pk)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        bind.execute(
            instance.update()
            .where(instance.c.pk == sa.bindparam("row_pk"))
            .values(metadata_json=sa.bindparam("text")),
            [{"row_pk": pk, "text": zstandard.decompress(frame).decode()} for pk, frame in rows],
        )
        after = rows[-1][0]
    with op.batch_alter_table("instance") as batch:
        batch.drop_column("metadata_zstd")
        batch.alter_column("metadata_json", existing_type=sa.Text(), nullable=False)
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {PATTERN_INDEX}")
