"""The exceptions radpacs raises, rooted at :class:`RadpacsError`.

Hierarchy::

    RadpacsError
     ├── ConfigurationError       a setting is missing or unsafe
     ├── InvalidInstance          a DICOM object cannot be stored (carries a PS3.18 FailureReason)
     │    └── DuplicateInstance   another object is already stored under this SOP Instance UID
     ├── StorageError             blob store, index, job queue or shared Redis failed
     ├── NotFound                 no study, series, instance, frame or attribute with that key
     ├── InvalidQuery             a QIDO-RS parameter is unknown or malformed
     ├── InvalidInput             an input file or parameter is not what the operation needs
     ├── NotAcceptable            the requested representation cannot be produced
     ├── AuthenticationError      no credentials, or wrong, expired, revoked or forged ones
     ├── PermissionDenied         the caller's roles do not grant the permission asked for
     ├── Conflict                 the resource already exists (an account name)
     ├── TooManyAttempts          login attempts are rate limited (carries ``retry_after``)
     ├── RadpacsRequestError      a request of the client to a radpacs server failed
     ├── RemoteNodeError          a remote DICOM node was unreachable, refused or failed (DIMSE)
     └── AiJobError               an AI job the client waited for failed or was cancelled
          └── AiJobTimeout        ... or was still pending when the wait ended (a TimeoutError)

Domain code raises these; only the HTTP layer turns them into responses.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AiJobError",
    "AiJobTimeout",
    "AuthenticationError",
    "ConfigurationError",
    "Conflict",
    "DuplicateInstance",
    "InvalidInput",
    "InvalidInstance",
    "InvalidQuery",
    "NotAcceptable",
    "NotFound",
    "PermissionDenied",
    "RadpacsError",
    "RadpacsRequestError",
    "RemoteNodeError",
    "StorageError",
    "TooManyAttempts",
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
    """The blob store, the index, the job queue or the shared Redis failed; nothing was
    half-written."""


class NotFound(RadpacsError):
    """No resource matches the key that was asked for."""


class InvalidQuery(RadpacsError):
    """A query parameter is unknown or malformed; the message names it."""


class InvalidInput(RadpacsError):
    """An input (a file, a parameter) is not what the operation needs; the message says why."""


class NotAcceptable(RadpacsError):
    """The requested media type or transfer syntax cannot be produced for this resource."""


class RadpacsRequestError(RadpacsError):
    """A request of :mod:`radpacs.client` failed: an error status, or no answer after retries.

    ``status_code`` is None when no response came (connection refused, timeout);
    ``text`` is the response body (or the transport error), cut to 2000 characters.
    """

    def __init__(self, method: str, path: str, status_code: int | None, text: str) -> None:
        self.method = method
        self.path = path
        self.status_code = status_code
        self.text = text[:2000]
        status = f"HTTP {status_code}" if status_code is not None else "no response"
        super().__init__(f"{method} {path}: {status}: {self.text.strip() or '(empty body)'}")


class RemoteNodeError(RadpacsError):
    """A remote DICOM node could not be reached, refused the association, or answered a
    failure status; ``node`` is its AE title."""

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        super().__init__(f"DICOM node {node}: {message}")


class AiJobError(RadpacsError):
    """An AI job waited for by :mod:`radpacs.client` ended failed or cancelled.

    ``job`` is the final job (a ``radpacs.client.AiJob``); ``job_id``, ``state`` and
    ``reason`` (the server's error text) are copied from it.
    """

    def __init__(self, job: Any, message: str | None = None) -> None:
        self.job = job
        self.job_id = str(job.id)
        self.state = str(job.state)
        self.reason = str(job.error or "")
        super().__init__(
            message
            or f"AI job {self.job_id} {self.state}" + (f": {self.reason}" if self.reason else "")
        )


class AiJobTimeout(AiJobError, TimeoutError):
    """An AI job was still queued or running when the client stopped waiting; ``job`` is its
    last state (the job goes on: cancel it or wait again)."""


class AuthenticationError(RadpacsError):
    """No credentials, or credentials that are wrong, expired, revoked or not ours (HTTP 401)."""


class PermissionDenied(RadpacsError):
    """The caller is known but its roles do not grant what the operation needs (HTTP 403)."""


class Conflict(RadpacsError):
    """The resource to create already exists, such as an account name (HTTP 409)."""


class TooManyAttempts(RadpacsError):
    """Too many failed logins from one address for one name; retry after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
