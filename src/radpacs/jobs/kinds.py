"""Handlers of built-in kinds that need parts from more than one package.

``deid.study`` joins the de-identification domain (:mod:`radpacs.deid.jobs`) with the
database pseudonym store of the archive, which :mod:`radpacs.deid` may not import.
"""

from __future__ import annotations

from typing import Any

from radpacs.archive.pseudonym_store import DatabasePseudonymStore
from radpacs.deid import Anonymizer
from radpacs.deid.jobs import run_study
from radpacs.deid.secret import installation_secret
from radpacs.jobs.registry import JobContext

__all__ = ["deid_study"]


def deid_study(ctx: JobContext) -> dict[str, Any]:
    """Store a de-identified copy of a study with this installation's secret and store."""
    settings = ctx.settings
    anonymizer = Anonymizer(
        installation_secret(settings.deid_secret, settings.data_dir),
        ctx.params.get("options", []),
        store=DatabasePseudonymStore(ctx.archive.engine),
    )
    return run_study(ctx.archive, anonymizer, ctx.params, ctx.progress)
