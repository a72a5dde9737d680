"""Handlers of the follow-up job kinds (see :mod:`radpacs.followup.jobs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radpacs.followup.feed import FollowupService

if TYPE_CHECKING:
    from radpacs.jobs import JobContext

__all__ = ["ingest_study", "recompute"]


def ingest_study(ctx: JobContext) -> dict[str, Any]:
    """Handler of ``followup.study``."""
    study_uid = str(ctx.params["study_uid"])
    service = FollowupService.from_settings(ctx.settings, ctx.archive)
    records = service.ingest_study(study_uid, ctx.progress)
    return {
        "study_uid": study_uid,
        "sources": [{k: v for k, v in record.items() if k != "patient_name"} for record in records],
    }


def recompute(ctx: JobContext) -> dict[str, Any]:
    """Handler of ``followup.recompute``."""
    patient_id = str(ctx.params["patient_id"])
    result = FollowupService.from_settings(ctx.settings, ctx.archive).recompute(patient_id)
    return {
        "patient_id": patient_id,
        "timepoints": len(result.timepoints),
        "lesions": len(result.lesions),
    }
