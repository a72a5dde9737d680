"""Opening the index database: engine set-up for SQLite (WAL) and PostgreSQL, and migrations.

SQLite runs in WAL mode with 16 KB pages (set when the file is created), a busy timeout,
foreign keys on and case-sensitive LIKE (so that matching behaves as on PostgreSQL); write
transactions take the lock up front (``BEGIN IMMEDIATE``) so that concurrent writers queue
instead of failing.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from radpacs.errors import StorageError

__all__ = ["create_index_engine", "database_errors", "migrate"]

_MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_PAGE_SIZE = 16384
RANDOM_PAGE_COST = 1.1  # PostgreSQL sessions, unless the server sets its own (below)


def create_index_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and WAL switched on."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=10)
        event.listen(engine, "connect", _postgresql_session)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy emit BEGIN itself
        cursor = dbapi_connection.cursor()
        # 16 KB pages for a new file (a no-op on an existing one): an instance row with its
        # ~2.5 KB metadata frame fits once in a 4 KB page, leaving ~1.5 KB unused (bench/README)
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    """Price a random page read at 1.1 sequential ones, as on an SSD or a cached index,
    unless the server's configuration chose a value: with PostgreSQL's default of 4 (a
    spinning disk) the planner joins the studies of a name or date match by scanning every
    study and patient, work that grows with the archive (docs/decisions.md, issue 24)."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SELECT source FROM pg_settings WHERE name = 'random_page_cost'")
        row = cursor.fetchone()
        if row is not None and row[0] == "default":
            cursor.execute(f"SET random_page_cost = {RANDOM_PAGE_COST}")
    dbapi_connection.commit()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision, in one transaction that a migration
    may commit part-way (``op.get_bind().commit()``, e.g. after each batch of a data
    conversion, so that an interrupted run resumes); what is left is committed at the end."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.connect() as connection:
        connection.begin()  # not as a context manager: a migration may commit and go on
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


class database_errors:
    """Translate any SQLAlchemy error raised in the block into one :class:`StorageError`
    that says what could not be done, keeping the cause: the only place where database
    errors of the archive become domain errors (the HTTP layer answers 503).

    Example::

        with database_errors("search"):
            session.execute(statement)
        # StorageError: the index refused the search: (psycopg.OperationalError) ...
    """

    __slots__ = ("doing",)

    def __init__(self, doing: str) -> None:
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, SQLAlchemyError):
            text = str(error).strip()
            reason = text.splitlines()[0] if text else type(error).__name__
            message = f"the index refused the {self.doing}: {reason}"
            raise StorageError(message) from error
