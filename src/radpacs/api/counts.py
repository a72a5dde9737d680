"""GET /api/counts: how many patients, studies, series and instances the archive holds."""

from __future__ import annotations

from fastapi import APIRouter

from radpacs.http.deps import ArchiveDep

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/counts")
def counts(archive: ArchiveDep) -> dict[str, int]:
    """``{"patients": n, "studies": n, "series": n, "instances": n}`` from the index."""
    return archive.counts()
