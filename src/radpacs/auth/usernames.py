"""What an account name (or a workshop IDUL) may look like."""

from __future__ import annotations

import re

__all__ = ["check_username"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def check_username(name: str) -> str:
    """``name`` stripped, or ValueError: 1-64 letters, digits, ``._@-``, not starting with one of
    ``._@-``."""
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid account name (1-64 letters, digits, '.', '_', '@', '-')"
        )
    return name
