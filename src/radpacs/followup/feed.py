"""Feeding the follow-up from the archive: every stored SEG, RTSTRUCT and measurement SR.

:class:`FollowupService` listens to the archive (:meth:`Archive.add_listener` and
:meth:`Archive.add_delete_listener`). Each study with a stored source goes through
:meth:`schedule`, the one place that decides how the work runs: in a server (and in an AI
job's worker) it queues a durable ``followup.study`` job (:mod:`radpacs.followup.jobs`),
which a worker runs;
without a job submitter (scripts, tests) it runs at once, after the store committed (a
failure never undoes the store).

For each source: read it, extract its findings (:mod:`radpacs.followup.extract`) with the
geometry of the images it was made on (the body's centre as the anchor for matching across
frames of reference), record them with a note (or record the refusal and its reason,
without any finding: nothing half-written), then re-compute the patient
(:func:`radpacs.followup.tracking.track`) with the stored corrections. A deleted source's
findings go, and its patient is re-computed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pydicom import Dataset

from radpacs.archive import Archive, Level, Outcome, StoreResult, parse_query
from radpacs.archive.followup_store import FollowupStore
from radpacs.errors import InvalidInput, NotFound, RadpacsError, StorageError
from radpacs.followup.export import is_followup_report
from radpacs.followup.extract import (
    ImageGeometry,
    findings_from_dataset,
    referenced_series,
    source_kind,
)
from radpacs.followup.geometry import series_anchor
from radpacs.followup.jobs import RECOMPUTE, STUDY, Submit
from radpacs.followup.model import Finding, SourceKind
from radpacs.followup.response import Criteria
from radpacs.followup.tracking import Correction, CorrectionKind, PatientFollowup, track
from radpacs.settings import Settings

__all__ = ["FollowupService"]

log = logging.getLogger(__name__)

Anchor = tuple[float, float, float] | None


class FollowupService:
    """The follow-up of every patient, kept up to date from the archive (see the module)."""

    def __init__(
        self,
        archive: Archive,
        store: FollowupStore | None = None,
        criteria: Criteria = Criteria(),
        rano: bool = False,
        submit: Submit | None = None,
    ) -> None:
        self.archive = archive
        self.submit = submit
        self.store = store or FollowupStore(archive.engine)
        self.criteria = criteria
        self.rano = rano
        self._anchors: OrderedDict[str, Anchor] = OrderedDict()
        self._lock = threading.Lock()
        self._patient_locks: dict[str, threading.Lock] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, archive: Archive, submit: Submit | None = None
    ) -> FollowupService:
        """The service with the criteria of the ``followup_*`` settings; ``submit`` queues
        its work as jobs (:mod:`radpacs.followup.jobs`), else it runs at once."""
        criteria = Criteria(
            volume_pr_percent=settings.followup_volume_pr_percent,
            volume_pd_percent=settings.followup_volume_pd_percent,
        )
        return cls(archive, criteria=criteria, rano=settings.followup_rano_bm, submit=submit)

    def attach(self) -> FollowupService:
        """Start listening to the archive's stores and deletes."""
        self.archive.add_listener(self.on_stored)
        self.archive.add_delete_listener(self.on_deleted)
        return self

    # ------------------------------------------------------------------- feeding

    def on_stored(self, results: list[StoreResult]) -> None:
        studies = dict.fromkeys(
            result.study_uid
            for result in results
            if result.outcome in (Outcome.STORED, Outcome.REPLACED)
            and source_kind(result.sop_class_uid)
        )
        for study_uid in studies:
            self.schedule(study_uid)

    def on_deleted(self, sop_uids: list[str]) -> None:
        """Forget the deleted sources at once; re-compute their patients (as jobs)."""
        for patient_id in self.store.remove_sources(sop_uids):
            if self.submit is not None:
                self.submit(RECOMPUTE, {"patient_id": patient_id}, patient_id, patient_id)
            else:
                self.recompute(patient_id)

    def schedule(self, study_uid: str) -> None:
        """Have a study's new sources read into the follow-up: a ``followup.study`` job when
        the service has a job submitter (the server, an AI worker), else at once.

        When the study's job is already running (it may have looked at the study before
        this store), the next key queues one more, so that nothing is missed.
        """
        try:
            if self.submit is None:
                self.ingest_study(study_uid)
                return
            for n in range(10):
                key = study_uid if n == 0 else f"{study_uid}:{n}"
                if self.submit(STUDY, {"study_uid": study_uid}, key, f"follow-up {study_uid}"):
                    return
            log.warning("follow-up of study %s: ten jobs are running for it", study_uid)
        except RadpacsError:
            log.exception("follow-up of study %s failed", study_uid)

    def ingest_study(
        self, study_uid: str, progress: Callable[[int, int], None] | None = None
    ) -> list[dict[str, Any]]:
        """Read every SEG, RTSTRUCT and SR of a study not read yet (or whose file changed),
        then re-compute each patient concerned once; the records of the sources read.
        ``progress(done, total)`` is called after each source (a job's heartbeat)."""
        records: list[dict[str, Any]] = []
        for _ in range(5):  # objects stored meanwhile are read in the next round
            try:
                files = self.archive.instance_files(study_uid)
            except NotFound:
                break
            known = self.store.source_digests(study_uid)
            new = [
                f
                for f in files
                if source_kind(f.sop_class_uid) and known.get(f.sop_uid) != f.digest
            ]
            if not new:
                break
            for done, file in enumerate(new, start=1):
                try:
                    records.append(self.ingest(file.sop_uid, digest=file.digest, recompute=False))
                except NotFound:  # deleted meanwhile
                    continue
                finally:
                    if progress is not None:
                        progress(done, len(new) + 1)
        for patient_id in dict.fromkeys(r["patient_id"] for r in records if r["patient_id"]):
            self.recompute(patient_id)
        if progress is not None:
            progress(1, 1)
        return records

    def ingest(self, sop_uid: str, digest: str = "", recompute: bool = True) -> dict[str, Any]:
        """Read one stored source, record its findings or its refusal, re-compute its patient
        (unless ``recompute`` is False). ``digest`` is the stored file's, recorded so that a
        replaced file is read again.

        Returns the source's record: ``state`` ``ok``, ``refused`` or ``skipped`` (radpacs's
        own follow-up report) and the ``note``.
        """
        ds = self.archive.read_dataset(sop_uid)
        kind = source_kind(str(ds.get("SOPClassUID", "")))
        if kind is None:
            raise InvalidInput(f"instance {sop_uid} is not a SEG, RTSTRUCT or SR")
        patient_id = str(ds.get("PatientID", "") or "")
        record: dict[str, Any] = {
            "sop_uid": sop_uid,
            "patient_id": patient_id,
            "patient_name": str(ds.get("PatientName", "") or ""),
            "study_uid": str(ds.get("StudyInstanceUID", "")),
            "series_uid": str(ds.get("SeriesInstanceUID", "")),
            "kind": kind.value,
        }
        if is_followup_report(ds):  # our own export: a summary, not a new measurement
            note = "radpacs's follow-up report: not read back as measurements"
            self.store.record_source(
                **record, findings=[], note=note, state="skipped", digest=digest
            )
            record.update(state="skipped", note=note, findings=0)
            return record
        try:
            if not patient_id:
                raise InvalidInput("the object has no PatientID: it cannot join a follow-up")
            findings, notes = self._extract(ds, kind)
            self.store.record_source(
                **record,
                findings=[f.to_json() for f in findings],
                note="; ".join(notes),
                digest=digest,
            )
            record.update(state="ok", note="; ".join(notes), findings=len(findings))
        except InvalidInput as exc:
            self.store.record_source(
                **record, findings=[], note=str(exc), state="refused", digest=digest
            )
            record.update(state="refused", note=str(exc), findings=0)
        if patient_id and recompute:
            self.recompute(patient_id)
        return record

    def _extract(self, ds: Dataset, kind: SourceKind) -> tuple[list[Finding], list[str]]:
        notes: list[str] = []
        anchor: Anchor = None
        if kind is SourceKind.SEG:
            series = [
                str(item.SeriesInstanceUID)
                for item in ds.get("ReferencedSeriesSequence", [])
                if "SeriesInstanceUID" in item
            ]
            anchor = self._anchor_of(series, notes)
        elif kind is SourceKind.RTSTRUCT:
            series = referenced_series(ds)
            known = [uid for uid in series if self._series_study(uid)]
            if not known:
                raise InvalidInput(
                    "the RTSTRUCT references "
                    + (
                        f"series {', '.join(series)}, which the archive does not hold"
                        if series
                        else "no image series"
                    )
                    + ": its contours cannot be checked against images, so it does not feed "
                    "the follow-up"
                )
            anchor = self._anchor_of(known, notes)
        geometries: dict[str, ImageGeometry | None] = {}

        def image_geometry(uid: str) -> ImageGeometry | None:
            if uid not in geometries:
                try:
                    image = self.archive.read_dataset(uid)
                    geometries[uid] = ImageGeometry.from_dataset(image)
                    if "series" not in geometries:
                        geometries["series"] = None
                        nonlocal anchor
                        anchor = self._anchor_of([str(image.SeriesInstanceUID)], notes)
                except (NotFound, InvalidInput):
                    geometries[uid] = None
                    notes.append(f"referenced image {uid} is not in the archive")
            return geometries[uid]

        if kind is SourceKind.SR:
            findings, more = findings_from_dataset(ds, image_geometry)
            for finding in findings:
                finding.anchor = anchor
        else:
            findings, more = findings_from_dataset(ds, image_geometry, anchor)
        return findings, notes + more

    def _series_study(self, series_uid: str) -> str:
        matches = self.archive.search(
            parse_query(Level.SERIES, [("SeriesInstanceUID", series_uid)])
        ).matches
        if not matches:
            return ""
        return str((matches[0].get("0020000D", {}).get("Value") or [""])[0])

    def _anchor_of(self, series: list[str], notes: list[str]) -> Anchor:
        """The body centre of the first of ``series`` the archive holds (cached)."""
        for series_uid in series:
            with self._lock:
                if series_uid in self._anchors:
                    self._anchors.move_to_end(series_uid)
                    return self._anchors[series_uid]
            known, stored = self.store.anchor(series_uid)
            if known:
                with self._lock:
                    self._anchors[series_uid] = stored
                return stored
            study_uid = self._series_study(series_uid)
            if not study_uid:
                continue
            try:
                files = self.archive.instance_files(study_uid, series_uid)
                anchor = series_anchor([self.archive.read_file(f) for f in files])
            except NotFound as exc:
                notes.append(f"series {series_uid} cannot anchor positions: {exc}")
                continue
            if anchor is None:
                notes.append(f"series {series_uid} is not a volume: no body anchor")
            # another process may have saved it first: the same value
            with contextlib.suppress(StorageError):
                self.store.save_anchor(series_uid, anchor)
            with self._lock:
                self._anchors[series_uid] = anchor
                while len(self._anchors) > 256:
                    self._anchors.popitem(last=False)
            return anchor
        if series:
            notes.append(
                "the source images are not in the archive: positions are compared "
                "without a body anchor"
            )
        return None

    # --------------------------------------------------------------- computing

    def recompute(self, patient_id: str) -> PatientFollowup:
        """Track the patient again from its stored findings and active corrections.

        One re-computation per patient at a time in this process. Across processes (job
        workers), a result is written only if the findings and corrections it was computed
        from are still those stored (:meth:`FollowupStore.save_result`), else it is computed
        again: a slower, older computation never overwrites a newer one.
        """
        with self._lock:
            lock = self._patient_locks.setdefault(patient_id, threading.Lock())
        with lock:
            for attempt in range(1, 6):
                expected = self.store.fingerprint(patient_id)
                findings = [Finding.from_json(data) for data in self.store.findings(patient_id)]
                corrections = [
                    Correction(CorrectionKind(c["kind"]), c["payload"], c["id"])
                    for c in self.store.corrections(patient_id)
                ]
                result = track(patient_id, findings, corrections, self.criteria, self.rano)
                try:
                    saved = self.store.save_result(
                        patient_id, self.store.patient_name(patient_id), result.to_json(), expected
                    )
                except StorageError:
                    if attempt == 5:
                        raise
                    continue
                if saved:
                    return result
        raise StorageError(f"the follow-up of {patient_id} kept changing while it was computed")

    def correct(
        self, patient_id: str, kind: str, payload: dict[str, str], username: str
    ) -> dict[str, Any]:
        """Record a correction (lesions named by tracking UID or finding key) and re-compute.

        Lesion UIDs are turned into the key of the lesion's first finding, which stays valid
        when the lesion's UID would change (a merge into an earlier lesion).
        """
        current = self.store.result(patient_id)
        anchors = {lesion["uid"]: lesion["anchor_key"] for lesion in current["lesions"]}
        keys = {
            f["key"]
            for lesion in current["lesions"]
            for m in lesion["measurements"]
            for f in m.get("findings", [])
        } | {f["key"] for f in self.store.findings(patient_id)}
        resolved: dict[str, str] = {}
        for name, value in payload.items():
            if name in ("lesion", "other"):
                if value in anchors:
                    value = anchors[value]
                elif value not in keys:
                    raise NotFound(f"patient {patient_id} has no lesion {value!r}")
            elif name in ("finding", "at") and value not in keys:
                raise NotFound(f"patient {patient_id} has no finding {value!r}")
            resolved[name] = str(value)
        try:
            correction = Correction(CorrectionKind(kind), resolved)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        number = self.store.add_correction(
            patient_id, correction.kind.value, correction.payload, username
        )
        self.recompute(patient_id)
        return {"id": number, "kind": correction.kind.value, "payload": correction.payload}

    def withdraw(self, patient_id: str, correction_id: int, username: str) -> None:
        self.store.withdraw_correction(patient_id, correction_id, username)
        self.recompute(patient_id)

    def result(self, patient_id: str) -> dict[str, Any]:
        data = self.store.result(patient_id)
        data["sources"] = self.store.sources(patient_id)
        data["corrections"] = self.store.corrections(patient_id, active_only=False)
        return data

    def export_sr(self, patient_id: str) -> dict[str, Any]:
        """Write the follow-up as a TID 1500 SR (:mod:`radpacs.followup.export`) into the
        patient's latest study and store it; the answer names the new instance."""
        from radpacs.followup.export import build_tracking_sr

        result = self.store.result(patient_id)
        latest = result["timepoints"][-1]["study_uids"][-1]
        files = self.archive.instance_files(latest)
        images = [f for f in files if source_kind(f.sop_class_uid) is None] or files
        first = self.archive.read_file(images[0])
        evidence = [first]
        seen = {first.SOPInstanceUID}
        for source in self.store.sources(patient_id):
            if source["state"] != "ok" or source["sop_uid"] in seen:
                continue
            item = Dataset()
            item.StudyInstanceUID = source["study_uid"]
            item.SeriesInstanceUID = source["series_uid"]
            item.SOPInstanceUID = source["sop_uid"]
            item.SOPClassUID = self.archive.instance_files(
                source["study_uid"], source["series_uid"], source["sop_uid"]
            )[0].sop_class_uid
            evidence.append(item)
            seen.add(source["sop_uid"])
        sr = build_tracking_sr(result, evidence)
        from io import BytesIO

        buffer = BytesIO()
        sr.save_as(buffer, enforce_file_format=True)
        stored = self.archive.store_many([buffer.getvalue()])
        if stored[0].outcome is Outcome.FAILED:
            raise InvalidInput(f"the follow-up SR could not be stored: {stored[0].message}")
        return {
            "study_uid": str(sr.StudyInstanceUID),
            "series_uid": str(sr.SeriesInstanceUID),
            "sop_uid": str(sr.SOPInstanceUID),
        }
