"""Roles, the permissions they grant, and the :class:`Principal` a request acts as.

=========  =====================================================
role       permissions
=========  =====================================================
reader     read (QIDO, WADO, /api/data), compute (anonymize, DVH)
uploader   reader's, and store (STOW-RS)
service    reader's and store: AI workers read studies, store results
admin      every permission: delete, manage accounts, read the audit
=========  =====================================================

Example::

    Principal("ana", frozenset({Role.READER})).can(Permission.READ)  # True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "ANONYMOUS",
    "LOCAL_USER",
    "NO_PHI_SCOPE",
    "ROLE_PERMISSIONS",
    "Permission",
    "Principal",
    "Role",
]


#: The OAuth scope that makes a provider token a no-PHI token.
NO_PHI_SCOPE = "radpacs:no-phi"


class Role(StrEnum):
    """What an account is for."""

    ADMIN = "admin"
    UPLOADER = "uploader"
    READER = "reader"
    SERVICE = "service"


class Permission(StrEnum):
    """What a route needs. PUBLIC needs no token; AUTHENTICATED needs any valid one."""

    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    READ = "read"
    COMPUTE = "compute"
    STORE = "store"
    DELETE = "delete"
    MANAGE = "manage"


_READER = frozenset({Permission.AUTHENTICATED, Permission.READ, Permission.COMPUTE})

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.READER: _READER,
    Role.UPLOADER: _READER | {Permission.STORE},
    Role.SERVICE: _READER | {Permission.STORE},
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a local account, an OIDC subject, or the no-auth local user.

    ``token_id`` is the ``jti`` of a radpacs token (empty for OIDC and no-auth);
    ``source`` is ``local``, ``oidc`` or ``no-auth``.
    """

    username: str
    roles: frozenset[Role]
    token_id: str = ""
    source: str = "local"
    expires_at: float = 0.0
    claims: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(Role(role) for role in self.roles))

    @property
    def permissions(self) -> frozenset[Permission]:
        """The union of what every role of the principal grants."""
        granted: set[Permission] = {Permission.PUBLIC}
        for role in self.roles:
            granted |= ROLE_PERMISSIONS[role]
        return frozenset(granted)

    @property
    def phi_allowed(self) -> bool:
        """False for a no-PHI token: a radpacs token with the claim ``"phi": false``, or a
        provider token whose ``scope`` holds ``radpacs:no-phi`` (docs/auth.md)."""
        if self.claims.get("phi") is False:
            return False
        scope = self.claims.get("scope", "")
        return not (isinstance(scope, str) and NO_PHI_SCOPE in scope.split())

    @property
    def study_scope(self) -> dict[str, str] | None:
        """For a callback app's token, the study and workitem it is limited to
        (``{"study": uid, "workitem": uid}``); None for every other principal."""
        scope = self.claims.get("study_scope")
        if self.source != "app" or not isinstance(scope, dict):
            return None
        return {str(key): str(value) for key, value in scope.items()}

    def can(self, permission: Permission | str) -> bool:
        """Whether one of the principal's roles grants ``permission``."""
        return Permission(permission) in self.permissions


ANONYMOUS = Principal("", frozenset())
"""Who a request on a public route acts as."""

LOCAL_USER = Principal("local", frozenset({Role.ADMIN}), source="no-auth")
"""Who every request acts as when ``auth_enabled`` is off (a single-user laptop)."""
