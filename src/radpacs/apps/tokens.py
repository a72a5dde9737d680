"""The short-lived token an app gets with each analysis request.

Signed like every radpacs token (:mod:`radpacs.auth.tokens`, the installation's secret), with
``sub`` = ``app:<name>`` and the claim ``study_scope`` naming the study and the workitem;
it lives ``apps_token_minutes`` (default 60). With it an app reads that study over QIDO-RS
and WADO-RS (metadata, frames, rendered), stores into it over STOW-RS and posts the result
of its workitem; nothing else (:data:`radpacs.auth.policy.SCOPED_ROUTES`).
"""

from __future__ import annotations

from datetime import timedelta

from radpacs.auth.tokens import IssuedToken, TokenIssuer, signing_secret
from radpacs.settings import Settings

__all__ = ["app_subject", "issue_app_token"]


def app_subject(name: str) -> str:
    """The ``sub`` of an app's tokens, and the user name its requests are audited under."""
    return f"app:{name}"


def issue_app_token(
    settings: Settings, app: str, study_uid: str, workitem_uid: str, now: float | None = None
) -> IssuedToken:
    """A token for ``app`` limited to ``study_uid`` and ``workitem_uid``."""
    issuer = TokenIssuer(signing_secret(settings.auth_secret, settings.data_dir))
    return issuer.issue_scoped(
        app_subject(app),
        study_uid,
        workitem_uid,
        timedelta(minutes=settings.apps_token_minutes),
        now=now,
    )
