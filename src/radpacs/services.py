"""The services a running radpacs needs, built in one place and closed in one place.

:meth:`Services.open` builds them from the settings once, when the server starts (the app's
lifespan); :meth:`Services.close` closes them once, in reverse order, when it stops. Routes
reach them only through the dependency aliases of :mod:`radpacs.http.deps`. Example::

    with Services.open(load_settings()) as services:
        services.archive.search(parse_query(Level.STUDY, {}))

:class:`AuthServices` (accounts, audit, dataset names, tokens, login limiter) is built on the
archive's engine by :func:`open_auth`, which also creates the first administrator named in
the settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Self

from radpacs.ai.service import AiService
from radpacs.ai.triggers import (
    AI_BOOK,
    APPS_BOOK,
    ArrivalRule,
    ArrivalWatcher,
    JobSeriesFeed,
    RedisArrivals,
)
from radpacs.apps.service import AppService
from radpacs.archive import Archive
from radpacs.archive.accounts import AccountStore
from radpacs.archive.audit import AuditLog
from radpacs.archive.names import DatasetNames
from radpacs.archive.pseudonym_store import DatabasePseudonymStore
from radpacs.auth.authenticator import Authenticator
from radpacs.auth.oidc import OidcValidator
from radpacs.auth.passwords import hash_password
from radpacs.auth.ratelimit import Limiter, LoginLimiter, RedisLoginLimiter
from radpacs.auth.roles import Role
from radpacs.auth.tokens import TokenIssuer, signing_secret
from radpacs.cache import BodyCache
from radpacs.deid.pseudonyms import PseudonymStore
from radpacs.followup.feed import FollowupService
from radpacs.followup.jobs import jobs_submitter
from radpacs.jobs import Jobs
from radpacs.settings import Settings
from radpacs.shared import connect

__all__ = ["AuthServices", "Services", "open_auth", "open_limiter"]

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
    limiter: Limiter

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
        limiter=open_limiter(settings),
    )
    if settings.admin_user and settings.admin_password:
        _first_admin(accounts, settings.admin_user, settings.admin_password)
    return services


def open_limiter(settings: Settings) -> Limiter:
    """The login limiter: in this process, or in the shared Redis when ``redis_url`` is set."""
    if settings.redis_url:
        return RedisLoginLimiter(
            connect(settings.redis_url), settings.login_max_failures, settings.login_window_seconds
        )
    return LoginLimiter(settings.login_max_failures, settings.login_window_seconds)


def _first_admin(accounts: AccountStore, username: str, password: str) -> None:
    if accounts.count(Role.ADMIN):
        return
    if accounts.get(username) is not None:
        log.warning("admin_user %s exists without the admin role; not changed", username)
        return
    accounts.add(username, Role.ADMIN, password_hash=hash_password(password))
    log.warning("created the first administrator %s from the settings", username)


def _book(settings: Settings, name: str) -> RedisArrivals | None:
    """The arrival book ``name`` in the shared Redis, or None (in-process) without one."""
    return RedisArrivals(connect(settings.redis_url), name) if settings.redis_url else None


def _retrieved(settings: Settings, jobs: Jobs) -> JobSeriesFeed | None:
    """Without Redis, the series that C-GET jobs (``dimse.get``, run in job processes) stored,
    for an arrival watcher; with it, those jobs write the shared books themselves."""
    return None if settings.redis_url else JobSeriesFeed(jobs.store, "dimse.get")


@dataclass
class Services:
    """Everything the routes use, opened together: the archive and what lives on its engine
    (accounts, audit, pseudonyms, background jobs of every kind), the AI service and its
    arrival rules, the callback apps and theirs, the metadata body cache and the follow-up
    (fed by the archive's stores and deletes through follow-up jobs)."""

    settings: Settings
    archive: Archive
    auth: AuthServices
    ai: AiService
    arrivals: ArrivalWatcher
    apps: AppService
    app_arrivals: ArrivalWatcher
    pseudonyms: PseudonymStore
    jobs: Jobs
    metadata_cache: BodyCache
    followup: FollowupService

    @classmethod
    def open(cls, settings: Settings) -> Services:
        """Open (and migrate) the archive, then build the services on it; what was opened is
        closed again if a later step fails."""
        archive = Archive.from_settings(settings)
        opened: list[AuthServices | Jobs | Archive] = [archive]
        try:
            auth = open_auth(settings, archive)
            opened.append(auth)
            jobs = Jobs(settings, archive)
            opened.append(jobs)
            ai = AiService(settings, archive, jobs)
            arrivals = ArrivalWatcher(
                ai,
                [ArrivalRule.parse(raw) for raw in settings.ai_rules],
                book=_book(settings, AI_BOOK),
                feed=_retrieved(settings, jobs),
            )
            arrivals.start()
            apps = AppService(settings, archive, jobs)
            app_arrivals = ArrivalWatcher(  # the apps' rules, asked each time
                apps, apps.rules, book=_book(settings, APPS_BOOK), feed=_retrieved(settings, jobs)
            )
            app_arrivals.start()
        except BaseException:
            for service in reversed(opened):
                service.close()
            raise
        return cls(
            settings=settings,
            archive=archive,
            auth=auth,
            ai=ai,
            arrivals=arrivals,
            apps=apps,
            app_arrivals=app_arrivals,
            pseudonyms=DatabasePseudonymStore(archive.engine),
            jobs=jobs,
            metadata_cache=BodyCache(settings.metadata_cache_entries),
            followup=FollowupService.from_settings(
                settings, archive, submit=jobs_submitter(jobs)
            ).attach(),
        )

    def close(self) -> None:
        """Stop the arrival rules and the embedded job worker, write the queued audit events,
        release the database connections."""
        self.arrivals.stop()
        self.app_arrivals.stop()
        self.jobs.close()
        self.auth.close()
        self.archive.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
