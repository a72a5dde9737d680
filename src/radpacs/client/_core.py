"""The part of the client that does no I/O: requests to send and answers to read.

:class:`RadpacsClient` and :class:`AsyncRadpacsClient` both build their requests as
:class:`Call` objects here and read the answers with the functions here; they differ only
in how they send (blocking or awaiting) and how they run batches side by side (threads or
tasks). Keeping all protocol knowledge in this module keeps the two in step.
"""

from __future__ import annotations

import base64
import io
import os
import re
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pydicom
from pydicom.errors import InvalidDicomError

from radpacs.client.schemas import AiJob, InstanceOutcome, Outcome, SearchMatch
from radpacs.client.sources import Source, looks_like_dicom
from radpacs.dicom.mediatypes import parse_media_type
from radpacs.dicom.multipart import MultipartError, MultipartParser, Part
from radpacs.errors import AiJobError, AiJobTimeout, RadpacsRequestError

__all__ = [
    "DICOMWEB",
    "Call",
    "JobWait",
    "PartWriter",
    "PreparedBatch",
    "SearchPager",
    "dicomweb_path",
    "multipart_body",
    "split_multipart",
]

DICOMWEB = "/dicom-web"
INSTANCES_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
DICOM_JSON = "application/dicom+json"
_UIDS_PER_QUERY = 100
_LEVELS = {"studies", "series", "instances"}


@dataclass(frozen=True)
class Call:
    """One HTTP request, described; ``accept`` lists non-2xx statuses that are answers."""

    method: str
    path: str
    params: Sequence[tuple[str, str]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    json: Any = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    data: Mapping[str, str] | None = None
    idempotent: bool = True
    accept: frozenset[int] = frozenset()


def check(call: Call, response: httpx.Response, attempt: int) -> bool:
    """Whether ``response`` is an answer to hand back; False means raise for its status.

    A retried DELETE that finds nothing counts as done: the earlier attempt deleted it.
    """
    status = response.status_code
    if 200 <= status < 300 or status in call.accept:
        return True
    return call.method == "DELETE" and status == 404 and attempt > 1


def request_error(call: Call, error: BaseException) -> RadpacsRequestError:
    """The RadpacsRequestError for a transport error that outlived the retries."""
    return RadpacsRequestError(call.method, call.path, None, f"{type(error).__name__}: {error}")


def dicomweb_path(
    study: str | None = None, series: str | None = None, sop: str | None = None
) -> str:
    """The DICOMweb resource path of a study, series or instance."""
    path = f"{DICOMWEB}/studies"
    if study:
        path += f"/{study}"
        if series:
            path += f"/series/{series}"
            if sop:
                path += f"/instances/{sop}"
    elif series or sop:
        raise ValueError("a series or instance needs its study UID")
    return path


# ---------------------------------------------------------------------------- QIDO-RS


_NEXT_OFFSET = re.compile(r"offset=(\d+)")


class SearchPager:
    """QIDO-RS paging (PS3.18 10.6.1.2.2): follows the server's ``Warning: 299 ... offset=N``.

    ``limit`` bounds the total number of matches (None: all of them); ``page_size`` the
    matches per request (None: the server's own maximum).
    """

    def __init__(
        self,
        level: str,
        filters: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        *,
        study: str | None = None,
        series: str | None = None,
        include: Sequence[str] = (),
        fuzzy: bool = False,
        limit: int | None = None,
        offset: int = 0,
        page_size: int | None = None,
    ) -> None:
        if level not in _LEVELS:
            raise ValueError(f"level must be one of {sorted(_LEVELS)}, not {level!r}")
        if series and not study:
            raise ValueError("searching within a series needs its study UID")
        self.path = f"{DICOMWEB}/{level}"
        if study:
            self.path = f"{DICOMWEB}/studies/{study}"
            self.path += f"/series/{series}/instances" if series else f"/{level}"
            if level == "studies":
                raise ValueError("a study-level search cannot be scoped to a study")
        pairs = list(filters.items()) if isinstance(filters, Mapping) else list(filters)
        pairs += [("includefield", name) for name in include]
        if fuzzy:
            pairs.append(("fuzzymatching", "true"))
        self._params = [(str(name), str(value)) for name, value in pairs]
        self._remaining = limit
        self._offset = offset
        self._page_size = page_size
        self._done = limit is not None and limit <= 0

    def next_call(self) -> Call | None:
        """The request for the next page, or None when every page was read."""
        if self._done:
            return None
        params = [*self._params, ("offset", str(self._offset))]
        sizes = [size for size in (self._page_size, self._remaining) if size is not None]
        if sizes:
            params.append(("limit", str(min(sizes))))
        return Call("GET", self.path, params=params, headers={"Accept": DICOM_JSON})

    def accept(self, response: httpx.Response) -> list[SearchMatch]:
        """The matches of one page; remembers where the next one starts."""
        matches = [
            SearchMatch(dataset=item) for item in (response.json() if response.content else [])
        ]
        if self._remaining is not None:
            matches = matches[: self._remaining]
            self._remaining -= len(matches)
        following = None
        for warning in response.headers.get_list("warning"):
            found = _NEXT_OFFSET.search(warning)
            if found:
                following = int(found.group(1))
        if (
            following is None
            or not matches
            or following <= self._offset
            or (self._remaining is not None and self._remaining <= 0)
        ):
            self._done = True
        else:
            self._offset = following
        return matches


# ---------------------------------------------------------------------------- STOW-RS


def multipart_body(
    payloads: Sequence[bytes], part_type: str = "application/dicom"
) -> tuple[bytes, str]:
    """A multipart/related body (PS3.18 8.6.1.2) and its Content-Type."""
    boundary = f"radpacs-{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for payload in payloads:
        chunks += [f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode(), payload, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="{part_type}"; boundary={boundary}'


def _sop_uid(data: bytes) -> str:
    try:
        dataset = pydicom.dcmread(
            io.BytesIO(data), stop_before_pixels=True, force=True, specific_tags=["SOPInstanceUID"]
        )
    except (InvalidDicomError, ValueError, EOFError, OSError, AttributeError, KeyError):
        return ""
    return str(dataset.get("SOPInstanceUID", "") or "")


def _sequence_items(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    element = body.get(tag) or {}
    return list(element.get("Value", []))


def _first(item: dict[str, Any], tag: str) -> Any:
    values = (item.get(tag) or {}).get("Value") or [None]
    return values[0]


_WARNING_TEXT = re.compile(r'^\s*\d{3}\s+\S+\s+"(.*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")  # RFC 7230 3.2.6: a backslash escapes the next character


def _warnings_by_uid(response: httpx.Response) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in response.headers.get_list("warning"):
        match = _WARNING_TEXT.match(header)
        text = _QUOTED_PAIR.sub(r"\1", match.group(1)) if match else header
        uid, sep, message = text.partition(": ")
        if sep:
            found.setdefault(uid.strip(), message.strip())
    return found


@dataclass
class _Item:
    source: Source
    data: bytes = b""
    uid: str = ""
    outcome: InstanceOutcome | None = None


class PreparedBatch:
    """One batch of sources on its way to STOW-RS: read, optionally checked against QIDO-RS,
    sent, and matched against the answer's ReferencedSOPSequence and FailedSOPSequence."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self._items: list[_Item] = []
        for source in sources:
            item = _Item(source)
            try:
                item.data = source.read()
            except OSError as exc:
                item.outcome = _outcome(item, Outcome.FAILED, f"cannot read: {exc}")
            else:
                if not looks_like_dicom(item.data):
                    why = (
                        "empty file"
                        if not item.data
                        else "not a DICOM file: no DICM prefix at byte 128"
                    )
                    item.outcome = _outcome(item, Outcome.NOT_DICOM, why)
                    item.data = b""
                else:
                    item.uid = _sop_uid(item.data)
            self._items.append(item)

    def _pending(self) -> list[_Item]:
        return [item for item in self._items if item.outcome is None]

    def existing_calls(self) -> list[Call]:
        """QIDO-RS instance searches by UID list (PS3.4 C.2.2.2.2) for the batch's instances."""
        uids = sorted({item.uid for item in self._pending() if item.uid})
        return [
            Call(
                "GET",
                f"{DICOMWEB}/instances",
                params=[
                    ("SOPInstanceUID", ",".join(uids[at : at + _UIDS_PER_QUERY])),
                    ("limit", str(_UIDS_PER_QUERY)),
                ],
                headers={"Accept": DICOM_JSON},
            )
            for at in range(0, len(uids), _UIDS_PER_QUERY)
        ]

    def mark_existing(self, response: httpx.Response) -> None:
        """Set aside the instances a QIDO-RS answer shows are stored already."""
        found = {SearchMatch(dataset=item).sop_uid for item in response.json()}
        for item in self._pending():
            if item.uid in found:
                item.outcome = _outcome(item, Outcome.ALREADY_STORED)
                item.data = b""

    def stow_call(self) -> Call | None:
        """The STOW-RS request for what is left to send, or None when nothing is."""
        pending = self._pending()
        if not pending:
            return None
        body, content_type = multipart_body([item.data for item in pending])
        return Call(
            "POST",
            f"{DICOMWEB}/studies",
            headers={"Content-Type": content_type, "Accept": DICOM_JSON},
            content=body,
            accept=frozenset({409}),  # none stored: the body still says why, part by part
        )

    def apply_stow(self, response: httpx.Response) -> None:
        """Match the STOW-RS answer (PS3.18 10.5.3) to the instances sent."""
        body: dict[str, Any] = response.json() if response.content else {}
        stored = {str(_first(entry, "00081155")) for entry in _sequence_items(body, "00081199")}
        failed: dict[str, int | None] = {}
        anonymous: list[int | None] = []
        for entry in _sequence_items(body, "00081198"):
            uid = _first(entry, "00081155")
            reason = _first(entry, "00081197")
            if uid:
                failed[str(uid)] = reason
            else:
                anonymous.append(reason)
        messages = _warnings_by_uid(response)
        for item in self._pending():
            if item.uid and item.uid in failed:
                reason = failed[item.uid]
                text = messages.get(item.uid, "refused by the server")
                item.outcome = _outcome(item, Outcome.FAILED, text, reason)
            elif item.uid and item.uid in stored:
                item.outcome = _outcome(item, Outcome.STORED)
            elif not item.uid and anonymous:
                reason = anonymous.pop(0)
                text = messages.get("unidentified part", "not a readable DICOM instance")
                item.outcome = _outcome(item, Outcome.FAILED, text, reason)
            else:
                item.outcome = _outcome(item, Outcome.FAILED, "missing from the server's answer")
            item.data = b""

    def fail_pending(self, reason: str) -> None:
        """Fail what is left, for a request that failed as a whole."""
        for item in self._pending():
            item.outcome = _outcome(item, Outcome.FAILED, reason)
            item.data = b""

    def outcomes(self) -> list[InstanceOutcome]:
        return [item.outcome for item in self._items if item.outcome is not None]


def _outcome(
    item: _Item, outcome: Outcome, reason: str = "", failure_reason: int | None = None
) -> InstanceOutcome:
    return InstanceOutcome(
        source=item.source.name,
        outcome=outcome,
        sop_instance_uid=item.uid,
        reason=reason,
        failure_reason=failure_reason,
    )


# ---------------------------------------------------------------------------- WADO-RS


def _boundary(response: httpx.Response) -> bytes:
    media = parse_media_type(response.headers.get("content-type", ""))
    boundary = media.param("boundary")
    if media.type != "multipart/related" or not boundary:
        raise MultipartError(
            f"expected a multipart/related answer, got {response.headers.get('content-type')!r}"
        )
    return boundary.encode("latin-1")


def split_multipart(response: httpx.Response) -> list[bytes]:
    """The parts of a (small, already read) multipart/related answer, such as frames."""
    parser = MultipartParser(_boundary(response))
    parser.feed(response.content)
    contents = []
    for part in parser.close():
        contents.append(part.read())
        part.close()
    return contents


_UID_SAFE = re.compile(r"[^0-9A-Za-z.\-]")


class PartWriter:
    """Writes each instance of a multipart/related WADO-RS answer to
    ``folder/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` as soon as its
    part is complete: the answer is never held whole, a part at most (spooled to disk above
    16 MiB). Each file is written under a temporary name and renamed."""

    def __init__(self, response: httpx.Response, folder: Path) -> None:
        self._parser = MultipartParser(_boundary(response))
        self._folder = folder
        self.written: list[Path] = []
        self.bytes_received = 0

    def feed(self, chunk: bytes) -> list[Path]:
        """Consume a chunk of the body; the files completed by it."""
        self.bytes_received += len(chunk)
        self._parser.feed(chunk)
        return [self._write(part) for part in self._parser.take_completed()]

    def close(self) -> list[Path]:
        """The files of the last parts; MultipartError when the body was cut short."""
        return [self._write(part) for part in self._parser.close()]

    def _write(self, part: Part) -> Path:
        try:
            part.file.seek(0)
            header = pydicom.dcmread(
                part.file,
                stop_before_pixels=True,
                specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"],
            )
            names = [
                _UID_SAFE.sub("_", str(header.get(keyword, "") or "unknown"))
                for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
            ]
            target = self._folder.joinpath(*names[:2], f"{names[2]}.dcm")
            target.parent.mkdir(parents=True, exist_ok=True)
            part.file.seek(0)
            handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
            with os.fdopen(handle, "wb") as sink:
                while chunk := part.file.read(1024 * 1024):
                    sink.write(chunk)
            os.replace(temporary, target)
        finally:
            part.close()
        self.written.append(target)
        return target


def retrieve_call(study: str, series: str | None = None) -> Call:
    """WADO-RS retrieve of a study or series (PS3.18 10.4), every instance as stored."""
    return Call("GET", dicomweb_path(study, series), headers={"Accept": INSTANCES_ACCEPT})


def metadata_call(
    study: str, series: str | None = None, sop: str | None = None, phi: bool = True
) -> Call:
    """WADO-RS metadata (PS3.18 10.4.1.1.2) of a study, series or instance; ``phi=False``
    asks for the no-PHI view (radpacs's ``?phi=false`` extension)."""
    return Call(
        "GET",
        f"{dicomweb_path(study, series, sop)}/metadata",
        params=() if phi else (("phi", "false"),),
        headers={"Accept": DICOM_JSON},
    )


def frames_call(study: str, series: str, sop: str, numbers: Sequence[int], as_stored: bool) -> Call:
    """WADO-RS frames (PS3.18 10.4.1.1.3), 1-based: decoded to native little endian, or as
    stored (``as_stored``: the compressed bitstreams of a compressed instance)."""
    if not numbers or any(number < 1 for number in numbers):
        raise ValueError("frame numbers start at 1")
    accept = (
        'multipart/related; type="application/octet-stream"; transfer-syntax=*'
        if as_stored
        else 'multipart/related; type="application/octet-stream"'
    )
    path = f"{dicomweb_path(study, series, sop)}/frames/{','.join(map(str, numbers))}"
    return Call("GET", path, headers={"Accept": accept})


def rendered_call(
    study: str,
    series: str | None,
    sop: str | None,
    frame: int | None,
    media_type: str,
    params: Mapping[str, str],
    resource: str = "rendered",
) -> Call:
    """WADO-RS rendered (PS3.18 10.4.1.1.5) or thumbnail (10.4.1.1.4): a consumer image
    (PNG, JPEG) of a resource; ``params``: window, viewport, quality."""
    if resource not in ("rendered", "thumbnail"):
        raise ValueError(f"resource is rendered or thumbnail, not {resource!r}")
    path = dicomweb_path(study, series, sop)
    if frame is not None:
        if not sop:
            raise ValueError("a frame needs its instance")
        path += f"/frames/{frame}"
    return Call(
        "GET", f"{path}/{resource}", params=list(params.items()), headers={"Accept": media_type}
    )


def delete_call(study: str, series: str | None = None, sop: str | None = None) -> Call:
    return Call("DELETE", dicomweb_path(study, series, sop))


#: The DPAT client's filter names (seed 002), read as the DICOM keywords they stand for.
_FILTER_ALIASES = {
    "studyInstanceUid": "StudyInstanceUID",
    "seriesInstanceUid": "SeriesInstanceUID",
    "sopInstanceUid": "SOPInstanceUID",
    "patientId": "PatientID",
    "accessionNumber": "AccessionNumber",
}


def find_one_filters(
    filters: Mapping[str, str] | Sequence[tuple[str, str]], named: Mapping[str, str]
) -> list[tuple[str, str]]:
    """The filters of a find-one search: pairs, then keyword arguments (a DICOM keyword, an
    8-digit tag, a :class:`~radpacs.client.models.DicomCodes` value or a DPAT alias)."""
    pairs = list(filters.items()) if isinstance(filters, Mapping) else list(filters)
    pairs += list(named.items())
    return [(_FILTER_ALIASES.get(str(name), str(name)), str(value)) for name, value in pairs]


def only_match(
    level: str, filters: Sequence[tuple[str, str]], matches: list[SearchMatch]
) -> SearchMatch | None:
    """The one match of a find-one search, None for none; ValueError when several match."""
    if len(matches) > 1:
        shown = ", ".join(f"{name}={value}" for name, value in filters) or "no filter"
        raise ValueError(f"more than one of the {level} match {shown}: add a filter")
    return matches[0] if matches else None


def basic_authorization(user: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP Basic (RFC 7617), for peers that use it."""
    if ":" in user:
        raise ValueError("an HTTP Basic user name cannot hold ':' (RFC 7617)")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def login_call(username: str, password: str) -> Call:
    """POST /api/auth: credentials for a bearer token (no side effect: safe to retry)."""
    return Call("POST", "/api/auth", json={"username": username, "password": password})


def read_token(call: Call, response: httpx.Response) -> str:
    token = response.json().get("token") if response.content else None
    if not isinstance(token, str) or not token:
        raise RadpacsRequestError(
            call.method, call.path, response.status_code, "no token in the answer"
        )
    return token


def file_part(value: Path | bytes, name: str) -> tuple[str, bytes, str]:
    """A form file field from a path or bytes."""
    if isinstance(value, bytes):
        return (f"{name}.dcm", value, "application/dicom")
    return (value.name, value.read_bytes(), "application/dicom")


def dvh_call(structures: Path | bytes, dose: Path | bytes, params: Mapping[str, str]) -> Call:
    """POST /api/dvh: an RTSTRUCT and an RTDOSE as ``file_struct`` and ``file_dose``;
    ``params`` (roi, prescription, relative_volume, bin_width, metrics) go as form fields,
    which is where the server reads them."""
    return Call(
        "POST",
        "/api/dvh",
        data={name: str(value) for name, value in params.items()},
        files={
            "file_struct": file_part(structures, "rtstruct"),
            "file_dose": file_part(dose, "rtdose"),
        },
    )


def dvh_plot_call(dvhs: Sequence[Mapping[str, Any]], media_type: str) -> Call:
    """POST /api/dvh/plot: the curves of :func:`dvh_call`'s answer, for a picture of them."""
    return Call("POST", "/api/dvh/plot", json={"dvhs": list(dvhs)}, headers={"Accept": media_type})


def stored_dvh_call(
    rtstruct: str,
    rtdose: str | Sequence[str],
    weights: Sequence[float] | None,
    options: Mapping[str, Any],
) -> Call:
    """POST /api/rt/dvh: DVHs of stored objects; several RTDOSE UIDs are a plan sum."""
    body: dict[str, Any] = {
        "rtstruct": rtstruct,
        "rtdose": rtdose if isinstance(rtdose, str) else list(rtdose),
        **options,
    }
    if weights is not None:
        body["weights"] = list(weights)
    return Call("POST", "/api/rt/dvh", json=body)


def rt_objects_call(study: str) -> Call:
    """GET /api/rt/studies/{study}/objects: the study's plans, structure sets and doses."""
    return Call("GET", f"/api/rt/studies/{_segment(study)}/objects")


def plan_statistics_call(
    plan: str, metrics: Sequence[str] | None, prescription: float | None
) -> Call:
    """GET /api/rt/plans/{plan}/statistics: every ROI's statistics in the plan's dose."""
    params = [("metrics", ",".join(metrics))] if metrics else []
    if prescription is not None:
        params.append(("prescription", str(prescription)))
    return Call("GET", f"/api/rt/plans/{_segment(plan)}/statistics", params=params)


def set_qc_call(sop: str, status: str, comment: str) -> Call:
    """PUT /api/instances/{sop}/qc: set an instance's quality-control status."""
    return Call(
        "PUT",
        f"/api/instances/{_segment(sop)}/qc",
        json={"status": str(status), "comment": comment},
    )


def qc_call(sop: str) -> Call:
    """GET /api/instances/{sop}/qc: an instance's quality-control status."""
    return Call("GET", f"/api/instances/{_segment(sop)}/qc")


def qc_list_call(status: str | None, study: str | None) -> Call:
    """GET /api/qc: the statuses that were set, by status and study."""
    params = [("status", str(status))] if status else []
    if study:
        params.append(("study", study))
    return Call("GET", "/api/qc", params=params)


def _segment(uid: str) -> str:
    if not uid or "/" in uid:
        raise ValueError(f"not a UID: {uid!r}")
    return uid


def anonymize_call(file: Path | bytes, options: Sequence[str], pixels_checked: bool) -> Call:
    """POST /api/anonymize (PS3.15 Annex E), one file; pure computation, safe to retry."""
    params = [("pixels_checked", "true")] if pixels_checked else []
    return Call(
        "POST",
        "/api/anonymize",
        params=params,
        files={"file": file_part(file, "file")},
        data={"options": ",".join(options)} if options else None,
    )


# ---------------------------------------------------------------------------- AI jobs

AI = "/api/ai"
AI_MODELS = Call("GET", f"{AI}/models")


def _job_path(job_id: str) -> str:
    if not job_id or "/" in job_id:
        raise ValueError(f"not a job id: {job_id!r}")
    return f"{AI}/jobs/{job_id}"


def ai_submit_call(
    model: str,
    study: str,
    series: str | None,
    parameters: Mapping[str, Any],
    max_attempts: int | None,
) -> Call:
    """POST /api/ai/jobs. Safe to retry: while a job for the same model, study, series and
    parameters is pending the server answers that job instead of queueing another."""
    body: dict[str, Any] = {"model": model, "study": study, "parameters": dict(parameters)}
    if series:
        body["series"] = series
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    return Call("POST", f"{AI}/jobs", json=body)


def ai_jobs_call(
    state: str | None, study: str | None, model: str | None, limit: int, offset: int
) -> Call:
    """GET /api/ai/jobs, newest first, filtered by state, study and model."""
    params = [("limit", str(limit)), ("offset", str(offset))]
    params += [
        (name, value)
        for name, value in (("state", state), ("study", study), ("model", model))
        if value
    ]
    return Call("GET", f"{AI}/jobs", params=params)


def ai_job_call(job_id: str) -> Call:
    return Call("GET", _job_path(job_id))


def ai_result_call(job_id: str) -> Call:
    """GET /api/ai/jobs/{id}/result: the viewer JSON of a finished job (404 before)."""
    return Call("GET", f"{_job_path(job_id)}/result")


def ai_cancel_call(job_id: str) -> Call:
    """POST /api/ai/jobs/{id}/cancel; cancelling twice does no more than once."""
    return Call("POST", f"{_job_path(job_id)}/cancel")


def ai_batch_call(model: str, query: Mapping[str, str], limit: int) -> Call:
    """POST /api/ai/batch: a job per series matching a QIDO-RS series query. Safe to retry
    for the same reason as :func:`ai_submit_call`."""
    return Call("POST", f"{AI}/batch", json={"model": model, "query": dict(query), "limit": limit})


def read_jobs(response: httpx.Response) -> list[AiJob]:
    return [AiJob.model_validate(item) for item in response.json().get("jobs", [])]


class JobWait:
    """Polling a job until it ends: the pause before each poll grows from ``first`` by half
    each time up to ``interval``; :meth:`settle` decides what to do with each answer."""

    def __init__(
        self, job_id: str, timeout: float, interval: float, raise_on_failure: bool, now: float
    ) -> None:
        if timeout < 0 or interval <= 0:
            raise ValueError("timeout must be >= 0 and interval > 0")
        self.call = ai_job_call(job_id)
        self.deadline = now + timeout
        self.interval = interval
        self.raise_on_failure = raise_on_failure
        self._pause = min(0.1, interval)

    def settle(self, job: AiJob, now: float) -> float | None:
        """None when ``job`` is the answer (raising AiJobError for a failed or cancelled one
        when asked to); else the seconds to sleep before the next poll (AiJobTimeout when
        the deadline has passed)."""
        if job.done:
            if self.raise_on_failure and job.state != "succeeded":
                raise AiJobError(job)
            return None
        if now >= self.deadline:
            raise AiJobTimeout(
                job, f"AI job {job.id} is still {job.state} after the time waited for it"
            )
        pause = min(self._pause, self.deadline - now)
        self._pause = min(self._pause * 1.5, self.interval)
        return max(pause, 0.0)


HEALTH = Call("GET", "/api/health")
COUNTS = Call("GET", "/api/counts")


FOLLOWUP = "/api/followup"


def _patient_path(patient_id: str) -> str:
    from urllib.parse import quote

    if not patient_id:
        raise ValueError("a patient id is needed")
    return f"{FOLLOWUP}/patients/{quote(patient_id, safe='')}"


def followup_patients_call(search: str, offset: int, limit: int) -> Call:
    """GET /api/followup/patients: one page of patients with a follow-up."""
    params = [("offset", str(offset)), ("limit", str(limit))]
    if search:
        params.append(("search", search))
    return Call("GET", f"{FOLLOWUP}/patients", params=params)


def followup_patient_call(patient_id: str) -> Call:
    """GET /api/followup/patients/{id}: timepoints, lesions, responses."""
    return Call("GET", _patient_path(patient_id))


def followup_export_call(patient_id: str, format: str) -> Call:
    """GET /api/followup/patients/{id}/export?format=csv|json."""
    if format not in ("csv", "json"):
        raise ValueError(f"export format {format!r} is not csv or json")
    return Call("GET", f"{_patient_path(patient_id)}/export", params=[("format", format)])


def followup_correct_call(patient_id: str, kind: str, fields: Mapping[str, str]) -> Call:
    """POST /api/followup/patients/{id}/corrections."""
    return Call("POST", f"{_patient_path(patient_id)}/corrections", json={"kind": kind, **fields})


def followup_sr_call(patient_id: str) -> Call:
    """POST /api/followup/patients/{id}/sr: store the TID 1500 report in the latest study."""
    return Call("POST", f"{_patient_path(patient_id)}/sr")


# --------------------------------------------------------------------------- DICOM node (DIMSE)

DIMSE = "/api/dimse"
DIMSE_JOB_ENDS = frozenset({"succeeded", "failed", "cancelled"})


def _node_path(node: str, action: str) -> str:
    if not node or "/" in node:
        raise ValueError(f"not a node name: {node!r}")
    return f"{DIMSE}/nodes/{node}/{action}"


def dimse_echo_call(node: str) -> Call:
    """POST /api/dimse/nodes/{node}/echo: C-ECHO through the server."""
    return Call("POST", _node_path(node, "echo"))


def dimse_query_call(node: str, level: str, keys: Mapping[str, str]) -> Call:
    """POST /api/dimse/nodes/{node}/query: C-FIND through the server."""
    return Call("POST", _node_path(node, "query"), json={"level": level, "keys": dict(keys)})


def dimse_transfer_call(
    node: str,
    action: str,
    study: str,
    series: str | None,
    method: str | None = None,
    destination: str | None = None,
) -> Call:
    """POST .../send or .../retrieve: a transfer job (not retried: each POST is a new job)."""
    body: dict[str, Any] = {"study": study}
    if series:
        body["series"] = series
    if method:
        body["method"] = method
    if destination:
        body["destination"] = destination
    return Call("POST", _node_path(node, action), json=body, idempotent=False)


def dimse_job_call(job_id: str) -> Call:
    if not job_id or "/" in job_id:
        raise ValueError(f"not a job id: {job_id!r}")
    return Call("GET", f"{DIMSE}/jobs/{job_id}")


APPS = "/api/apps"


def _app_path(name: str) -> str:
    if not name or "/" in name:
        raise ValueError(f"not an app name: {name!r}")
    return f"{APPS}/{name}"


def app_register_call(name: str, url: str, fields: Mapping[str, Any]) -> Call:
    """POST /api/apps: register a callback app (admin)."""
    return Call("POST", APPS, json={"name": name, "url": url, **fields}, idempotent=False)


def apps_call() -> Call:
    """GET /api/apps: the registered apps."""
    return Call("GET", APPS)


def app_update_call(name: str, changes: Mapping[str, Any]) -> Call:
    """PATCH /api/apps/{name}: change a registration (admin)."""
    return Call("PATCH", _app_path(name), json=dict(changes))


def app_remove_call(name: str) -> Call:
    """DELETE /api/apps/{name}: unregister an app (admin)."""
    return Call("DELETE", _app_path(name))


def app_trigger_call(
    name: str, study: str, series: str | None, parameters: Mapping[str, Any] | None
) -> Call:
    """POST /api/apps/{name}/analyses: start an analysis of a study or series."""
    body = {"study": study, "series": series, "parameters": dict(parameters or {})}
    return Call("POST", f"{_app_path(name)}/analyses", json=body, idempotent=False)


def app_analysis_call(uid: str) -> Call:
    """GET /api/apps/analyses/{uid}: one analysis."""
    return Call("GET", f"{APPS}/analyses/{_segment(uid)}")


def app_analyses_call(app: str | None, study: str | None, limit: int) -> Call:
    """GET /api/apps/analyses: the latest analyses, of one app and/or study."""
    params = [("limit", str(limit))]
    if app:
        params.append(("app", app))
    if study:
        params.append(("study", study))
    return Call("GET", f"{APPS}/analyses", params=params)


def app_cancel_call(uid: str) -> Call:
    """DELETE /api/apps/analyses/{uid}: cancel an analysis (the app is told)."""
    return Call("DELETE", f"{APPS}/analyses/{_segment(uid)}", idempotent=False)
