"""The per-installation secret that keys every de-identification pseudonym.

The secret is the setting ``deid_secret`` (``RADPACS_DEID_SECRET``) when set. Otherwise
it is generated at first use (256 random bits, as 64 hex digits) and kept in
``<data_dir>/deid-secret`` with mode 0600, so that pseudonyms stay stable across
restarts and separate uploads of one patient stay linked. Losing that file unlinks all
later uploads from earlier ones; copying it to another installation links them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from radpacs.errors import ConfigurationError

__all__ = ["SECRET_FILE_NAME", "installation_secret"]

SECRET_FILE_NAME = "deid-secret"


def installation_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else the one kept in ``data_dir``, created there if missing.

    Raises :class:`~radpacs.errors.ConfigurationError` when the file cannot be read or
    written, or holds fewer than 16 bytes.
    """
    if configured:
        return configured.encode("utf-8")
    path = data_dir / SECRET_FILE_NAME
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            value = path.read_bytes().strip()
        else:
            value = secrets.token_hex(32).encode("ascii")
            with os.fdopen(fd, "wb") as handle:
                handle.write(value + b"\n")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read or create the de-identification secret {path}: {exc}"
        ) from exc
    if len(value) < 16:
        raise ConfigurationError(f"the de-identification secret in {path} is shorter than 16 bytes")
    return value
