"""Secrets kept in the data folder: read one, or create it (256 random bits, mode 0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from radpacs.errors import ConfigurationError

__all__ = ["stored_secret"]


def stored_secret(configured: str | None, path: Path, minimum: int, purpose: str) -> bytes:
    """``configured`` when given, else the secret in ``path``, created there if missing.

    ConfigurationError names ``purpose`` when the file cannot be read or written, or holds
    fewer than ``minimum`` bytes. Creation is exclusive, so two processes starting at once
    end up with the same secret.
    """
    if configured:
        return configured.encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            value = path.read_bytes().strip()
        else:
            value = secrets.token_hex(32).encode("ascii")
            with os.fdopen(fd, "wb") as handle:
                handle.write(value + b"\n")
    except OSError as exc:
        raise ConfigurationError(f"cannot read or create the {purpose} {path}: {exc}") from exc
    if len(value) < minimum:
        raise ConfigurationError(f"the {purpose} in {path} is shorter than {minimum} bytes")
    return value
