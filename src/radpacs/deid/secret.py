"""The per-installation secret that keys every de-identification pseudonym.

The secret is the setting ``deid_secret`` (``RADPACS_DEID_SECRET``) when set. Otherwise
it is generated at first use (256 random bits, as 64 hex digits) and kept in
``<data_dir>/deid-secret`` with mode 0600, so that pseudonyms stay stable across
restarts and separate uploads of one patient stay linked. Losing that file unlinks all
later uploads from earlier ones; copying it to another installation links them.
"""

from __future__ import annotations

from pathlib import Path

from radpacs.keyfile import stored_secret

__all__ = ["SECRET_FILE_NAME", "installation_secret"]

SECRET_FILE_NAME = "deid-secret"


def installation_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else the one kept in ``data_dir``, created there if missing.

    Raises :class:`~radpacs.errors.ConfigurationError` when the file cannot be read or
    written, or holds fewer than 16 bytes.
    """
    return stored_secret(configured, data_dir / SECRET_FILE_NAME, 16, "de-identification secret")
