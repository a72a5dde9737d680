"""In CI, a test skipped because a required peer is missing fails instead.

The peers CI installs (scripts/test, scripts/install-system-deps) are required there:
Chromium and Playwright, PostgreSQL, Redis, DCMTK, Orthanc, dicom3tools, deepbet/torch.
A skip whose reason names one of them, or a skip of a test marked ``peer`` or
``postgres``, is reported as a failure when the environment variable ``CI`` is set (and
not ``0``/``false``). Outside CI such tests still skip, so a developer without, say,
Redis can run the rest. tests/conftest.py imports the hook.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from typing import Any

import pytest

REQUIRED_PEERS = re.compile(
    r"chromium|playwright|postgres|redis|dcmtk|orthanc|dciodvfy|dicom3tools|deepbet|torch",
    re.IGNORECASE,
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    reason = _reason(report)
    marked = any(item.get_closest_marker(name) for name in ("peer", "postgres"))
    if marked or REQUIRED_PEERS.search(reason):
        report.outcome = "failed"
        report.longrepr = f"CI requires this peer, but the test was skipped: {reason}"
