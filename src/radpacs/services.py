"""The services a running radpacs needs, built in one place and closed in one place.

:class:`AuthServices` (accounts, audit, dataset names, tokens, login limiter) is built on the
archive's engine by :func:`open_auth`, which also creates the first administrator named in
the settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from radpacs.archive import Archive
from radpacs.archive.accounts import AccountStore
from radpacs.archive.audit import AuditLog
from radpacs.archive.names import DatasetNames
from radpacs.auth.authenticator import Authenticator
from radpacs.auth.oidc import OidcValidator
from radpacs.auth.passwords import hash_password
from radpacs.auth.ratelimit import LoginLimiter
from radpacs.auth.roles import Role
from radpacs.auth.tokens import TokenIssuer, signing_secret
from radpacs.settings import Settings

__all__ = ["AuthServices", "open_auth"]

log = logging.getLogger(__name__)


@dataclass
class AuthServices:
    """What access control needs, opened with the archive (see :func:`open_auth`)."""

    settings: Settings
    accounts: AccountStore
    audit: AuditLog
    names: DatasetNames
    issuer: TokenIssuer
    authenticator: Authenticator
    limiter: LoginLimiter

    def close(self) -> None:
        """Write the queued audit events and stop the audit writer."""
        self.audit.close()


def open_auth(settings: Settings, archive: Archive) -> AuthServices:
    """Build the services on the archive's engine, create the first admin from the settings."""
    accounts = AccountStore(archive.engine)
    oidc = None
    if settings.jwt_validate:
        assert settings.jwt_issuer and settings.jwt_audience and settings.jwt_jwks_url
        oidc = OidcValidator(
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.jwt_jwks_url,
            username_claim=settings.jwt_username_claim,
            roles_claim=settings.jwt_roles_claim,
            role_map=settings.jwt_role_map,
        )
    issuer = TokenIssuer(
        signing_secret(settings.auth_secret, settings.data_dir),
        lifetime=timedelta(minutes=settings.token_lifetime_minutes),
    )
    services = AuthServices(
        settings=settings,
        accounts=accounts,
        audit=AuditLog(archive.engine),
        names=DatasetNames(archive.engine),
        issuer=issuer,
        authenticator=Authenticator(issuer, accounts, oidc),
        limiter=LoginLimiter(settings.login_max_failures, settings.login_window_seconds),
    )
    if settings.admin_user and settings.admin_password:
        _first_admin(accounts, settings.admin_user, settings.admin_password)
    return services


def _first_admin(accounts: AccountStore, username: str, password: str) -> None:
    if accounts.count(Role.ADMIN):
        return
    if accounts.get(username) is not None:
        log.warning("admin_user %s exists without the admin role; not changed", username)
        return
    accounts.add(username, Role.ADMIN, password_hash=hash_password(password))
    log.warning("created the first administrator %s from the settings", username)
