"""What an app registration may say, checked before anything is stored.

:class:`AppSpec` is the body of a registration (pydantic: a wrong field is a 422 with its
errors); :func:`check_url` refuses a URL that is not http(s) or whose host is not allowed:
``apps_allowed_hosts`` holds host names, addresses or networks (CIDR); empty, only loopback
(``localhost``, 127.0.0.0/8, ::1) is allowed, so that no user-supplied URL makes radpacs
call into the internal network unless an administrator named the host in the settings
(docs/decisions.md, "apps: allowed hosts").

Example::

    check_url("http://127.0.0.1:9000/analyze", [])        # fine
    check_url("http://10.0.0.5/analyze", [])              # InvalidInput
    check_url("https://gpu1.lab/analyze", ["gpu1.lab"])   # fine
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from radpacs.archive.apps import AppRecord
from radpacs.errors import InvalidInput

__all__ = ["AppInput", "AppSpec", "AppTrigger", "AppUpdate", "check_url", "host_allowed"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class AppTrigger(StrEnum):
    """When an app runs: when a matching series has arrived, or only when asked."""

    ON_ARRIVAL = "on-arrival"
    ON_DEMAND = "on-demand"


class AppInput(StrEnum):
    """What one analysis request names: one series, or the whole study."""

    SERIES = "series"
    STUDY = "study"


class AppSpec(BaseModel):
    """A registration: ``POST /api/apps``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="lower case, 1-64")
    url: str = Field(min_length=8, max_length=2000, description="where requests are POSTed")
    modalities: list[str] = Field(default_factory=list, max_length=32)
    body_parts: list[str] = Field(default_factory=list, max_length=64)
    input: AppInput = AppInput.SERIES
    trigger: AppTrigger = AppTrigger.ON_DEMAND
    enabled: bool = True
    timeout: float = Field(default=30.0, gt=0, le=3600, description="seconds per delivery")
    stable_seconds: float = Field(
        default=10.0, ge=0, le=3600, description="on arrival: quiet seconds before a series runs"
    )

    def record(self, created_by: str) -> AppRecord:
        return AppRecord(
            name=self.name,
            url=self.url,
            modalities=[m.strip().upper() for m in self.modalities if m.strip()],
            body_parts=[b.strip().upper() for b in self.body_parts if b.strip()],
            input=self.input.value,
            trigger=self.trigger.value,
            enabled=self.enabled,
            timeout=self.timeout,
            stable_seconds=self.stable_seconds,
            created_by=created_by,
        )


class AppUpdate(BaseModel):
    """A change to a registration: ``PATCH /api/apps/{name}``; absent fields stay."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=8, max_length=2000)
    modalities: list[str] | None = Field(default=None, max_length=32)
    body_parts: list[str] | None = Field(default=None, max_length=64)
    input: AppInput | None = None
    trigger: AppTrigger | None = None
    enabled: bool | None = None
    timeout: float | None = Field(default=None, gt=0, le=3600)
    stable_seconds: float | None = Field(default=None, ge=0, le=3600)

    def apply(self, record: AppRecord) -> AppRecord:
        current = AppSpec(
            name=record.name,
            url=record.url,
            modalities=record.modalities,
            body_parts=record.body_parts,
            input=AppInput(record.input),
            trigger=AppTrigger(record.trigger),
            enabled=record.enabled,
            timeout=record.timeout,
            stable_seconds=record.stable_seconds,
        )
        changed = current.model_copy(update=self.model_dump(exclude_none=True))
        return changed.record(record.created_by)


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether ``host`` (a name or an address) is loopback when ``allowed`` is empty, else
    equal to a name of ``allowed`` or inside one of its addresses or networks."""
    host = host.lower().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if not allowed:
        return host in _LOOPBACK_NAMES or (address is not None and address.is_loopback)
    for entry in allowed:
        entry = entry.lower().strip()
        if entry == host:
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def check_url(url: str, allowed: list[str]) -> str:
    """``url`` if it is http(s) with an allowed host and no credentials; else InvalidInput."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError as exc:
        raise InvalidInput(f"the app URL {url!r} is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"the app URL must be http or https, not {parts.scheme or 'none'!r}")
    if not host:
        raise InvalidInput(f"the app URL {url!r} names no host")
    if parts.username or parts.password:
        raise InvalidInput("the app URL must not carry a user name or password")
    if not host_allowed(host, allowed):
        where = ", ".join(allowed) if allowed else "loopback only (apps_allowed_hosts is empty)"
        raise InvalidInput(f"the app host {host!r} is not allowed; allowed: {where}")
    return url
