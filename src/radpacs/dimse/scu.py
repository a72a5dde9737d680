"""radpacs as a DIMSE SCU: echo, query, send to, and retrieve from a remote node.

Each function opens one association as ``dimse_ae_title`` to a configured node
(:class:`~radpacs.settings.DimseNode`), does its work, and releases it. A node that cannot
be reached, refuses the association or answers a failure raises
:class:`~radpacs.errors.RemoteNodeError` naming the node and the reason; pynetdicom's own
errors are translated here. ``progress(done, total)`` is called after each instance.

- :func:`echo` C-ECHO (PS3.4 A.4);
- :func:`query` C-FIND, study root, at STUDY, SERIES or IMAGE level (PS3.4 C.4.1);
- :func:`send` C-STORE of a study or series of the archive (PS3.4 B.2);
- :func:`move` C-MOVE from the node to radpacs itself (its DIMSE server receives), or to
  another destination AE title (PS3.4 C.4.2);
- :func:`get` C-GET from the node: instances come back on the same association and are
  stored like STOW-RS (PS3.4 C.4.3).

Example::

    node = settings.dimse_nodes["orthanc"]
    echo(settings, node)
    studies = query(settings, node, "STUDY", {"PatientID": "P1", "StudyInstanceUID": ""})
    report = get(settings, node, archive, studies[0].StudyInstanceUID)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from radpacs.archive import Archive, Outcome
from radpacs.dimse._ae import make_ae
from radpacs.dimse.handlers import move_contexts
from radpacs.dimse.received import received_instance
from radpacs.errors import InvalidQuery, RemoteNodeError
from radpacs.settings import DimseNode, Settings

__all__ = ["TransferReport", "echo", "get", "move", "query", "send"]

Progress = Callable[[int, int], None]
_LEVELS = ("STUDY", "SERIES", "IMAGE")


@dataclass
class TransferReport:
    """What a send or retrieve did: instances completed, failed, and the failures' reasons."""

    total: int = 0
    completed: int = 0
    failed: int = 0
    warnings: int = 0
    errors: list[str] = field(default_factory=list)


def _nothing(done: int, total: int) -> None:
    pass


@contextmanager
def _association(
    settings: Settings,
    node: DimseNode,
    contexts: list[PresentationContext] | None = None,
    ae: AE | None = None,
    **kwargs: Any,
) -> Iterator[Association]:
    ae = ae or make_ae(settings)
    try:
        assoc = ae.associate(
            node.host, node.port, contexts=contexts, ae_title=node.ae_title, **kwargs
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise RemoteNodeError(node.ae_title, f"cannot associate: {exc}") from exc
    if not assoc.is_established:
        reason = "rejected the association" if assoc.is_rejected else "did not answer"
        raise RemoteNodeError(node.ae_title, f"{node.host}:{node.port} {reason}")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _context(abstract_syntax: str) -> list[PresentationContext]:
    ae = AE()
    ae.add_requested_context(abstract_syntax)
    return list(ae.requested_contexts)


def _status(dataset: Dataset | None, node: DimseNode, what: str) -> int:
    if dataset is None or "Status" not in dataset:
        raise RemoteNodeError(node.ae_title, f"{what}: no answer (timeout or aborted association)")
    return int(dataset.Status)


def echo(settings: Settings, node: DimseNode) -> None:
    """C-ECHO the node; RemoteNodeError unless it answers success."""
    with _association(settings, node, _context(Verification)) as assoc:
        status = _status(assoc.send_c_echo(), node, "C-ECHO")
    if status != 0:
        raise RemoteNodeError(node.ae_title, f"C-ECHO answered status 0x{status:04X}")


def _identifier(level: str, keys: dict[str, str]) -> Dataset:
    level = level.upper()
    if level not in _LEVELS:
        raise InvalidQuery(f"level {level!r} is not STUDY, SERIES or IMAGE")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        try:
            setattr(identifier, keyword, value)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidQuery(f"{keyword}={value!r}: {exc}") from exc
    return identifier


def query(settings: Settings, node: DimseNode, level: str, keys: dict[str, str]) -> list[Dataset]:
    """C-FIND in the study root model; one Dataset per match. Empty values are return keys."""
    identifier = _identifier(level, keys)
    found: list[Dataset] = []
    with _association(settings, node, _context(StudyRootQueryRetrieveInformationModelFind)) as a:
        for status, match in a.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
            code = _status(status, node, "C-FIND")
            if code in (0xFF00, 0xFF01) and match is not None:
                found.append(match)
            elif code != 0:
                comment = str(status.get("ErrorComment", ""))
                raise RemoteNodeError(node.ae_title, f"C-FIND failed 0x{code:04X} {comment}")
    return found


def send(
    settings: Settings,
    node: DimseNode,
    archive: Archive,
    study_uid: str,
    series_uid: str | None = None,
    progress: Progress = _nothing,
) -> TransferReport:
    """C-STORE a study or series of the archive to the node, each instance as stored."""
    files = archive.instance_files(study_uid, series_uid)
    report = TransferReport(total=len(files))
    with _association(settings, node, move_contexts(files)) as assoc:
        for file in files:
            try:
                status = _status(assoc.send_c_store(archive.read_file(file)), node, "C-STORE")
            except (ValueError, RuntimeError) as exc:  # no accepted context for this syntax
                status, reason = 0xA900, str(exc)
            else:
                reason = f"status 0x{status:04X}"
            if status == 0:
                report.completed += 1
            elif status in (0xB000, 0xB007, 0xB006):
                report.warnings += 1
                report.completed += 1
            else:
                report.failed += 1
                report.errors.append(f"{file.sop_uid}: {reason}")
            progress(report.completed + report.failed, report.total)
            if not assoc.is_established:
                raise RemoteNodeError(node.ae_title, "the association ended during the send")
    return report


def _retrieve_identifier(study_uid: str, series_uid: str | None) -> Dataset:
    keys = {"StudyInstanceUID": study_uid}
    if series_uid:
        keys["SeriesInstanceUID"] = series_uid
    return _identifier("SERIES" if series_uid else "STUDY", keys)


def _counts(report: TransferReport, status: Dataset) -> None:
    for attribute, name in (
        ("NumberOfCompletedSuboperations", "completed"),
        ("NumberOfFailedSuboperations", "failed"),
        ("NumberOfWarningSuboperations", "warnings"),
    ):
        if attribute in status:
            setattr(report, name, int(getattr(status, attribute)))
    if "NumberOfRemainingSuboperations" in status:
        report.total = (
            report.completed
            + report.failed
            + report.warnings
            + int(status.NumberOfRemainingSuboperations)
        )


def _retrieve_responses(
    responses: Iterator[tuple[Dataset, Dataset | None]],
    node: DimseNode,
    what: str,
    progress: Progress,
) -> TransferReport:
    report = TransferReport()
    for status, _ in responses:
        code = _status(status, node, what)
        _counts(report, status)
        if code == 0xFF00:
            progress(report.completed + report.failed, report.total)
        elif code not in (0x0000, 0xB000):
            comment = str(status.get("ErrorComment", ""))
            report.errors.append(f"{what} answered 0x{code:04X} {comment}".strip())
    report.total = max(report.total, report.completed + report.failed + report.warnings)
    progress(report.completed + report.failed, report.total)
    if report.errors and not report.completed:
        raise RemoteNodeError(node.ae_title, "; ".join(report.errors))
    return report


def move(
    settings: Settings,
    node: DimseNode,
    study_uid: str,
    series_uid: str | None = None,
    destination: str | None = None,
    progress: Progress = _nothing,
) -> TransferReport:
    """C-MOVE a study or series from the node to ``destination`` (default: radpacs's own AE
    title, so radpacs's DIMSE server receives and stores it; the node must know that AE)."""
    identifier = _retrieve_identifier(study_uid, series_uid)
    target = destination or settings.dimse_ae_title
    model = StudyRootQueryRetrieveInformationModelMove
    with _association(settings, node, _context(model)) as assoc:
        return _retrieve_responses(
            assoc.send_c_move(identifier, target, model), node, "C-MOVE", progress
        )


def get(
    settings: Settings,
    node: DimseNode,
    archive: Archive,
    study_uid: str,
    series_uid: str | None = None,
    progress: Progress = _nothing,
) -> TransferReport:
    """C-GET a study or series from the node and store what arrives in ``archive``."""
    identifier = _retrieve_identifier(study_uid, series_uid)
    stored: list[str] = []

    def on_store(event: Event) -> int:
        try:
            with received_instance(event, settings.max_upload_bytes) as payload:
                [result] = archive.store_many([payload])
        except Exception:  # too large, or the store failed: the sub-operation fails
            return 0xA700
        if result.outcome is Outcome.FAILED:
            return result.failure_reason or 0xC000
        stored.append(result.sop_instance_uid)
        return 0

    ae = make_ae(settings)
    model = StudyRootQueryRetrieveInformationModelGet
    storage = StoragePresentationContexts[:127]  # with the GET context: 128 at most (PS3.8)
    contexts = _context(model) + list(storage)
    roles = [build_role(str(c.abstract_syntax), scp_role=True) for c in storage]
    with _association(
        settings,
        node,
        contexts,
        ae=ae,
        ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    ) as assoc:
        return _retrieve_responses(assoc.send_c_get(identifier, model), node, "C-GET", progress)
