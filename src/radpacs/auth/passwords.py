"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile).

Example::

    stored = hash_password("correct horse")
    verify_password(stored, "correct horse")  # True
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["MIN_PASSWORD_LENGTH", "check_password_strength", "hash_password", "verify_password"]

MIN_PASSWORD_LENGTH = 8
_HASHER = PasswordHasher()
# Verified against when the account does not exist, so that a wrong name costs as much
# time as a wrong password and names cannot be guessed from response times.
_DUMMY_HASH = _HASHER.hash("radpacs-no-such-account")


def check_password_strength(password: str) -> None:
    """ValueError unless the password has at least :data:`MIN_PASSWORD_LENGTH` characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` in PHC string form (salt and parameters included)."""
    check_password_strength(password)
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; None (no account) takes as long and fails."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
