"""Handlers of the follow-up job kinds (see :mod:`radpacs.followup.jobs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radpacs.errors import NotFound
from radpacs.followup.feed import FollowupService

if TYPE_CHECKING:
    from radpacs.jobs import JobContext

__all__ = ["ingest_source", "recompute"]


def ingest_source(ctx: JobContext) -> dict[str, Any]:
    """Handler of ``followup.source``."""
    sop_uid = str(ctx.params["sop_uid"])
    service = FollowupService.from_settings(ctx.settings, ctx.archive)
    try:
        record = service.ingest(sop_uid)
    except NotFound:
        return {"sop_uid": sop_uid, "state": "gone", "note": "deleted before it was read"}
    return {k: v for k, v in record.items() if k != "patient_name"}


def recompute(ctx: JobContext) -> dict[str, Any]:
    """Handler of ``followup.recompute``."""
    patient_id = str(ctx.params["patient_id"])
    result = FollowupService.from_settings(ctx.settings, ctx.archive).recompute(patient_id)
    return {
        "patient_id": patient_id,
        "timepoints": len(result.timepoints),
        "lesions": len(result.lesions),
    }
