"""De-identification by DICOM PS3.15 Annex E: the Basic Profile, its Options, pseudonyms.

Pure domain code: no HTTP, no database. The HTTP routes live in :mod:`radpacs.api.deid`,
the command in :mod:`radpacs.cli.deid`.

Example::

    from radpacs.deid import Anonymizer, Option

    anonymizer = Anonymizer(secret, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    clean = anonymizer.anonymize(dataset)
"""

from radpacs.deid.anonymizer import DEIDENTIFICATION_METHOD, Anonymizer
from radpacs.deid.profile import Action, Option, Profile
from radpacs.deid.pseudonyms import (
    MemoryPseudonymStore,
    PatientPseudonym,
    PatientRecord,
    Pseudonyms,
    PseudonymStore,
)

__all__ = [
    "DEIDENTIFICATION_METHOD",
    "Action",
    "Anonymizer",
    "MemoryPseudonymStore",
    "Option",
    "PatientPseudonym",
    "PatientRecord",
    "Profile",
    "PseudonymStore",
    "Pseudonyms",
]
