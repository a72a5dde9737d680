"""The exceptions radpacs raises, rooted at :class:`RadpacsError`.

Hierarchy::

    RadpacsError
     ├── ConfigurationError       a setting is missing or unsafe
     ├── InvalidInstance          a DICOM object cannot be stored (carries a PS3.18 FailureReason)
     │    └── DuplicateInstance   another object is already stored under this SOP Instance UID
     ├── StorageError             the blob store or the index failed (I/O, database)
     ├── NotFound                 no study, series, instance, frame or attribute with that key
     ├── InvalidQuery             a QIDO-RS parameter is unknown or malformed
     ├── InvalidInput             an input file or parameter is not what the operation needs
     └── NotAcceptable            the requested representation cannot be produced

Domain code raises these; only the HTTP layer turns them into responses.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DuplicateInstance",
    "InvalidInput",
    "InvalidInstance",
    "InvalidQuery",
    "NotAcceptable",
    "NotFound",
    "RadpacsError",
    "StorageError",
]


class RadpacsError(Exception):
    """Root of every error radpacs raises on purpose."""


class ConfigurationError(RadpacsError):
    """A setting is missing, malformed or unsafe."""


class InvalidInstance(RadpacsError):
    """A DICOM object cannot be stored.

    ``failure_reason`` is the PS3.18 Table 10.5.3-3 / PS3.4 status code reported in the
    STOW-RS FailedSOPSequence; ``sop_class_uid`` and ``sop_instance_uid`` are filled when
    they could be read.
    """

    def __init__(
        self,
        message: str,
        failure_reason: int = 0xC000,
        sop_class_uid: str = "",
        sop_instance_uid: str = "",
    ) -> None:
        super().__init__(message)
        self.failure_reason = failure_reason
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid


class DuplicateInstance(InvalidInstance):
    """A different object is already stored under this SOP Instance UID (policy: reject)."""

    def __init__(self, sop_class_uid: str, sop_instance_uid: str) -> None:
        super().__init__(
            f"another object is already stored as SOP Instance {sop_instance_uid} "
            "(duplicate_policy=reject)",
            failure_reason=0x0111,
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid,
        )


class StorageError(RadpacsError):
    """The blob store or the index failed; nothing was half-written."""


class NotFound(RadpacsError):
    """No resource matches the key that was asked for."""


class InvalidQuery(RadpacsError):
    """A query parameter is unknown or malformed; the message names it."""


class InvalidInput(RadpacsError):
    """An input (a file, a parameter) is not what the operation needs; the message says why."""


class NotAcceptable(RadpacsError):
    """The requested media type or transfer syntax cannot be produced for this resource."""
