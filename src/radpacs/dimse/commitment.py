"""Storage Commitment Push Model as SCP (PS3.4 Annex J).

A node that may store sends an N-ACTION (action type 1) listing SOP instances; radpacs
answers it at once and then reports, in an N-EVENT-REPORT, which of them it holds
(event type 1: all, or 2: some failed with FailureReason 0x0112 "no such object instance",
0x0119 "class/instance conflict"). The report goes on the same association when the node
still holds it open, else on a new association to the node's configured host and port,
radpacs taking the SCP role of the SOP class (PS3.4 J.3.3, role selection PS3.7 D.3.3.4).

Example::

    commitment = Commitment(settings, archive, nodes)
    handlers = DimseHandlers(..., commitment=commitment.on_action)
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pynetdicom import build_role
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from radpacs.archive import Archive, Level, parse_query
from radpacs.dimse._ae import make_ae
from radpacs.dimse.nodes import Caller, NodeTable
from radpacs.errors import InvalidQuery, RadpacsError
from radpacs.settings import Settings

__all__ = ["STORAGE_COMMITMENT_INSTANCE", "Commitment"]

log = logging.getLogger(__name__)

STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # the well-known instance (PS3.4 J.3.5)
NO_SUCH_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
_BATCH = 500


class Commitment:
    """Answers N-ACTION requests and sends the reports from a small thread pool."""

    def __init__(self, settings: Settings, archive: Archive, nodes: NodeTable) -> None:
        self.settings = settings
        self.archive = archive
        self.nodes = nodes
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="radpacs-commit")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def on_action(self, event: Event, caller: Caller) -> tuple[int, Dataset | None]:
        """Check the request, schedule the report, answer the N-ACTION (PS3.4 J.3.2)."""
        if event.action_type != 1:
            return 0x0123, None  # no such action
        try:
            info = event.action_information
            transaction = str(info.TransactionUID)
            references = [
                (str(item.ReferencedSOPClassUID), str(item.ReferencedSOPInstanceUID))
                for item in info.ReferencedSOPSequence
            ]
        except (AttributeError, KeyError, ValueError, TypeError) as exc:
            log.warning("storage commitment request from %s unreadable: %s", caller.ae_title, exc)
            return 0x0120, None  # missing attribute
        self._pool.submit(self._report, event.assoc, caller, transaction, references)
        return 0x0000, None

    def held(self, references: list[tuple[str, str]]) -> tuple[list[Any], list[Any]]:
        """(committed, failed) references: stored with that SOP class, or why not."""
        stored: dict[str, str] = {}
        uids = [sop for _, sop in references]
        for start in range(0, len(uids), _BATCH):
            chunk = uids[start : start + _BATCH]
            try:
                query = parse_query(
                    Level.INSTANCE,
                    [("SOPInstanceUID", "\\".join(chunk)), ("includefield", "SOPClassUID")],
                    max_results=_BATCH,
                )
            except InvalidQuery:
                continue  # malformed UIDs are not held
            for match in self.archive.search(query).matches:
                sop = match["00080018"]["Value"][0]
                stored[sop] = match["00080016"]["Value"][0]
        committed, failed = [], []
        for sop_class, sop in references:
            item = Dataset()
            item.ReferencedSOPClassUID = sop_class
            item.ReferencedSOPInstanceUID = sop
            if stored.get(sop) == sop_class:
                committed.append(item)
            else:
                item.FailureReason = (
                    NO_SUCH_INSTANCE if sop not in stored else CLASS_INSTANCE_CONFLICT
                )
                failed.append(item)
        return committed, failed

    def _report(
        self,
        assoc: Association,
        caller: Caller,
        transaction: str,
        references: list[tuple[str, str]],
    ) -> None:
        try:
            committed, failed = self.held(references)
            report = Dataset()
            report.TransactionUID = transaction
            if committed:
                report.ReferencedSOPSequence = DicomSequence(committed)
            if failed:
                report.FailedSOPSequence = DicomSequence(failed)
            event_type = 2 if failed else 1
            time.sleep(0.05)  # let the N-ACTION response go out first
            if assoc.is_established:
                self._send(assoc, report, event_type)
            else:
                self._send_new(caller, report, event_type)
            log.info(
                "storage commitment %s for %s: %d committed, %d failed",
                transaction,
                caller.ae_title,
                len(committed),
                len(failed),
            )
        except Exception:  # a report thread must log, not vanish
            log.exception("storage commitment report %s to %s failed", transaction, caller.ae_title)

    @staticmethod
    def _send(assoc: Association, report: Dataset, event_type: int) -> None:
        status, _ = assoc.send_n_event_report(
            report, event_type, StorageCommitmentPushModel, STORAGE_COMMITMENT_INSTANCE
        )
        if status is None or int(status.get("Status", 0xFFFF)) != 0:
            raise RadpacsError(f"N-EVENT-REPORT answered {status}")

    def _send_new(self, caller: Caller, report: Dataset, event_type: int) -> None:
        node = self.nodes.by_title(caller.ae_title)
        if node is None:
            raise RadpacsError(f"{caller.ae_title} is not a configured node: nowhere to report")
        ae = make_ae(self.settings)
        ae.add_requested_context(StorageCommitmentPushModel)
        role = build_role(StorageCommitmentPushModel, scp_role=True)
        assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, ext_neg=[role])
        if not assoc.is_established:
            raise RadpacsError(f"{node.ae_title} at {node.host}:{node.port} refused the report")
        try:
            self._send(assoc, report, event_type)
        finally:
            assoc.release()
