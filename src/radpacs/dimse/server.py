"""The DIMSE server: a pynetdicom Application Entity listening for associations.

It accepts Verification, every storage SOP class (as SCP, and as SCU for C-GET with role
selection, PS3.7 D.3.3.4) in every transfer syntax pydicom knows, Query/Retrieve FIND, MOVE
and GET in the patient and study root models, Modality Worklist FIND and Storage Commitment
Push (docs/dimse.md has the conformance statement). The handlers
(:mod:`radpacs.dimse.handlers`) run in pynetdicom's one thread per association.

Example::

    server = DimseServer(settings, archive, audit)
    server.start()          # returns at once; ConfigurationError if the port is taken
    ...
    server.stop()
"""

from __future__ import annotations

import logging

from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from radpacs.archive import Archive
from radpacs.archive.audit import AuditLog
from radpacs.dimse._ae import make_ae
from radpacs.dimse.commitment import Commitment
from radpacs.dimse.handlers import DimseHandlers
from radpacs.dimse.nodes import NodeTable
from radpacs.dimse.worklist import Worklist
from radpacs.errors import ConfigurationError
from radpacs.settings import Settings

__all__ = ["DimseServer", "make_ae"]

log = logging.getLogger(__name__)

_QUERY_RETRIEVE = [
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    ModalityWorklistInformationFind,
]


class DimseServer:
    """Listens on ``dimse_listen_host:dimse_port`` as ``dimse_ae_title`` over ``archive``."""

    def __init__(self, settings: Settings, archive: Archive, audit: AuditLog | None) -> None:
        self.settings = settings
        self.archive = archive
        self.nodes = NodeTable.from_settings(settings)
        self.commitment = Commitment(settings, archive, self.nodes)
        self.handlers = DimseHandlers(
            archive,
            self.nodes,
            audit,
            settings.dimse_ae_title,
            commitment=self.commitment.on_action,
            worklist=Worklist(archive.engine).find,
            max_instance_bytes=settings.max_upload_bytes,
        )
        self._server: ThreadedAssociationServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on (the real port when 0 was asked)."""
        if self._server is None:
            return (self.settings.dimse_listen_host, self.settings.dimse_port)
        host, port = self._server.server_address[:2]
        return (str(host), int(port))

    def start(self) -> None:
        """Start listening in background threads."""
        ae = make_ae(self.settings)
        ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
        for context in AllStoragePresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(
                context.abstract_syntax, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True
            )
        for sop_class in _QUERY_RETRIEVE:
            ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(StorageCommitmentPushModel, ALL_TRANSFER_SYNTAXES)
        address = (self.settings.dimse_listen_host, self.settings.dimse_port)
        try:
            server = ae.start_server(address, block=False, evt_handlers=self.handlers.bindings())
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen for DICOM on {address[0]}:{address[1]}: {exc.strerror or exc}; "
                "set dimse_port, or dimse_enabled: false"
            ) from exc
        assert server is not None
        self._server = server
        log.info(
            "DICOM node %s listening on %s:%d",
            self.settings.dimse_ae_title,
            *self.address,
        )

    def stop(self) -> None:
        """Stop listening and end the open associations."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.commitment.close()
