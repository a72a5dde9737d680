"""From a bearer token to a :class:`Principal`: radpacs tokens, or OIDC provider tokens.

A token whose header says HS256 is a radpacs token: its signature, expiry, issuer and
audience are checked, then the account directory confirms that the account still exists
and the token was not revoked, and gives the account's current roles. A study-scoped token
of a callback app has no account: it acts with the service role, limited to its study by
the access control (:data:`radpacs.auth.policy.SCOPED_ROUTES`). Any other algorithm
is a provider token, checked by the :class:`OidcValidator` when one is configured and
refused otherwise.
"""

from __future__ import annotations

from typing import Protocol

import jwt

from radpacs.auth.oidc import OidcValidator
from radpacs.auth.roles import Principal, Role
from radpacs.auth.tokens import SCOPE_CLAIM, TokenIssuer
from radpacs.errors import AuthenticationError

__all__ = ["AccountDirectory", "Authenticator"]


class AccountDirectory(Protocol):
    """What token checking needs from the account store."""

    def active_roles(self, username: str, token_id: str) -> frozenset[Role] | None:
        """The account's roles, or None if it is gone or ``token_id`` is revoked."""
        ...


class Authenticator:
    """Turns a token into a principal or raises AuthenticationError."""

    def __init__(
        self,
        issuer: TokenIssuer,
        directory: AccountDirectory,
        oidc: OidcValidator | None = None,
    ) -> None:
        self.issuer = issuer
        self.directory = directory
        self.oidc = oidc

    def authenticate(self, token: str) -> Principal:
        """The principal ``token`` stands for."""
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise AuthenticationError("the token is not a JWT") from exc
        if algorithm != "HS256":
            if self.oidc is None:
                raise AuthenticationError(
                    f"tokens signed with {algorithm} are not accepted (jwt_validate is off)"
                )
            return self.oidc.principal(token)
        claims = self.issuer.decode(token)
        username, token_id = str(claims["sub"]), str(claims["jti"])
        if SCOPE_CLAIM in claims:  # a callback app's token: no account, only its study
            scope = claims[SCOPE_CLAIM]
            if not isinstance(scope, dict) or not scope.get("study"):
                raise AuthenticationError("the token's study scope is malformed")
            return Principal(
                username,
                frozenset({Role.SERVICE}),
                token_id=token_id,
                source="app",
                expires_at=float(claims["exp"]),
                claims=claims,
            )
        roles = self.directory.active_roles(username, token_id)
        if roles is None:
            raise AuthenticationError("the token was revoked or its account removed")
        return Principal(
            username, roles, token_id=token_id, expires_at=float(claims["exp"]), claims=claims
        )
