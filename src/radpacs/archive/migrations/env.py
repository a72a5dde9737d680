"""Alembic environment: runs on the connection radpacs hands over (see archive.database)."""

from __future__ import annotations

from alembic import context

from radpacs.archive.index import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when alembic is run by hand
    raise RuntimeError("run migrations through radpacs.archive.database.migrate(engine)")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
