"""The one policy table: which permission each route needs, and what the audit calls it.

Every route of the application is looked up here by (method, path template) — for a
mounted sub-application by ("MOUNT", prefix) — when a request arrives. A route that is
missing is refused with 403 (default deny), and ``tests/test_auth_policy.py`` fails for
any route of :func:`radpacs.app.create_app` without an entry, so a new route cannot ship
unprotected. ``action`` names the audit event; None means the route is not audited
(it does not touch patient data or accounts).

Entries for routes of branches not merged yet (rendered, DVH) are listed so that those
routes are protected the moment they land; the enumeration test tells if a path differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from radpacs.auth.roles import Permission

__all__ = [
    "NO_PHI_ROUTES",
    "POLICY",
    "SCOPED_ROUTES",
    "WORKSHOP_OPEN",
    "Rule",
    "no_phi_allowed",
    "rule_for",
    "scoped_refusal",
]


@dataclass(frozen=True)
class Rule:
    """The permission a route needs and the audit action it records (None: not audited)."""

    permission: Permission
    action: str | None = None


P = Permission
_DW = "/dicom-web"
_STUDY = f"{_DW}/studies/{{study}}"
_SERIES = f"{_STUDY}/series/{{series}}"
_INSTANCE = f"{_SERIES}/instances/{{instance}}"
_FRAMES = f"{_INSTANCE}/frames/{{frames}}"

POLICY: dict[tuple[str, str], Rule] = {
    # public: greeting, probe, API documentation, login and (when open) enrolment
    ("GET", "/api"): Rule(P.PUBLIC),
    ("GET", "/api/health"): Rule(P.PUBLIC),
    ("GET", "/docs"): Rule(P.PUBLIC),
    ("GET", "/docs/oauth2-redirect"): Rule(P.PUBLIC),
    ("GET", "/redoc"): Rule(P.PUBLIC),
    ("GET", "/openapi.json"): Rule(P.PUBLIC),
    ("POST", "/api/auth"): Rule(P.PUBLIC, "login"),
    ("POST", "/api/session"): Rule(P.PUBLIC, "login"),
    ("POST", "/api/account"): Rule(P.PUBLIC, "enrol"),
    # the web UI shell, the viewer's files and static assets hold no patient data: the data
    # they show comes through the DICOMweb routes below, which check the caller
    ("GET", "/"): Rule(P.PUBLIC),
    ("GET", "/followup"): Rule(P.PUBLIC),
    ("GET", "/tracking"): Rule(P.PUBLIC),
    ("GET", "/rt"): Rule(P.PUBLIC),
    ("GET", "/favicon.ico"): Rule(P.PUBLIC),
    ("GET", "/viewer"): Rule(P.PUBLIC),
    ("GET", "/viewer/{path:path}"): Rule(P.PUBLIC),
    ("MOUNT", "/static"): Rule(P.PUBLIC),
    # any valid token
    ("GET", "/api/auth/me"): Rule(P.AUTHENTICATED),
    ("POST", "/api/auth/revoke"): Rule(P.AUTHENTICATED, "revoke-token"),
    ("DELETE", "/api/session"): Rule(P.AUTHENTICATED, "logout"),
    # QIDO-RS (PS3.18 10.6)
    ("GET", f"{_DW}/studies"): Rule(P.READ, "search"),
    ("GET", f"{_DW}/series"): Rule(P.READ, "search"),
    ("GET", f"{_DW}/instances"): Rule(P.READ, "search"),
    ("GET", f"{_DW}/patients"): Rule(P.READ, "search"),  # beyond PS3.18
    ("GET", f"{_STUDY}/series"): Rule(P.READ, "search"),
    ("GET", f"{_STUDY}/instances"): Rule(P.READ, "search"),
    ("GET", f"{_SERIES}/instances"): Rule(P.READ, "search"),
    # WADO-RS (PS3.18 10.4): instances, metadata, frames, bulk data, rendered
    ("GET", _STUDY): Rule(P.READ, "retrieve"),
    ("GET", _SERIES): Rule(P.READ, "retrieve"),
    ("GET", _INSTANCE): Rule(P.READ, "retrieve"),
    ("GET", f"{_STUDY}/metadata"): Rule(P.READ, "retrieve-metadata"),
    ("GET", f"{_SERIES}/metadata"): Rule(P.READ, "retrieve-metadata"),
    ("GET", f"{_INSTANCE}/metadata"): Rule(P.READ, "retrieve-metadata"),
    ("GET", _FRAMES): Rule(P.READ, "retrieve-frames"),
    ("GET", f"{_INSTANCE}/bulkdata/{{path:path}}"): Rule(P.READ, "retrieve-bulkdata"),
    ("GET", f"{_STUDY}/rendered"): Rule(P.READ, "retrieve-rendered"),
    ("GET", f"{_SERIES}/rendered"): Rule(P.READ, "retrieve-rendered"),
    ("GET", f"{_INSTANCE}/rendered"): Rule(P.READ, "retrieve-rendered"),
    ("GET", f"{_FRAMES}/rendered"): Rule(P.READ, "retrieve-rendered"),
    ("GET", f"{_STUDY}/thumbnail"): Rule(P.READ, "retrieve-rendered"),
    # the same by a series or instance UID alone (beyond PS3.18; dicomweb/by_uid.py)
    ("GET", f"{_DW}/series/{{series}}"): Rule(P.READ, "retrieve"),
    ("GET", f"{_DW}/series/{{series}}/metadata"): Rule(P.READ, "retrieve-metadata"),
    ("GET", f"{_DW}/series/{{series}}/rendered"): Rule(P.READ, "retrieve-rendered"),
    ("GET", f"{_DW}/series/{{series}}/thumbnail"): Rule(P.READ, "retrieve-rendered"),
    ("GET", f"{_DW}/instances/{{instance}}"): Rule(P.READ, "retrieve"),
    ("GET", f"{_DW}/instances/{{instance}}/metadata"): Rule(P.READ, "retrieve-metadata"),
    ("GET", f"{_DW}/instances/{{instance}}/frames/{{frames}}"): Rule(P.READ, "retrieve-frames"),
    ("GET", f"{_DW}/instances/{{instance}}/rendered"): Rule(P.READ, "retrieve-rendered"),
    ("GET", f"{_DW}/instances/{{instance}}/frames/{{frames}}/rendered"): Rule(
        P.READ, "retrieve-rendered"
    ),
    ("GET", f"{_DW}/instances/{{instance}}/thumbnail"): Rule(P.READ, "retrieve-rendered"),
    ("GET", f"{_SERIES}/thumbnail"): Rule(P.READ, "retrieve-rendered"),
    ("GET", f"{_INSTANCE}/thumbnail"): Rule(P.READ, "retrieve-rendered"),
    ("GET", f"{_FRAMES}/thumbnail"): Rule(P.READ, "retrieve-rendered"),
    # STOW-RS (PS3.18 10.5)
    ("POST", f"{_DW}/studies"): Rule(P.STORE, "store"),
    ("POST", _STUDY): Rule(P.STORE, "store"),
    ("POST", "/api/upload-zip"): Rule(P.STORE, "store"),
    # delete
    ("DELETE", _STUDY): Rule(P.DELETE, "delete"),
    ("DELETE", _SERIES): Rule(P.DELETE, "delete"),
    ("DELETE", _INSTANCE): Rule(P.DELETE, "delete"),
    # archive totals: counts only, no patient data
    ("GET", "/api/counts"): Rule(P.READ),
    # workshop data and computations
    ("GET", "/api/data"): Rule(P.READ, "list-data"),
    ("GET", "/api/data/{name}"): Rule(P.READ, "retrieve"),
    ("POST", "/api/anonymize"): Rule(P.COMPUTE, "anonymize"),
    # de-identified copies of stored studies are written into the archive: STORE
    ("POST", "/api/deid/studies/{study}"): Rule(P.STORE, "deid-study"),
    ("GET", "/api/deid/jobs"): Rule(P.READ, "deid-job-list"),
    ("GET", "/api/deid/jobs/{job_id}"): Rule(P.READ, "deid-job-read"),
    ("POST", "/api/dvh"): Rule(P.COMPUTE, "dvh"),
    ("POST", "/api/rt/dvh"): Rule(P.COMPUTE, "dvh"),
    ("POST", "/api/rt/dvh/store"): Rule(P.STORE, "dvh-store"),
    ("GET", "/api/rt/studies/{study}/objects"): Rule(P.READ, "rt-objects"),
    ("GET", "/api/rt/plans/{plan}/statistics"): Rule(P.READ, "dvh"),
    ("POST", "/api/dvh/plot"): Rule(P.COMPUTE, "dvh-plot"),
    # AI models and jobs: results are written into the archive, so running a job needs STORE
    ("GET", "/api/ai/models"): Rule(P.READ),
    ("POST", "/api/ai/jobs"): Rule(P.STORE, "ai-job-submit"),
    ("GET", "/api/ai/jobs"): Rule(P.READ, "ai-job-list"),
    ("GET", "/api/ai/jobs/{job_id}"): Rule(P.READ, "ai-job-read"),
    ("GET", "/api/ai/jobs/{job_id}/result"): Rule(P.READ, "ai-job-result"),
    ("POST", "/api/ai/jobs/{job_id}/cancel"): Rule(P.STORE, "ai-job-cancel"),
    ("POST", "/api/ai/batch"): Rule(P.STORE, "ai-job-batch"),
    # longitudinal follow-up: reads audited; corrections and the SR change stored results
    ("GET", "/api/followup/patients"): Rule(P.READ, "followup-list"),
    ("GET", "/api/followup/patients/{patient_id}"): Rule(P.READ, "followup-read"),
    ("GET", "/api/followup/studies"): Rule(P.READ, "followup-read"),
    ("GET", "/api/followup/lesions"): Rule(P.READ, "followup-read"),
    ("GET", "/api/followup/sources/{sop_uid}"): Rule(P.READ, "followup-read"),
    ("GET", "/api/followup/patients/{patient_id}/export"): Rule(P.READ, "followup-export"),
    ("POST", "/api/followup/patients/{patient_id}/corrections"): Rule(P.STORE, "followup-correct"),
    ("PATCH", "/api/followup/patients/{patient_id}/lesions/{uid}"): Rule(
        P.STORE, "followup-correct"
    ),
    ("DELETE", "/api/followup/patients/{patient_id}/corrections/{correction_id}"): Rule(
        P.STORE, "followup-correct"
    ),
    ("POST", "/api/followup/patients/{patient_id}/sr"): Rule(P.STORE, "followup-sr"),
    # the DICOM node: querying remote nodes reads; retrieving writes into the archive;
    # sending patient data out to another node is an administrator's decision
    ("GET", "/api/dimse/nodes"): Rule(P.READ),
    ("POST", "/api/dimse/nodes/{node}/echo"): Rule(P.READ, "dimse-echo-scu"),
    ("POST", "/api/dimse/nodes/{node}/query"): Rule(P.READ, "dimse-query-scu"),
    ("POST", "/api/dimse/nodes/{node}/send"): Rule(P.MANAGE, "dimse-send-scu"),
    ("POST", "/api/dimse/nodes/{node}/retrieve"): Rule(P.STORE, "dimse-retrieve-scu"),
    ("GET", "/api/dimse/jobs"): Rule(P.READ),
    ("GET", "/api/dimse/jobs/{job_id}"): Rule(P.READ),
    # UPS-RS (PS3.18 11): scheduling work and performing it (claim, progress, complete)
    # write into the archive; searching, reading and following events read
    ("POST", f"{_DW}/workitems"): Rule(P.STORE, "workitem-create"),
    ("GET", f"{_DW}/workitems"): Rule(P.READ, "workitem-search"),
    ("GET", f"{_DW}/workitems/{{uid}}"): Rule(P.READ, "workitem-retrieve"),
    ("POST", f"{_DW}/workitems/{{uid}}"): Rule(P.STORE, "workitem-update"),
    ("PUT", f"{_DW}/workitems/{{uid}}/state"): Rule(P.STORE, "workitem-state"),
    ("POST", f"{_DW}/workitems/{{uid}}/cancelrequest"): Rule(P.STORE, "workitem-cancel-request"),
    ("POST", f"{_DW}/workitems/{{uid}}/subscribers/{{aetitle}}"): Rule(
        P.READ, "workitem-subscribe"
    ),
    ("DELETE", f"{_DW}/workitems/{{uid}}/subscribers/{{aetitle}}"): Rule(
        P.READ, "workitem-unsubscribe"
    ),
    ("POST", f"{_DW}/workitems/1.2.840.10008.5.1.4.34.5/subscribers/{{aetitle}}/suspend"): Rule(
        P.READ, "workitem-unsubscribe"
    ),
    ("WEBSOCKET", f"{_DW}/subscribers/{{aetitle}}"): Rule(P.READ),
    # the modality worklist: scheduling is writing, reading it is reading patient data
    ("POST", "/api/worklist"): Rule(P.STORE, "worklist-add"),
    ("GET", "/api/worklist"): Rule(P.READ, "worklist-list"),
    ("DELETE", "/api/worklist/{item_id}"): Rule(P.STORE, "worklist-remove"),
    # quality control per instance: setting it is writing (AI services may), reading is reading
    ("PUT", "/api/instances/{sop_uid}/qc"): Rule(P.STORE, "qc-set"),
    ("GET", "/api/instances/{sop_uid}/qc"): Rule(P.READ, "qc-read"),
    ("GET", "/api/qc"): Rule(P.READ, "qc-list"),
    ("GET", "/api/qc/studies"): Rule(P.READ, "qc-list"),
    # callback apps (docs/ai-apps.md): registering one lets radpacs call out, an admin's
    # decision; triggering writes results into the archive (STORE, like an AI job); the
    # result route is what an app's study-scoped token posts to (role service: STORE)
    ("POST", "/api/apps"): Rule(P.MANAGE, "app-register"),
    ("GET", "/api/apps"): Rule(P.READ),
    ("GET", "/api/apps/{name}"): Rule(P.READ),
    ("PATCH", "/api/apps/{name}"): Rule(P.MANAGE, "app-update"),
    ("DELETE", "/api/apps/{name}"): Rule(P.MANAGE, "app-remove"),
    ("POST", "/api/apps/{name}/analyses"): Rule(P.STORE, "app-trigger"),
    ("GET", "/api/apps/analyses"): Rule(P.READ, "app-analysis-list"),
    ("GET", "/api/apps/analyses/{uid}"): Rule(P.READ, "app-analysis-read"),
    ("DELETE", "/api/apps/analyses/{uid}"): Rule(P.STORE, "app-analysis-cancel"),
    ("POST", "/api/apps/analyses/{uid}/result"): Rule(P.STORE, "app-result"),
    # administration
    ("GET", "/api/users"): Rule(P.MANAGE, "list-users"),
    ("POST", "/api/users"): Rule(P.MANAGE, "add-user"),
    ("DELETE", "/api/users/{username}"): Rule(P.MANAGE, "remove-user"),
    ("DELETE", "/api/tokens/{token_id}"): Rule(P.MANAGE, "revoke-token"),
    ("GET", "/api/audit"): Rule(P.MANAGE, "read-audit"),
    ("GET", "/api/deid/pseudonyms/{pseudonym}"): Rule(P.MANAGE, "deid-lookup"),
}


#: The compute routes that read no stored data: the workshop preset (``workshop`` setting,
#: ``radpacs serve --workshop``) opens them without a token, as the workshop API did. They
#: are still audited; nothing else changes, and with the default settings nothing does.
WORKSHOP_OPEN: frozenset[tuple[str, str]] = frozenset(
    {("POST", "/api/anonymize"), ("POST", "/api/dvh"), ("POST", "/api/dvh/plot")}
)


#: What a no-PHI token (docs/auth.md) may reach beyond the public routes: the DICOMweb
#: routes, which apply the no-PHI view themselves (dicomweb/qido.py, metadata.py, wado.py),
#: and REST routes that answer no patient identity. Anything else (worklist, /api/data, RT
#: objects, DIMSE queries, audit, de-identification jobs, accounts...) answers 403 to it.
NO_PHI_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {key for key in POLICY if key[1].startswith(f"{_DW}/")}
    | {
        ("GET", "/api/auth/me"),
        ("POST", "/api/auth/revoke"),
        ("DELETE", "/api/session"),
        ("GET", "/api/counts"),
        ("GET", "/api/ai/models"),
        ("POST", "/api/ai/jobs"),
        ("GET", "/api/ai/jobs"),
        ("GET", "/api/ai/jobs/{job_id}"),
        ("GET", "/api/ai/jobs/{job_id}/result"),
        ("POST", "/api/ai/jobs/{job_id}/cancel"),
        ("PUT", "/api/instances/{sop_uid}/qc"),
        ("GET", "/api/instances/{sop_uid}/qc"),
        ("GET", "/api/qc"),
        ("GET", "/api/qc/studies"),
    }
)


#: What a callback app's study-scoped token (claim ``study_scope``, docs/ai-apps.md) may
#: reach, and the path parameter that must name its study (``study``) or its workitem
#: (``uid``): QIDO-RS and WADO-RS inside the study, STOW-RS into it, its own workitem and
#: the result of its analysis. Anything else (listing studies, other studies, by-UID routes,
#: deletes, every other /api route, WebSockets) answers 403 to it.
SCOPED_ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    **{
        ("GET", template): ("study", "study")
        for template in (
            _STUDY,
            _SERIES,
            _INSTANCE,
            f"{_STUDY}/series",
            f"{_STUDY}/instances",
            f"{_SERIES}/instances",
            f"{_STUDY}/metadata",
            f"{_SERIES}/metadata",
            f"{_INSTANCE}/metadata",
            _FRAMES,
            f"{_INSTANCE}/bulkdata/{{path:path}}",
            f"{_STUDY}/rendered",
            f"{_SERIES}/rendered",
            f"{_INSTANCE}/rendered",
            f"{_FRAMES}/rendered",
            f"{_STUDY}/thumbnail",
            f"{_SERIES}/thumbnail",
            f"{_INSTANCE}/thumbnail",
            f"{_FRAMES}/thumbnail",
        )
    },
    ("POST", _STUDY): ("study", "study"),
    ("GET", f"{_DW}/workitems/{{uid}}"): ("uid", "workitem"),
    ("POST", "/api/apps/analyses/{uid}/result"): ("uid", "workitem"),
}


def scoped_refusal(
    method: str, template: str, params: Mapping[str, object], scope: Mapping[str, str]
) -> str | None:
    """Why a study-scoped token may not make this request, or None when it may."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    found = SCOPED_ROUTES.get((method, template))
    if found is None:
        return f"{method} {template} is outside an app token's scope (its study and workitem)"
    param, claim = found
    if str(params.get(param, "")) != scope.get(claim):
        return f"an app token reaches only its own {claim}, {scope.get(claim)}"
    return None


def no_phi_allowed(method: str, template: str) -> bool:
    """Whether a no-PHI token may use this route (HEAD follows GET)."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    return (method, template) in NO_PHI_ROUTES


def rule_for(method: str, template: str, *, workshop: bool = False) -> Rule | None:
    """The rule of a route; HEAD follows GET. None means the route is not in the table.

    With ``workshop`` the routes of :data:`WORKSHOP_OPEN` are public (same audit action).
    """
    rule = POLICY.get((method.upper(), template))
    if rule is None and method.upper() == "HEAD":
        rule = POLICY.get(("GET", template))
    if workshop and rule is not None and (method.upper(), template) in WORKSHOP_OPEN:
        return Rule(Permission.PUBLIC, rule.action)
    return rule
