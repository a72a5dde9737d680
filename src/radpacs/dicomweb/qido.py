"""QIDO-RS (PS3.18 10.6): search studies, series and instances, answered as DICOM JSON.

Every match carries RetrieveURL, SpecificCharacterSet ``ISO_IR 192`` (the answer is
Unicode, whatever the stored sets) and, for studies and instances, InstanceAvailability
``ONLINE`` (every stored file is served at once), as PS3.18 Tables 10.6.3-3 to -5 list them.
TimezoneOffsetFromUTC is not indexed: ask for it with ``includefield=00080201`` and it is
read from a stored instance. When ``limit`` (or the server's qido_max_results) cut the
results, a ``Warning: 299`` header says that more can be requested with ``offset``. Accept
``multipart/related; type="application/dicom+xml"`` gives one PS3.19 Native DICOM Model
document per match instead of DICOM JSON.

``?phi=false`` (a radpacs extension), and every request with a no-PHI token, answers the
no-PHI view of :mod:`radpacs.deid.json_view`, and refuses (400) matching on an attribute
that view hides (e.g. ``PatientName=Doe*``), which would reveal it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydicom.datadict import tag_for_keyword

from radpacs.archive import Level, parse_query
from radpacs.archive.query import parse_patient_query
from radpacs.deid.json_view import is_protected, without_phi
from radpacs.dicom.json import attribute, json_to_bytes
from radpacs.dicomweb.negotiation import wants_xml
from radpacs.dicomweb.responses import json_body_response, xml_response
from radpacs.errors import InvalidQuery, PermissionDenied
from radpacs.http.deps import ArchiveDep, SettingsDep, dicomweb_root, phi_visible

__all__ = ["router"]

router = APIRouter(tags=["QIDO-RS"])

# the access token of simple links, read by the auth layer; phi, read by phi_visible
_IGNORED_PARAMETERS = {"token", "phi"}
_CONTROL_PARAMETERS = {"includefield", "limit", "offset", "fuzzymatching"}
_CHARACTER_SET = "ISO_IR 192"  # DICOM JSON and XML carry Unicode
_ONLINE = "ONLINE"  # InstanceAvailability (0008,0056): every stored file is served at once


def _search(
    request: Request,
    archive: ArchiveDep,
    settings: SettingsDep,
    level: Level,
    study: str | None = None,
    series: str | None = None,
) -> Response:
    xml = wants_xml(request.headers.get("accept"))
    params = [
        (name, value)
        for name, value in request.query_params.multi_items()
        if name not in _IGNORED_PARAMETERS
    ]
    phi = phi_visible(request)
    if not phi:
        _refuse_protected_keys(params)
    query = parse_query(
        level, params, study_uid=study, series_uid=series, max_results=settings.qido_max_results
    )
    result = archive.search(query)
    root = dicomweb_root(request)
    for match in result.matches:
        url = f"{root}/studies/{match['0020000D']['Value'][0]}"
        if level is not Level.STUDY:
            url += f"/series/{match['0020000E']['Value'][0]}"
        if level is Level.INSTANCE:
            url += f"/instances/{match['00080018']['Value'][0]}"
        match["00081190"] = attribute("UR", url)
        match.setdefault("00080005", attribute("CS", _CHARACTER_SET))
        if level is not Level.SERIES:
            match.setdefault("00080056", attribute("CS", _ONLINE))
    matches = result.matches if phi else without_phi(result.matches)
    warnings = []
    if result.has_more:
        warnings.append(
            "There are additional results that can be requested with offset="
            f"{query.offset + query.limit}"
        )
    if xml:
        return xml_response(matches, warnings)
    response = json_body_response(request, json_to_bytes(matches), warnings=warnings)
    response.headers["Cache-Control"] = "private"
    return response


def _refuse_protected_keys(params: list[tuple[str, str]]) -> None:
    for name, _ in params:
        if name.lower() in _CONTROL_PARAMETERS:
            continue
        for step in name.split("."):
            tag = tag_for_keyword(step)
            if tag is None:
                try:
                    tag = int(step, 16) if len(step) == 8 else None
                except ValueError:
                    tag = None
            if tag is not None and is_protected(tag):
                raise InvalidQuery(
                    f"matching on {name} is not allowed without PHI (phi=false or a no-PHI "
                    "token): that attribute is removed from the answers"
                )


@router.get("/studies", summary="Search for studies")
def search_studies(request: Request, archive: ArchiveDep, settings: SettingsDep) -> Response:
    return _search(request, archive, settings, Level.STUDY)


@router.get("/series", summary="Search for series")
def search_series(request: Request, archive: ArchiveDep, settings: SettingsDep) -> Response:
    return _search(request, archive, settings, Level.SERIES)


@router.get("/instances", summary="Search for instances")
def search_instances(request: Request, archive: ArchiveDep, settings: SettingsDep) -> Response:
    return _search(request, archive, settings, Level.INSTANCE)


@router.get("/studies/{study}/series", summary="Search for series of a study")
def search_study_series(
    study: str, request: Request, archive: ArchiveDep, settings: SettingsDep
) -> Response:
    return _search(request, archive, settings, Level.SERIES, study)


@router.get("/studies/{study}/instances", summary="Search for instances of a study")
def search_study_instances(
    study: str, request: Request, archive: ArchiveDep, settings: SettingsDep
) -> Response:
    return _search(request, archive, settings, Level.INSTANCE, study)


@router.get(
    "/studies/{study}/series/{series}/instances", summary="Search for instances of a series"
)
def search_series_instances(
    study: str, series: str, request: Request, archive: ArchiveDep, settings: SettingsDep
) -> Response:
    return _search(request, archive, settings, Level.INSTANCE, study, series)


@router.get("/patients", summary="Search for patients (beyond PS3.18)")
def search_patients(request: Request, archive: ArchiveDep, settings: SettingsDep) -> Response:
    """Patients matching PatientName, PatientID, IssuerOfPatientID, PatientBirthDate or
    PatientSex, with NumberOfPatientRelatedStudies (0020,1200); not part of PS3.18. Refused
    (403) without PHI: a patient list is identity and nothing else."""
    if not phi_visible(request):
        raise PermissionDenied("the patient list is not served without PHI")
    params = [
        (name, value)
        for name, value in request.query_params.multi_items()
        if name not in _IGNORED_PARAMETERS
    ]
    query = parse_patient_query(params, max_results=settings.qido_max_results)
    result = archive.search_patients(query)
    warnings = []
    if result.has_more:
        warnings.append(
            "There are additional results that can be requested with offset="
            f"{query.offset + query.limit}"
        )
    return json_body_response(request, json_to_bytes(result.matches), warnings=warnings)
