"""The DIMSE service handlers: thin functions over the archive, bound with ``evt_handlers``.

Each handler checks the caller against the node table (:mod:`radpacs.dimse.nodes`), calls
the same :class:`~radpacs.archive.Archive` methods as DICOMweb, answers an explicit status,
and records one audit event. Statuses (PS3.4 B.2.3, C.4, PS3.7 C):

- 0x0000 success; 0x0124 refused, the node lacks the permission;
- C-STORE: 0xA700 out of resources (the index or the files failed, or the data set is larger
  than ``max_upload_bytes``), 0xA900 the data set
  does not match the SOP class of the request, 0xC000 cannot understand (unreadable data
  set, missing or malformed UIDs), 0x0111 another object is stored under that UID
  (``duplicate_policy: reject``);
- C-FIND: 0xA900 identifier does not match the SOP class (bad level or value), 0xA700;
  0xFE00 cancelled;
- C-MOVE / C-GET: 0xA801 unknown move destination, 0xC514 refused before any
  sub-operation (permission, identifier), then pynetdicom's sub-operation counts.

A C-STORE is stored only once its whole data set has arrived (pynetdicom writes it to a
temporary file, :mod:`radpacs.dimse.received`), in one :meth:`Archive.store_many` call, so an
aborted association leaves no partial instance behind; a large data set is stored from that
file without being held in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

from pydicom import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
)

from radpacs.archive import Archive, InstanceFile, Outcome
from radpacs.archive.audit import AuditLog, AuditRecord
from radpacs.archive.blobs import BlobData
from radpacs.dimse.find import QueryModel, find, instances_for
from radpacs.dimse.nodes import Caller, NodeTable, RefusedCaller
from radpacs.dimse.received import InstanceTooLarge, received_instance, sop_uids
from radpacs.errors import InvalidQuery, RadpacsError, StorageError
from radpacs.settings import DimsePermission

__all__ = ["DimseHandlers", "RefusedOperation"]

log = logging.getLogger(__name__)

SUCCESS = 0x0000
NOT_AUTHORIZED = 0x0124
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
CANCELLED = 0xFE00
PENDING = 0xFF00
_UNCOMPRESSED = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
_MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255


class RefusedOperation(RadpacsError):
    """A C-MOVE or C-GET refused before its sub-operations (pynetdicom answers 0xC514)."""


def _status(code: int, comment: str = "") -> Dataset:
    status = Dataset()
    status.Status = code
    if comment:
        status.ErrorComment = comment[:64]
    return status


def _model(sop_class_uid: str) -> QueryModel:
    patient_root = {
        PatientRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelMove,
        PatientRootQueryRetrieveInformationModelGet,
    }
    return QueryModel.PATIENT_ROOT if sop_class_uid in patient_root else QueryModel.STUDY_ROOT


def move_contexts(files: list[InstanceFile]) -> list[PresentationContext]:
    """Presentation contexts for sending ``files``: per SOP class, the uncompressed syntaxes,
    and one context per compressed syntax they are stored in (sent as stored)."""
    contexts: dict[tuple[str, str], PresentationContext] = {}
    for file in files:
        syntax = file.transfer_syntax_uid
        key = (file.sop_class_uid, "" if syntax in _UNCOMPRESSED else syntax)
        if key not in contexts and len(contexts) < _MAX_CONTEXTS:
            syntaxes: list[str | UID] = (
                [syntax] if key[1] else [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
            )
            contexts[key] = build_context(file.sop_class_uid, syntaxes)
    return list(contexts.values())


class DimseHandlers:
    """The handlers of one DIMSE server; :meth:`bindings` is its ``evt_handlers`` list.

    Example::

        handlers = DimseHandlers(archive, NodeTable.from_settings(settings), audit, "RADPACS")
        ae.start_server(("127.0.0.1", 11112), evt_handlers=handlers.bindings(), block=False)
    """

    def __init__(
        self,
        archive: Archive,
        nodes: NodeTable,
        audit: AuditLog | None,
        ae_title: str,
        commitment: Callable[[Event, Caller], Any] | None = None,
        worklist: Callable[[Dataset], Iterator[Dataset]] | None = None,
        max_instance_bytes: int = 4 * 1024**3,
    ) -> None:
        self.archive = archive
        self.max_instance_bytes = max_instance_bytes
        self.nodes = nodes
        self.audit = audit
        self.ae_title = ae_title
        self.commitment = commitment
        self.worklist = worklist

    def bindings(self) -> list[EventHandlerType]:
        handlers: list[EventHandlerType] = [
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_ESTABLISHED, self.on_established),
            (evt.EVT_ABORTED, self.on_aborted),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_C_MOVE, self.on_move),
            (evt.EVT_C_GET, self.on_get),
        ]
        if self.commitment is not None:
            handlers.append((evt.EVT_N_ACTION, self.on_commit))
        return handlers

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _calling(event: Event) -> tuple[str, str]:
        """The calling AE title (from the A-ASSOCIATE-RQ) and address of the requestor."""
        requestor = event.assoc.requestor
        primitive = requestor.primitive
        title = primitive.calling_ae_title if primitive is not None else requestor.ae_title
        return str(title).strip(), requestor.address

    def _caller(self, event: Event) -> Caller | RefusedCaller:
        return self.nodes.caller(*self._calling(event))

    def _record(
        self,
        event: Event,
        action: str,
        service: str,
        status: int,
        detail: str = "",
        study_uid: str = "",
        series_uid: str = "",
        sop_uid: str = "",
    ) -> None:
        if self.audit is None:
            return
        calling, address = self._calling(event)
        self.audit.record(
            AuditRecord(
                action=action,
                method=service,
                path=f"dimse://{self.ae_title}",
                status=status,
                username=calling,
                client=address,
                detail=detail,
                study_uid=study_uid,
                series_uid=series_uid,
                sop_uid=sop_uid,
            )
        )

    def _allowed(self, event: Event, permission: DimsePermission) -> Caller | None:
        caller = self._caller(event)
        if isinstance(caller, Caller) and caller.may(permission):
            return caller
        return None

    # ------------------------------------------------------------- association

    def on_requested(self, event: Event) -> None:
        """A-ASSOCIATE-RQ: refuse callers the node table does not accept (PS3.8 7.1.1.9)."""
        caller = self._caller(event)
        if isinstance(caller, RefusedCaller):
            log.warning("association refused: %s", caller.reason)
            self._record(event, "dimse-associate", "A-ASSOC", 1, caller.reason)
            event.assoc.acse.send_reject(0x01, 0x01, 0x03)  # permanent, user, calling AE
            event.assoc.kill()  # as pynetdicom's own rejections: the A-ASSOCIATE-RJ goes out

    def on_established(self, event: Event) -> None:
        primitive = event.assoc.requestor.primitive
        called = primitive.called_ae_title if primitive is not None else ""
        self._record(event, "dimse-associate", "A-ASSOC", 0, f"accepted, called {called}")

    def on_aborted(self, event: Event) -> None:
        self._record(event, "dimse-abort", "A-ABORT", 0, "association aborted")

    # ---------------------------------------------------------------- services

    def on_echo(self, event: Event) -> int:
        """C-ECHO (PS3.4 A.4): success for a node allowed to echo."""
        status = SUCCESS if self._allowed(event, DimsePermission.ECHO) else NOT_AUTHORIZED
        self._record(event, "dimse-echo", "C-ECHO", status)
        return status

    def on_store(self, event: Event) -> int | Dataset:
        """C-STORE (PS3.4 B.2): store the data set as received, exactly like STOW-RS."""
        request = cast(C_STORE, event.request)
        sop_uid = str(request.AffectedSOPInstanceUID or "")
        if not self._allowed(event, DimsePermission.STORE):
            self._record(event, "dimse-store", "C-STORE", NOT_AUTHORIZED, sop_uid=sop_uid)
            return NOT_AUTHORIZED
        status, detail, study_uid, series_uid = self._store(event)
        self._record(
            event,
            "dimse-store",
            "C-STORE",
            status,
            detail,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=sop_uid,
        )
        return _status(status, detail) if status else SUCCESS

    def _store(self, event: Event) -> tuple[int, str, str, str]:
        request = cast(C_STORE, event.request)
        try:
            with received_instance(event, self.max_instance_bytes) as payload:
                return self._store_payload(request, payload)
        except InstanceTooLarge as exc:
            log.warning(
                "C-STORE of %s from %s refused: %s (max_upload_bytes)",
                request.AffectedSOPInstanceUID,
                self._calling(event)[0],
                exc,
            )
            return OUT_OF_RESOURCES, f"{exc} (max_upload_bytes)", "", ""

    def _store_payload(self, request: C_STORE, payload: BlobData) -> tuple[int, str, str, str]:
        try:
            sop_class, sop_uid = sop_uids(payload)
        except Exception as exc:  # pydicom raises many kinds on a broken data set
            return CANNOT_UNDERSTAND, f"unreadable data set: {exc}", "", ""
        if sop_class != request.AffectedSOPClassUID or sop_uid != request.AffectedSOPInstanceUID:
            return (
                DOES_NOT_MATCH,
                f"data set is {sop_class or '-'} {sop_uid or '-'}, the request "
                f"{request.AffectedSOPClassUID} {request.AffectedSOPInstanceUID}",
                "",
                "",
            )
        try:
            [result] = self.archive.store_many([payload])
        except StorageError as exc:
            log.error("C-STORE of %s failed: %s", sop_uid, exc)
            return OUT_OF_RESOURCES, str(exc), "", ""
        if result.outcome is Outcome.FAILED:
            return result.failure_reason or CANNOT_UNDERSTAND, result.message, "", ""
        detail = "" if result.outcome is Outcome.STORED else result.outcome.value
        return SUCCESS, detail, result.study_uid, result.series_uid

    def on_find(self, event: Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        """C-FIND (PS3.4 C.4.1, K.4.1): the archive's matches, or the worklist's."""
        sop_class = str(event.request.AffectedSOPClassUID)
        if not self._allowed(event, DimsePermission.FIND):
            self._record(event, "dimse-find", "C-FIND", NOT_AUTHORIZED)
            yield NOT_AUTHORIZED, None
            return
        count = 0
        try:
            identifier = event.identifier
            if sop_class == ModalityWorklistInformationFind:
                if self.worklist is None:
                    raise InvalidQuery("this node keeps no modality worklist")
                responses = self.worklist(identifier)
            else:
                responses = find(self.archive, identifier, _model(sop_class), self.ae_title)
            for response in responses:
                if event.is_cancelled:
                    self._record(event, "dimse-find", "C-FIND", CANCELLED, f"{count} sent")
                    yield CANCELLED, None
                    return
                count += 1
                yield PENDING, response
        except InvalidQuery as exc:
            self._record(event, "dimse-find", "C-FIND", DOES_NOT_MATCH, str(exc))
            yield _status(DOES_NOT_MATCH, str(exc)), None
            return
        except StorageError as exc:
            self._record(event, "dimse-find", "C-FIND", OUT_OF_RESOURCES, str(exc))
            yield _status(OUT_OF_RESOURCES, str(exc)), None
            return
        except Exception as exc:  # a broken identifier pydicom cannot decode
            self._record(event, "dimse-find", "C-FIND", CANNOT_UNDERSTAND, str(exc))
            yield _status(CANNOT_UNDERSTAND, str(exc)), None
            return
        self._record(event, "dimse-find", "C-FIND", SUCCESS, f"{count} matches")
        yield SUCCESS, None

    def _retrieve_files(self, event: Event, permission: DimsePermission) -> list[InstanceFile]:
        service = "C-MOVE" if permission is DimsePermission.MOVE else "C-GET"
        action = f"dimse-{permission.value}"
        if not self._allowed(event, permission):
            self._record(event, action, service, NOT_AUTHORIZED)
            raise RefusedOperation(f"{self._calling(event)[0]} may not {permission}")
        try:
            model = _model(str(event.request.AffectedSOPClassUID))
            return instances_for(self.archive, event.identifier, model)
        except (InvalidQuery, StorageError) as exc:
            self._record(event, action, service, 0xC514, str(exc))
            raise RefusedOperation(str(exc)) from exc

    def _sub_operations(
        self, event: Event, files: list[InstanceFile]
    ) -> Iterator[tuple[int, Dataset | None]]:
        for file in files:
            if event.is_cancelled:
                yield CANCELLED, None
                return
            try:
                dataset = self.archive.read_file(file)
            except (StorageError, OSError) as exc:
                log.error("cannot read %s for a retrieve: %s", file.sop_uid, exc)
                yield OUT_OF_RESOURCES, None
                continue
            yield PENDING, dataset

    def on_move(self, event: Event) -> Iterator[Any]:
        """C-MOVE (PS3.4 C.4.2): send the matching instances to a configured destination."""
        destination = (event.move_destination or "").strip()
        files = self._retrieve_files(event, DimsePermission.MOVE)
        node = self.nodes.by_title(destination)
        if node is None:
            self._record(
                event, "dimse-move", "C-MOVE", 0xA801, f"unknown destination {destination}"
            )
            yield None, None
            return
        self._record(
            event,
            "dimse-move",
            "C-MOVE",
            SUCCESS,
            f"{len(files)} instances to {destination}",
            study_uid=files[0].study_uid if files else "",
        )
        yield node.host, node.port, {"contexts": move_contexts(files)}
        yield len(files)
        yield from self._sub_operations(event, files)

    def on_get(self, event: Event) -> Iterator[Any]:
        """C-GET (PS3.4 C.4.3): send the matching instances back on this association."""
        files = self._retrieve_files(event, DimsePermission.GET)
        self._record(
            event,
            "dimse-get",
            "C-GET",
            SUCCESS,
            f"{len(files)} instances",
            study_uid=files[0].study_uid if files else "",
        )
        yield len(files)
        yield from self._sub_operations(event, files)

    def on_commit(self, event: Event) -> tuple[int, Dataset | None]:
        """N-ACTION of Storage Commitment Push (PS3.4 J.3.2): accept, report later."""
        caller = self._allowed(event, DimsePermission.STORE)
        if caller is None or self.commitment is None:
            self._record(event, "dimse-commit", "N-ACTION", NOT_AUTHORIZED)
            return NOT_AUTHORIZED, None
        result: tuple[int, Dataset | None] = self.commitment(event, caller)
        self._record(event, "dimse-commit", "N-ACTION", result[0])
        return result
