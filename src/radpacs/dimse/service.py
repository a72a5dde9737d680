"""Starting the DICOM node beside the HTTP server, or on its own (``radpacs dimse``).

:func:`open_dimse` starts a :class:`DimseServer` on an archive that is already open, so
instances arriving over DIMSE reach the same listeners (AI rules, follow-up) as STOW-RS.
:func:`start_node` opens its own services (archive, audit writer, AI arrival rules) around a server
(the parent of several ``radpacs serve`` workers runs it); :func:`run_node` is the whole
process of ``radpacs dimse``, until SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from radpacs.archive import Archive
from radpacs.archive.audit import AuditLog
from radpacs.dimse.server import DimseServer
from radpacs.settings import Settings

__all__ = ["open_dimse", "run_node", "start_node"]

log = logging.getLogger(__name__)


def open_dimse(settings: Settings, archive: Archive, audit: AuditLog | None) -> DimseServer | None:
    """Start the DICOM node when ``dimse_enabled``; None when it is off."""
    if not settings.dimse_enabled:
        return None
    server = DimseServer(settings, archive, audit)
    server.start()
    return server


def start_node(settings: Settings) -> Callable[[], None]:
    """Open the services (archive, audit writer, jobs, AI arrival rules) and start the server
    on them; the closer."""
    from radpacs.services import Services

    services = Services.open(settings)
    server = DimseServer(settings, services.archive, services.auth.audit)

    def close() -> None:
        server.stop()
        services.close()

    try:
        server.start()
    except BaseException:
        services.close()
        raise
    return close


def run_node(settings: Settings) -> None:
    """Serve DIMSE alone (``radpacs dimse``) until SIGINT or SIGTERM."""
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    close = start_node(settings)
    try:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        stop.wait()
    finally:
        close()
