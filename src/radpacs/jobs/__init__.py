"""Durable background jobs of every kind: one table, one queue, workers that run any kind.

A job is a row of the ``job`` table (:mod:`radpacs.archive.jobs`): kind, JSON params,
progress (done of total), result, error, attempts, heartbeat. Its id goes on the queue
(:mod:`radpacs.jobs.queue`, huey on SQLite or Redis); a worker (:mod:`radpacs.jobs.worker`)
claims it and runs the kind's handler (:mod:`radpacs.jobs.registry`) in a child process.
Jobs survive restarts and every process sharing the index sees them.

Adding a kind::

    # radpacs/followup/jobs.py
    def recompute(ctx: JobContext) -> dict[str, object]:
        for done, item in enumerate(items, start=1):
            ...
            ctx.progress(done, len(items))
        return {"updated": len(items)}

    # radpacs/jobs/registry.py, KINDS:  "followup.recompute": "radpacs.followup.jobs:recompute"
    job, created = services.jobs.submit("followup.recompute", {"patient": pid})
"""

from radpacs.jobs.registry import KINDS, Handler, JobContext, JobOutcome, register
from radpacs.jobs.service import Jobs

__all__ = ["KINDS", "Handler", "JobContext", "JobOutcome", "Jobs", "register"]
