"""The radpacs Python client: DICOMweb and the REST API of a radpacs server, with retries.

:class:`RadpacsClient` blocks, :class:`AsyncRadpacsClient` awaits; both have the same
methods and share their request building and answer parsing. Failed requests raise
:class:`radpacs.errors.RadpacsRequestError`; transport errors and 429/502/503/504 answers are
retried first, as :class:`RetryPolicy` says.

Example::

    from radpacs.client import RadpacsClient

    with RadpacsClient.from_config() as client:  # RADPACS_URL / RADPACS_TOKEN / config file
        summary = client.store(["scans/"])
        print(summary.counts())
"""

from radpacs.client._async import AsyncRadpacsClient
from radpacs.client._core import Call
from radpacs.client._retry import RetryPolicy
from radpacs.client._sync import RadpacsClient
from radpacs.client.schemas import (
    AiBatch,
    AiCatalog,
    AiJob,
    AiJobState,
    AiModel,
    AppAnalysis,
    AppDelivery,
    DicomCodes,
    DicomJSON,
    DVHCurve,
    DVHResult,
    InstanceOutcome,
    Outcome,
    QualityControl,
    QualityControlStatus,
    RegisteredApp,
    SearchMatch,
    ServerStatus,
    StoreSummary,
)
from radpacs.errors import AiJobError, AiJobTimeout, RadpacsRequestError

__all__ = [
    "AiBatch",
    "AiCatalog",
    "AiJob",
    "AiJobError",
    "AiJobState",
    "AiJobTimeout",
    "AiModel",
    "AppAnalysis",
    "AppDelivery",
    "AsyncRadpacsClient",
    "Call",
    "DVHCurve",
    "DVHResult",
    "DicomCodes",
    "DicomJSON",
    "InstanceOutcome",
    "Outcome",
    "QualityControl",
    "QualityControlStatus",
    "RadpacsClient",
    "RadpacsRequestError",
    "RegisteredApp",
    "RetryPolicy",
    "SearchMatch",
    "ServerStatus",
    "StoreSummary",
]
