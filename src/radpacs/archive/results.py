"""The values the archive answers with: store outcomes, stored files, search pages, checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from radpacs.archive.ingest import ParsedInstance
from radpacs.errors import InvalidInstance

__all__ = ["CheckReport", "InstanceFile", "JsonObject", "Outcome", "SearchResult", "StoreResult"]

JsonObject = dict[str, Any]


class Outcome(StrEnum):
    """What happened to one object of a store request."""

    STORED = "stored"
    ALREADY_STORED = "already_stored"
    REPLACED = "replaced"
    FAILED = "failed"


@dataclass(frozen=True)
class StoreResult:
    """The fate of one object; ``failure_reason`` is set when ``outcome`` is FAILED."""

    outcome: Outcome
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    failure_reason: int | None = None
    message: str = ""

    @classmethod
    def failed(cls, error: InvalidInstance) -> StoreResult:
        return cls(
            Outcome.FAILED,
            error.sop_class_uid,
            error.sop_instance_uid,
            failure_reason=error.failure_reason,
            message=str(error),
        )

    @classmethod
    def of(cls, outcome: Outcome, parsed: ParsedInstance, message: str = "") -> StoreResult:
        return cls(
            outcome,
            parsed.sop_class_uid,
            parsed.sop_uid,
            parsed.study_uid,
            parsed.series_uid,
            message=message,
        )


@dataclass(frozen=True)
class InstanceFile:
    """Where a stored instance is and what a retrieve needs to know about it."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    storage_key: str
    size: int
    number_of_frames: int | None
    digest: str


@dataclass
class SearchResult:
    """One page of QIDO-RS results and whether more results exist past it."""

    matches: list[JsonObject]
    has_more: bool


@dataclass
class CheckReport:
    """Files without index rows (orphans), index rows without files (missing), and temporary
    files of interrupted writes."""

    orphan_keys: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    cleaned: int = 0
    temporaries: list[str] = field(default_factory=list)
    temporaries_cleaned: int = 0
