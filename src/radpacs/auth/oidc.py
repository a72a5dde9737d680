"""Tokens from an external OpenID Connect provider, checked against its JWKS (RFC 7517).

A token is accepted when its signature verifies with a key of the provider's JWKS (fetched
from ``jwks_url`` and cached), its ``iss`` and ``aud`` are the configured ones and it has
not expired. Only asymmetric algorithms are allowed, so a token cannot pass by being
signed with a public key used as an HMAC secret.

Roles come from the claim named by ``roles_claim`` (a dotted path such as
``realm_access.roles``; a list, or a space-separated string) mapped through ``role_map``
(provider name -> radpacs role); a provider name equal to a radpacs role maps to itself.
The account name is the ``username_claim``, else ``sub``.

Example::

    validator = OidcValidator("https://idp/realms/x", "radpacs", "https://idp/.../certs")
    validator.principal(token).roles  # frozenset({Role.READER})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from radpacs.auth.roles import Principal, Role
from radpacs.errors import AuthenticationError

__all__ = ["ASYMMETRIC_ALGORITHMS", "OidcValidator", "roles_from_claims"]

ASYMMETRIC_ALGORITHMS = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
]  # fmt: skip


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for step in path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


def roles_from_claims(
    claims: Mapping[str, Any], roles_claim: str, role_map: Mapping[str, str]
) -> frozenset[Role]:
    """The radpacs roles that the provider's role names in ``roles_claim`` map to."""
    value = _claim(claims, roles_claim)
    names = value.split() if isinstance(value, str) else value
    if not isinstance(names, list):
        return frozenset()
    known = {role.value for role in Role}
    roles: set[Role] = set()
    for name in names:
        if not isinstance(name, str):
            continue
        mapped = role_map.get(name, name if name in known else None)
        if mapped in known:
            roles.add(Role(mapped))
    return frozenset(roles)


class OidcValidator:
    """Checks tokens of one OIDC provider and turns their claims into a :class:`Principal`."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks_url: str,
        username_claim: str = "preferred_username",
        roles_claim: str = "roles",
        role_map: Mapping[str, str] | None = None,
        jwks_cache_seconds: int = 300,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.username_claim = username_claim
        self.roles_claim = roles_claim
        self.role_map = dict(role_map or {})
        self._jwks = jwt.PyJWKClient(
            jwks_url, cache_keys=True, lifespan=jwks_cache_seconds, timeout=5
        )

    def principal(self, token: str) -> Principal:
        """The principal a valid provider token names, or AuthenticationError saying why not."""
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ASYMMETRIC_ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("the identity provider token has expired") from exc
        except jwt.PyJWKClientError as exc:
            raise AuthenticationError(f"no key of the identity provider fits: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the identity provider token is not valid: {exc}") from exc
        username = claims.get(self.username_claim) or claims["sub"]
        return Principal(
            username=str(username),
            roles=roles_from_claims(claims, self.roles_claim, self.role_map),
            token_id=str(claims.get("jti", "")),
            source="oidc",
            expires_at=float(claims["exp"]),
            claims=claims,
        )
