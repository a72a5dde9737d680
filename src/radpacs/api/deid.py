"""POST /api/anonymize: one DICOM file in, the de-identified file out (PS3.15 Annex E).

Options are boolean query parameters named after :class:`radpacs.deid.Option` values
(``?retain_uids=true&clean_descriptors=true``), or a form field ``options`` holding a
comma-separated list of them. ``pixels_checked=true`` states that the pixels of an
instance with Burned In Annotation YES were checked; without it such an instance gets
400. The per-installation secret comes from :func:`radpacs.deid.secret.installation_secret`.

The stored-study routes (/api/deid/...) are in :mod:`radpacs.api.deid_study`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from radpacs.deid import Anonymizer, Option, PseudonymStore
from radpacs.deid.files import anonymize_bytes
from radpacs.deid.secret import installation_secret
from radpacs.errors import InvalidInput
from radpacs.http.deps import PseudonymStoreDep, SettingsDep
from radpacs.settings import Settings

__all__ = ["anonymizer_for", "router"]

router = APIRouter(prefix="/api", tags=["deid"])


def _listed_options(flags: dict[Option, bool], listed: str | None) -> list[Option | str]:
    """The flagged Options and the comma-separated names; Profile checks the names."""
    chosen: list[Option | str] = [option for option, on in flags.items() if on]
    chosen += [name.strip() for name in (listed or "").split(",") if name.strip()]
    return chosen


def anonymizer_for(
    settings: Settings, store: PseudonymStore, options: Iterable[Option | str]
) -> Anonymizer:
    """An Anonymizer with this installation's secret and pseudonym store; InvalidInput for
    an unknown or contradictory Option."""
    secret = installation_secret(settings.deid_secret, settings.data_dir)
    try:
        return Anonymizer(secret, options, store=store)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


@router.post(
    "/anonymize",
    response_class=Response,
    responses={
        200: {"content": {"application/dicom": {}}, "description": "the de-identified file"}
    },
)
def anonymize(
    settings: SettingsDep,
    store: PseudonymStoreDep,
    file: Annotated[UploadFile, File(description="one DICOM file")],
    options: Annotated[str | None, Form(description="comma-separated Option values")] = None,
    retain_safe_private: bool = Query(False),
    retain_uids: bool = Query(False),
    retain_device_identity: bool = Query(False),
    retain_institution_identity: bool = Query(False),
    retain_patient_characteristics: bool = Query(False),
    retain_longitudinal_full_dates: bool = Query(False),
    retain_longitudinal_modified_dates: bool = Query(False),
    clean_descriptors: bool = Query(False),
    pixels_checked: bool = Query(False),
) -> Response:
    """De-identify the uploaded file by the Basic Profile and the Options asked for."""
    flags = {
        Option.RETAIN_SAFE_PRIVATE: retain_safe_private,
        Option.RETAIN_UIDS: retain_uids,
        Option.RETAIN_DEVICE_IDENTITY: retain_device_identity,
        Option.RETAIN_INSTITUTION_IDENTITY: retain_institution_identity,
        Option.RETAIN_PATIENT_CHARACTERISTICS: retain_patient_characteristics,
        Option.RETAIN_LONGITUDINAL_FULL_DATES: retain_longitudinal_full_dates,
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: retain_longitudinal_modified_dates,
        Option.CLEAN_DESCRIPTORS: clean_descriptors,
    }
    anonymizer = anonymizer_for(settings, store, _listed_options(flags, options))
    data = file.file.read()
    body = anonymize_bytes(
        anonymizer, data, pixels_checked=pixels_checked, name=file.filename or "file"
    )
    return Response(
        body,
        media_type="application/dicom",
        headers={"Content-Disposition": 'attachment; filename="anonymized.dcm"'},
    )
