"""Accounts, tokens, roles and the access policy (the HTTP side is radpacs.http.access).

Passwords are Argon2id hashes (:mod:`.passwords`); radpacs tokens are HS256 JWTs with an
expiry and a revocable id (:mod:`.tokens`); provider tokens are checked against a JWKS
(:mod:`.oidc`); every route's permission is in one table (:mod:`.policy`).
"""

from radpacs.auth.authenticator import AccountDirectory, Authenticator
from radpacs.auth.oidc import OidcValidator, roles_from_claims
from radpacs.auth.passwords import hash_password, verify_password
from radpacs.auth.policy import POLICY, Rule, rule_for
from radpacs.auth.ratelimit import LoginLimiter
from radpacs.auth.roles import ROLE_PERMISSIONS, Permission, Principal, Role
from radpacs.auth.tokens import IssuedToken, TokenIssuer, signing_secret
from radpacs.auth.usernames import check_username

__all__ = [
    "POLICY",
    "ROLE_PERMISSIONS",
    "AccountDirectory",
    "Authenticator",
    "IssuedToken",
    "LoginLimiter",
    "OidcValidator",
    "Permission",
    "Principal",
    "Role",
    "Rule",
    "TokenIssuer",
    "check_username",
    "hash_password",
    "roles_from_claims",
    "rule_for",
    "signing_secret",
    "verify_password",
]
