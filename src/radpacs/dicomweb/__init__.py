"""DICOMweb over HTTP (PS3.18): QIDO-RS, WADO-RS, STOW-RS, delete and UPS-RS, under /dicom-web."""

from fastapi import APIRouter

from radpacs.dicomweb import by_uid, delete, metadata, qido, rendered, stow, wado, workitems

__all__ = ["router"]

router = APIRouter(prefix="/dicom-web")
for module in (qido, metadata, wado, rendered, stow, delete, by_uid, workitems):
    router.include_router(module.router)
