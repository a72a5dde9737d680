"""Job kinds for the job tests, named through the ``job_kinds`` setting or ``register``.

Each handler appends one line per attempt to the file ``params["log"]`` (the time it ran,
in seconds since the epoch), so a test can count how often and when a job ran.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from radpacs.jobs import JobContext


def _log(ctx: JobContext) -> int:
    path = Path(ctx.params["log"])
    with path.open("a") as handle:
        handle.write(f"{time.time()} {ctx.job.id} {ctx.job.attempts}\n")
    return len(path.read_text().splitlines())


def record(ctx: JobContext) -> dict[str, Any]:
    """Succeed after ``params["seconds"]`` (default 0; with ``slow_once`` only in the first
    attempt) with progress 1 of 2, then 2 of 2; the result counts the attempts logged."""
    runs = _log(ctx)
    ctx.progress(1, 2)
    if ctx.job.attempts == 1 or not ctx.params.get("slow_once"):
        time.sleep(float(ctx.params.get("seconds", 0)))
    ctx.progress(2, 2)
    return {"runs": runs}


def fail(ctx: JobContext) -> dict[str, Any]:
    """Always fail (a failed attempt, retried with back-off)."""
    _log(ctx)
    raise RuntimeError("this kind always fails")
