"""AccountStore: accounts and revoked tokens in the index database.

Implements :class:`radpacs.auth.AccountDirectory` for token checking: one short read
transaction per authenticated request (the account's role, and whether the token id is
revoked), so that removing an account or revoking a token takes effect at once in every
worker and replica.

Example::

    accounts = AccountStore(archive.engine)
    accounts.add("ana", Role.ADMIN, password_hash=hash_password("correct horse"))
    accounts.active_roles("ana", "some-jti")  # frozenset({Role.ADMIN})
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Engine, String, delete, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from radpacs.archive.database import database_errors
from radpacs.archive.index import Base, utc_now
from radpacs.auth.roles import Role
from radpacs.errors import Conflict, NotFound, StorageError

__all__ = ["Account", "AccountInfo", "AccountStore", "RevokedToken"]


class Account(Base):
    """A local account: a name, one role, an Argon2 hash (None for enrolled workshop accounts)."""

    __tablename__ = "account"

    pk: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    enrolled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class RevokedToken(Base):
    """A token id that is no longer accepted; the row can go once ``expires_at`` has passed."""

    __tablename__ = "revoked_token"

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), default="")
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True)
class AccountInfo:
    """An account as the rest of radpacs sees it; ``password_hash`` stays out of repr."""

    username: str
    role: Role
    enrolled: bool
    created_at: datetime
    password_hash: str | None = None

    def public(self) -> dict[str, object]:
        """The fields an administrator may list (never the hash)."""
        return {
            "username": self.username,
            "role": self.role.value,
            "enrolled": self.enrolled,
            "created_at": self.created_at.isoformat(),
        }

    def __repr__(self) -> str:
        return f"AccountInfo({self.username!r}, {self.role.value!r}, enrolled={self.enrolled})"


def _info(row: Account) -> AccountInfo:
    created = row.created_at
    if created.tzinfo is None:  # SQLite returns naive datetimes
        created = created.replace(tzinfo=UTC)
    return AccountInfo(row.username, Role(row.role), row.enrolled, created, row.password_hash)


class AccountStore:
    """Creates, finds, lists and removes accounts; records and checks token revocations."""

    def __init__(self, engine: Engine) -> None:
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )

    def add(
        self,
        username: str,
        role: Role | str,
        password_hash: str | None = None,
        enrolled: bool = False,
    ) -> AccountInfo:
        """Create an account; Conflict if the name is taken."""
        row = Account(
            username=username,
            role=Role(role).value,
            password_hash=password_hash,
            enrolled=enrolled,
            created_at=datetime.now(UTC),
        )
        try:
            with self._write() as session, session.begin():
                session.add(row)
        except IntegrityError as exc:
            raise Conflict(f"an account named {username!r} already exists") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot create account {username!r}: {exc}") from exc
        return _info(row)

    def get(self, username: str) -> AccountInfo | None:
        """The account named ``username``, or None."""
        with database_errors("account look-up"), self._read() as session:
            row = session.scalar(select(Account).where(Account.username == username))
            return _info(row) if row else None

    def list(self) -> list[AccountInfo]:
        """Every account, by name."""
        with database_errors("account look-up"), self._read() as session:
            return [
                _info(row) for row in session.scalars(select(Account).order_by(Account.username))
            ]

    def count(self, role: Role | None = None) -> int:
        """How many accounts there are (of ``role`` when given)."""
        statement = select(func.count()).select_from(Account)
        if role is not None:
            statement = statement.where(Account.role == Role(role).value)
        with database_errors("account look-up"), self._read() as session:
            return int(session.scalar(statement) or 0)

    def remove(self, username: str) -> None:
        """Delete an account (its tokens stop working at once); NotFound if there is none."""
        with database_errors("account change"), self._write() as session, session.begin():
            result = session.execute(delete(Account).where(Account.username == username))
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFound(f"no account named {username!r}")

    def set_password(self, username: str, password_hash: str) -> None:
        """Replace the password hash of an account; NotFound if there is none."""
        with database_errors("account change"), self._write() as session, session.begin():
            row = session.scalar(select(Account).where(Account.username == username))
            if row is None:
                raise NotFound(f"no account named {username!r}")
            row.password_hash = password_hash
            row.enrolled = False

    def revoke(self, token_id: str, username: str, expires_at: datetime) -> None:
        """Refuse ``token_id`` from now on; expired revocations are purged on the way."""
        now = datetime.now(UTC)
        with database_errors("token revocation"), self._write() as session, session.begin():
            session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
            if session.get(RevokedToken, token_id) is None:
                session.add(
                    RevokedToken(
                        token_id=token_id,
                        username=username,
                        revoked_at=now,
                        expires_at=expires_at,
                    )
                )

    def active_roles(self, username: str, token_id: str) -> frozenset[Role] | None:
        """The account's role, or None if the account is gone or the token id revoked."""
        with database_errors("account look-up"), self._read() as session:
            role = session.scalar(select(Account.role).where(Account.username == username))
            if role is None or session.get(RevokedToken, token_id) is not None:
                return None
            return frozenset({Role(role)})
