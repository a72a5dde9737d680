"""radpacs access tokens: JWTs signed with HS256 by a per-installation secret (RFC 7519).

Claims: ``iss`` and ``aud`` are ``radpacs``, ``sub`` the account name, ``roles`` its roles
at issue time (informative: the account's current roles are what count), ``iat``, ``exp``
and a random ``jti`` by which the token can be revoked; ``phi`` (only when false) makes it
a no-PHI token: its requests never see patient-identifying attributes. A callback app's
token (:meth:`TokenIssuer.issue_scoped`) has no account: ``sub`` is ``app:<name>`` and
``study_scope`` names the one study and workitem it may reach.

The secret is the setting ``auth_secret`` when set, else 256 random bits kept in
``<data_dir>/auth-secret`` (mode 0600), created at first use. Every replica and worker
sharing the data folder then signs and checks with the same key. Deleting that file
invalidates every token issued so far.

Example::

    issuer = TokenIssuer(signing_secret(None, Path("data")), lifetime=timedelta(hours=8))
    issued = issuer.issue("ana", [Role.READER])
    issuer.decode(issued.token)["sub"]  # 'ana'
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt

from radpacs.auth.roles import Role
from radpacs.errors import AuthenticationError
from radpacs.keyfile import stored_secret

__all__ = [
    "ISSUER",
    "SCOPE_CLAIM",
    "SECRET_FILE_NAME",
    "IssuedToken",
    "TokenIssuer",
    "signing_secret",
]

ISSUER = "radpacs"
SECRET_FILE_NAME = "auth-secret"
_ALGORITHM = "HS256"
SCOPE_CLAIM = "study_scope"  # {"study": uid, "workitem": uid}: a callback app's token


def signing_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else the one in ``data_dir/auth-secret``, created if missing."""
    return stored_secret(configured, data_dir / SECRET_FILE_NAME, 32, "token secret")


@dataclass(frozen=True)
class IssuedToken:
    """A signed token, its id and when it expires (seconds since the epoch)."""

    token: str
    token_id: str
    expires_at: float


class TokenIssuer:
    """Signs and checks radpacs tokens with one HS256 secret."""

    def __init__(self, secret: bytes, lifetime: timedelta = timedelta(hours=8)) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret needs at least 32 bytes")
        self._secret = secret
        self.lifetime = lifetime

    def issue(
        self,
        username: str,
        roles: Iterable[Role | str],
        now: float | None = None,
        *,
        phi: bool = True,
    ) -> IssuedToken:
        """A token for ``username`` valid for :attr:`lifetime` from ``now``; ``phi=False``
        adds the claim ``"phi": false``, which forces the no-PHI view on every request."""
        issued_at = int(now if now is not None else time.time())
        expires_at = issued_at + int(self.lifetime.total_seconds())
        token_id = uuid.uuid4().hex
        claims = {
            "iss": ISSUER,
            "aud": ISSUER,
            "sub": username,
            "roles": sorted(Role(role).value for role in roles),
            "iat": issued_at,
            "exp": expires_at,
            "jti": token_id,
        }
        if not phi:
            claims["phi"] = False
        token = jwt.encode(claims, self._secret, algorithm=_ALGORITHM)
        return IssuedToken(token, token_id, float(expires_at))

    def issue_scoped(
        self,
        subject: str,
        study_uid: str,
        workitem_uid: str,
        lifetime: timedelta,
        now: float | None = None,
    ) -> IssuedToken:
        """A study-scoped token (a callback app's, docs/ai-apps.md): ``sub`` names the app,
        the claim ``study_scope`` the study and the workitem; no account stands behind it and
        it reaches only the routes of :data:`radpacs.auth.policy.SCOPED_ROUTES`."""
        issued_at = int(now if now is not None else time.time())
        expires_at = issued_at + int(lifetime.total_seconds())
        token_id = uuid.uuid4().hex
        claims = {
            "iss": ISSUER,
            "aud": ISSUER,
            "sub": subject,
            "roles": [Role.SERVICE.value],
            "iat": issued_at,
            "exp": expires_at,
            "jti": token_id,
            SCOPE_CLAIM: {"study": study_uid, "workitem": workitem_uid},
        }
        token = jwt.encode(claims, self._secret, algorithm=_ALGORITHM)
        return IssuedToken(token, token_id, float(expires_at))

    def decode(self, token: str) -> dict[str, Any]:
        """The claims of a token this issuer signed, or AuthenticationError saying why not."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=ISSUER,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("the token has expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError("the token signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the token is not valid: {exc}") from exc
        return claims
