"""Job kinds and their handlers: what a worker runs for a job of each kind.

A handler is a function ``handler(ctx: JobContext) -> dict | JobOutcome | None`` named by
a ``"module:function"`` string, so that the worker's child process (a fresh interpreter)
imports only what the kind needs. The built-in kinds are in :data:`KINDS`; the setting
``job_kinds`` adds more (kind -> "module:function"), and :func:`register` adds one in
this process (tests). A handler raises to fail the attempt (it is retried with back-off
until ``max_attempts``); what it returns is the job's JSON result.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from radpacs.archive import Archive
from radpacs.archive.jobs import Job, JobStore
from radpacs.errors import InvalidInput
from radpacs.settings import Settings

__all__ = ["KINDS", "Handler", "JobContext", "JobOutcome", "handler_spec", "load", "register"]

KINDS: dict[str, str] = {
    "ai": "radpacs.ai.execute:run_ai_job",
    "deid.study": "radpacs.jobs.kinds:deid_study",
    "followup.study": "radpacs.followup.handlers:ingest_study",
    "followup.recompute": "radpacs.followup.handlers:recompute",
    "dimse.send": "radpacs.dimse.jobs:run_transfer",
    "dimse.move": "radpacs.dimse.jobs:run_transfer",
    "dimse.get": "radpacs.dimse.jobs:run_transfer",
    "app-delivery": "radpacs.apps.delivery:deliver",
    "app-cancel": "radpacs.apps.delivery:send_cancel",
}
"""The built-in kinds. Later kinds (follow-up, DIMSE moves, outbound calls) add a line."""

_registered: dict[str, str] = {}


@dataclass(frozen=True)
class JobOutcome:
    """What a handler may return: the JSON result and a large text output (optional)."""

    result: dict[str, Any] = field(default_factory=dict)
    output: str | None = None


@dataclass
class JobContext:
    """What a handler gets: the job, the settings, an open archive, a progress reporter."""

    job: Job
    settings: Settings
    archive: Archive
    store: JobStore
    _last: float = 0.0

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def progress(self, done: int, total: int | None = None) -> None:
        """Record ``done`` of ``total`` (written at most once per heartbeat interval,
        and always when ``done`` reaches ``total``)."""
        now = time.monotonic()
        finished = total is not None and done >= total
        if finished or now - self._last >= self.settings.ai_heartbeat_seconds:
            self._last = now
            self.store.progress(self.job.id, done, total, attempt=self.job.attempts)


Handler = Callable[[JobContext], "dict[str, Any] | JobOutcome | None"]


def register(kind: str, spec: str) -> None:
    """Add (or replace) the handler of ``kind`` in this process; ``spec`` is
    ``"module:function"``."""
    if ":" not in spec:
        raise ValueError(f"a job handler is named 'module:function', not {spec!r}")
    _registered[kind] = spec


def handler_spec(kind: str, settings: Settings) -> str:
    """The ``"module:function"`` of ``kind``; InvalidInput for a kind nobody handles."""
    spec = _registered.get(kind) or settings.job_kinds.get(kind) or KINDS.get(kind)
    if spec is None:
        raise InvalidInput(f"no handler for job kind {kind!r}")
    return spec


def load(spec: str) -> Handler:
    """Import the handler named ``"module:function"``."""
    module, _, name = spec.partition(":")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler
