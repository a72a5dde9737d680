"""radpacs's pynetdicom Application Entity, configured from the settings."""

from __future__ import annotations

from pynetdicom import AE, _config

from radpacs.settings import Settings

__all__ = ["make_ae"]


def make_ae(settings: Settings) -> AE:
    """radpacs's Application Entity with its timeouts and limits (acceptor and requestor).

    Incoming C-STORE data sets are written to temporary files as they arrive, never held
    whole in memory (pynetdicom's ``STORE_RECV_CHUNKED_DATASET``, a process-wide switch that
    every radpacs handler reads through :mod:`radpacs.dimse.received`)."""
    _config.STORE_RECV_CHUNKED_DATASET = True
    ae = AE(ae_title=settings.dimse_ae_title)
    ae.maximum_associations = settings.dimse_max_associations
    ae.acse_timeout = settings.dimse_timeout
    ae.dimse_timeout = settings.dimse_timeout
    ae.network_timeout = settings.dimse_timeout
    ae.require_called_aet = settings.dimse_check_called_ae
    return ae
