"""Longitudinal follow-up of lesions: patient -> timepoint -> lesion -> measurement.

Domain code only (no HTTP, no database): :mod:`.extract` reads findings from SEG, RTSTRUCT
and TID 1500 SR objects, :mod:`.geometry` measures them in patient space, :mod:`.matching`
pairs lesions across timepoints, :mod:`.response` applies RECIST 1.1, volumetric and RANO-BM
criteria, :mod:`.tracking` puts it together, :mod:`.export` writes CSV, JSON and DICOM SR.
"""

from radpacs.followup.model import Finding, LesionRole, SourceKind
from radpacs.followup.response import Criteria
from radpacs.followup.tracking import Correction, CorrectionKind, PatientFollowup, track

__all__ = [
    "Correction",
    "CorrectionKind",
    "Criteria",
    "Finding",
    "LesionRole",
    "PatientFollowup",
    "SourceKind",
    "track",
]
