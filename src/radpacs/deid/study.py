"""De-identifying a stored study: every instance through one Anonymizer, into a new study.

One :class:`~radpacs.deid.Anonymizer` handles the whole study, so every UID is replaced
by the same pseudonym in every object and references between them (RTSTRUCT -> RTDOSE
Frame of Reference, Referenced SOP Instance UIDs) still resolve in the copy (PS3.15
E.1.1, U action). The original study is only read.

The archive is reached through :class:`StudySource`, the few methods of
:class:`radpacs.archive.Archive` this module needs, so that this package stays free of
database code.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

from radpacs.deid.anonymizer import Anonymizer
from radpacs.deid.files import read_dataset, write_dataset
from radpacs.deid.profile import Option
from radpacs.errors import InvalidInput, StorageError

__all__ = ["StudyCopy", "StudySource", "anonymized_files", "store_copy", "write_zip"]

Progress = Callable[[int, int], None]
"""Called with (done, total) after each instance."""

_BATCH = 50  # instances held in memory between two store batches


class StudySource(Protocol):
    """What study de-identification needs of the archive."""

    def instance_files(self, study_uid: str) -> Sequence[Any]: ...

    def open(self, file: Any) -> IO[bytes]: ...

    def store_many(
        self, payloads: Sequence[bytes], expected_study_uid: str | None = None
    ) -> Sequence[Any]: ...

    def delete(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> int: ...


@dataclass(frozen=True)
class StudyCopy:
    """The outcome of :func:`store_copy`: the new study and how many instances it holds."""

    study_uid: str
    instances: int


def anonymized_files(
    source: StudySource,
    anonymizer: Anonymizer,
    study_uid: str,
    *,
    pixels_checked: bool = False,
    progress: Progress | None = None,
) -> Iterator[tuple[str, str, bytes]]:
    """(new series UID, new SOP Instance UID, file bytes) of each instance of the study.

    Raises NotFound (unknown study) and InvalidInput (Burned In Annotation YES without
    ``pixels_checked``) from the archive and the anonymizer.
    """
    files = source.instance_files(study_uid)
    total = len(files)
    for done, file in enumerate(files, start=1):
        with source.open(file) as stream:
            data = stream.read()
        ds = read_dataset(data, f"instance {file.sop_uid}")
        anonymizer.anonymize(ds, pixels_checked=pixels_checked, copy_first=False)
        yield str(ds.get("SeriesInstanceUID", "")), str(ds.SOPInstanceUID), write_dataset(ds)
        if progress is not None:
            progress(done, total)


def store_copy(
    source: StudySource,
    anonymizer: Anonymizer,
    study_uid: str,
    *,
    pixels_checked: bool = False,
    progress: Progress | None = None,
) -> StudyCopy:
    """Store the de-identified study as a new study; its Study Instance UID is returned.

    Instances are stored in batches. When one fails, the instances this call stored are
    removed again and StorageError (or the anonymizer's InvalidInput) is raised. Under
    Retain UIDs the copy would collide with the original, so that Option is refused.
    """
    if Option.RETAIN_UIDS in anonymizer.profile.options:
        raise InvalidInput("retain_uids cannot be used to store a copy: the UIDs would collide")
    new_study = anonymizer.pseudonyms.uid(study_uid)
    stored: list[tuple[str, str]] = []
    count = 0
    batch: list[bytes] = []

    def flush() -> None:
        results = source.store_many(batch, expected_study_uid=new_study)
        batch.clear()
        for result in results:
            if str(result.outcome) == "failed":
                raise StorageError(f"cannot store the de-identified copy: {result.message}")
            if str(result.outcome) in ("stored", "replaced"):
                stored.append((result.series_uid, result.sop_instance_uid))

    try:
        for _series, _sop, data in anonymized_files(
            source, anonymizer, study_uid, pixels_checked=pixels_checked, progress=progress
        ):
            batch.append(data)
            count += 1
            if len(batch) >= _BATCH:
                flush()
        if batch:
            flush()
    except Exception:
        for series_uid, sop_uid in stored:
            source.delete(new_study, series_uid, sop_uid)
        raise
    return StudyCopy(new_study, count)


def write_zip(
    source: StudySource,
    anonymizer: Anonymizer,
    study_uid: str,
    target: IO[bytes] | None = None,
    *,
    pixels_checked: bool = False,
) -> IO[bytes]:
    """Write the de-identified study as a zip (``<series UID>/<SOP UID>.dcm``) to ``target``.

    ``target`` defaults to a new in-memory buffer; it is returned positioned at 0.
    """
    out: IO[bytes] = target if target is not None else io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for series_uid, sop_uid, data in anonymized_files(
            source, anonymizer, study_uid, pixels_checked=pixels_checked
        ):
            archive.writestr(f"{series_uid}/{sop_uid}.dcm", data)
    out.seek(0)
    return out
