"""Typed results of :mod:`radpacs.client`: pydantic models over what the server answers.

:class:`SearchMatch` wraps one QIDO-RS match in DICOM JSON (PS3.18 Annex F) and reads it by
keyword (:class:`DicomJSON`, its base, does the same for WADO-RS metadata)::

    match.get("PatientID")          # 'ANON0001' (first value; a PN gives its Alphabetic form)
    match.values("ModalitiesInStudy")  # ['CT', 'RTSTRUCT']
    match.get_value_as_string(DicomCodes.PATIENT_ID)  # 'ANON0001' ('' when absent)
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from radpacs.dicom.tags import resolve_tag, tag_hex

__all__ = [
    "AiBatch",
    "AiCatalog",
    "AiJob",
    "AiJobState",
    "AiModel",
    "AppAnalysis",
    "AppDelivery",
    "DVHCurve",
    "DVHResult",
    "DicomCodes",
    "DicomJSON",
    "InstanceOutcome",
    "Outcome",
    "RegisteredApp",
    "SearchMatch",
    "ServerStatus",
    "StoreSummary",
]


def _plain(value: Any) -> Any:
    """A DICOM JSON value as Python: a PN object becomes its Alphabetic string."""
    if isinstance(value, dict) and "Alphabetic" in value:
        return value["Alphabetic"]
    return value


class DicomCodes(StrEnum):
    """Named attribute tags (PS3.6), to read matches with :meth:`DicomJSON.get` or
    :meth:`DicomJSON.get_value_as_string` and to filter searches.

    ``EXAM_ID``, ``REQUEST_ID`` and ``STUDY_ID`` are the names of the DPAT client (seed 002):
    Study ID (0020,0010), Accession Number (0008,0050) and Study Instance UID (0020,000D).
    """

    PATIENT_ID = "00100020"
    PATIENT_NAME = "00100010"
    PATIENT_BIRTH_DATE = "00100030"
    PATIENT_SEX = "00100040"
    EXAM_ID = "00200010"
    REQUEST_ID = "00080050"
    STUDY_ID = "0020000D"
    ACCESSION_NUMBER = "00080050"
    STUDY_INSTANCE_UID = "0020000D"
    STUDY_DATE = "00080020"
    STUDY_DESCRIPTION = "00081030"
    MODALITIES_IN_STUDY = "00080061"
    SERIES_INSTANCE_UID = "0020000E"
    MODALITY = "00080060"
    SOP_INSTANCE_UID = "00080018"
    SOP_CLASS_UID = "00080016"


class DicomJSON(BaseModel):
    """A DICOM JSON dataset (PS3.18 F.2) as the server sent it, read by keyword."""

    model_config = ConfigDict(frozen=True)

    dataset: dict[str, Any]

    def values(self, keyword: str) -> list[Any]:
        """Every value of an attribute given by keyword or 8-digit tag; [] when absent."""
        element = self.dataset.get(tag_hex(resolve_tag(keyword)))
        if not element:
            return []
        return [_plain(value) for value in element.get("Value", [])]

    def get(self, keyword: str, default: Any = None) -> Any:
        """The first value of an attribute (keyword or tag), or ``default`` when it has none."""
        found = self.values(keyword)
        return found[0] if found else default

    def get_value_as_string(self, keyword: str) -> str:
        """The values of an attribute (keyword, tag or :class:`DicomCodes`) as one string,
        several joined by a backslash as in DICOM; '' when it has none."""
        return "\\".join(str(value) for value in self.values(keyword))

    @property
    def study_uid(self) -> str:
        return str(self.get("StudyInstanceUID", ""))

    @property
    def series_uid(self) -> str:
        return str(self.get("SeriesInstanceUID", ""))

    @property
    def sop_uid(self) -> str:
        return str(self.get("SOPInstanceUID", ""))

    @property
    def retrieve_url(self) -> str:
        return str(self.get("RetrieveURL", ""))


class SearchMatch(DicomJSON):
    """One QIDO-RS match (PS3.18 10.6.3): the matched attributes and RetrieveURL."""


class Outcome(StrEnum):
    """What became of one input of :meth:`RadpacsClient.store`."""

    STORED = "stored"
    ALREADY_STORED = "already stored"
    FAILED = "failed"
    NOT_DICOM = "not DICOM"


class InstanceOutcome(BaseModel):
    """One input file (or zip member) and what became of it."""

    source: str
    outcome: Outcome
    sop_instance_uid: str = ""
    reason: str = ""
    failure_reason: int | None = Field(
        default=None, description="PS3.18 Table 10.5.3-3 FailureReason, when the server gave one"
    )


class StoreSummary(BaseModel):
    """The outcome of every input of a store call, in input order."""

    items: list[InstanceOutcome] = Field(default_factory=list)

    def _with(self, outcome: Outcome) -> list[InstanceOutcome]:
        return [item for item in self.items if item.outcome is outcome]

    @property
    def stored(self) -> list[InstanceOutcome]:
        return self._with(Outcome.STORED)

    @property
    def already_stored(self) -> list[InstanceOutcome]:
        return self._with(Outcome.ALREADY_STORED)

    @property
    def failed(self) -> list[InstanceOutcome]:
        return self._with(Outcome.FAILED)

    @property
    def not_dicom(self) -> list[InstanceOutcome]:
        return self._with(Outcome.NOT_DICOM)

    @property
    def ok(self) -> bool:
        """True when no DICOM input failed."""
        return not self.failed

    def counts(self) -> dict[str, int]:
        """How many inputs ended in each outcome."""
        return {outcome.value: len(self._with(outcome)) for outcome in Outcome}


class DVHCurve(BaseModel):
    """One structure's dose-volume histogram as the server computes it (POST /api/dvh).

    Fields the server adds beyond these are kept (``model_extra``) and sent back unchanged to
    the plot route.
    """

    model_config = ConfigDict(extra="allow")

    name: str = ""
    roi_number: int | None = None

    def statistics(self) -> dict[str, float | None]:
        """The statistics the server computed, by name (volume, min, mean, D95, V20Gy, ...).

        Each is its value in its unit (``statistics[name]["unit"]`` on the raw answer).
        """
        raw = (self.model_extra or {}).get("statistics") or {}
        return {name: entry.get("value") for name, entry in raw.items() if isinstance(entry, dict)}


class DVHResult(BaseModel):
    """The DVHs of the structures of an RTSTRUCT over an RTDOSE."""

    model_config = ConfigDict(extra="allow")

    dvhs: list[DVHCurve]

    @classmethod
    def from_answer(cls, answer: Any) -> DVHResult:
        """Read POST /api/dvh's answer: one DVH object, or ``{"dvhs": [...]}`` for several."""
        if isinstance(answer, dict) and "dvhs" not in answer:
            answer = {"dvhs": [answer]}
        return cls.model_validate(answer)


class ServerStatus(BaseModel):
    """GET /api/health and the archive's counts."""

    url: str
    status: str
    version: str = ""
    counts: dict[str, int] = Field(default_factory=dict)


class AiModel(BaseModel):
    """One AI model the server can run (GET /api/ai/models; fields as the server answers).

    ``accepts`` says what series it takes (modalities, body parts, instance counts);
    ``parameters`` are its defaults, which a job's parameters override.
    """

    model_config = ConfigDict(extra="allow")

    name: str
    version: str = ""
    task: str = ""
    description: str = ""
    accepts: dict[str, Any] = Field(default_factory=dict)
    weights_sha256: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class AiCatalog(BaseModel):
    """The server's models, and the model plugins that failed to load (source: reason)."""

    models: list[AiModel] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [model.name for model in self.models]

    def get(self, name: str) -> AiModel | None:
        """The model of that name, or None."""
        return next((model for model in self.models if model.name == name), None)


class AiJobState(StrEnum):
    """Where an AI job is: queued and running are pending, the others are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self not in (AiJobState.QUEUED, AiJobState.RUNNING)


class AiJob(BaseModel):
    """One AI job as the server shows it (GET /api/ai/jobs/{id}).

    ``result_series`` lists the series the job stored (each with at least ``modality`` and
    ``series``: SEG, RTSTRUCT, SR...); ``timings`` the seconds of each stage; ``error`` why
    the last attempt failed. Fields the server adds beyond these are kept (``model_extra``).
    """

    model_config = ConfigDict(extra="allow")

    id: str
    model: str
    study: str
    series: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    trigger: str = ""
    state: AiJobState
    progress: float = 0.0
    attempts: int = 0
    max_attempts: int = 1
    cancel_requested: bool = False
    error: str | None = None
    result_series: list[dict[str, Any]] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None

    @property
    def done(self) -> bool:
        """True once the job is succeeded, failed or cancelled."""
        return self.state.final

    def result_series_uids(self, modality: str | None = None) -> list[str]:
        """The Series Instance UIDs the job stored, of one modality or all."""
        return [
            str(entry.get("series", ""))
            for entry in self.result_series
            if modality is None or entry.get("modality") == modality
        ]


class AiBatch(BaseModel):
    """What POST /api/ai/batch did: the jobs submitted, and the series skipped (and why)."""

    jobs: list[AiJob] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)


class QualityControlStatus(StrEnum):
    """An instance's quality-control state (the DPAT client's QualityControlStatus)."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


class QualityControl(BaseModel):
    """An instance's quality-control status, comment, who set it and when (None: never)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    status: QualityControlStatus
    comment: str = ""
    set_by: str = ""
    updated_at: datetime | None = None


class RegisteredApp(BaseModel):
    """A callback app as the server has it registered (GET /api/apps)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    url: str
    modalities: list[str] = Field(default_factory=list)
    body_parts: list[str] = Field(default_factory=list)
    input: str = "series"
    trigger: str = "on-demand"
    enabled: bool = True
    timeout: float = 30.0
    stable_seconds: float = 10.0
    created_by: str = ""
    created_at: datetime | None = None


class AppDelivery(BaseModel):
    """How the analysis request reached the app: the delivery job's state and last error."""

    model_config = ConfigDict(extra="ignore")

    job: str
    state: str
    attempts: int = 0
    max_attempts: int = 0
    error: str | None = None


class AppAnalysis(BaseModel):
    """One analysis by a callback app: its UPS workitem's state (SCHEDULED, IN PROGRESS,
    COMPLETED, CANCELED), progress, reason, delivery, and the app's JSON result."""

    model_config = ConfigDict(extra="ignore")

    workitem: str
    app: str
    study: str
    series: list[str] = Field(default_factory=list)
    trigger: str = "on-demand"
    created_by: str = ""
    created_at: datetime | None = None
    state: str
    progress: float | None = None
    reason: str | None = None
    delivery: AppDelivery | None = None
    result: dict[str, Any] | None = None
    result_series: list[str] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in ("COMPLETED", "CANCELED")
