"""The OHIF viewer under /viewer/: its files, an app-config.js written per request, SPA routes.

``/viewer/app-config.js`` points OHIF's DICOMweb data source at this server's /dicom-web on
the same origin (the path prefix comes from the public root, so a proxy prefix works): QIDO
with includefield, WADO-RS frames, per-series metadata, thumbnails from ``/thumbnail``.
index.html is served with its asset paths under the prefix; any other /viewer/* path that is
not a file (``/viewer/viewer?StudyInstanceUIDs=...``) gets index.html, as a single-page app
needs. With accounts on, a page of the viewer opened without a valid session cookie (a link
followed in a new browser) is redirected (303) to the study list with ``?next=`` set to the
link, where the login form opens and the page goes back to the link once logged in. When
OHIF is not installed, /viewer/ answers 503 with the command that installs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from radpacs.auth.credentials import SESSION_COOKIE
from radpacs.errors import RadpacsError
from radpacs.http.deps import SettingsDep, public_root, services_of
from radpacs.settings import Settings
from radpacs.web.ohif import installed_version, viewer_dir

__all__ = ["INSTALL_COMMAND", "router", "viewer_dir"]

router = APIRouter(include_in_schema=False)

INSTALL_COMMAND = "radpacs viewer install"
_IMMUTABLE = "public, max-age=31536000, immutable"


def _prefix(request: Request) -> str:
    """The path under which this server is published ('' at the root, '/pacs' behind a proxy)."""
    return urlsplit(public_root(request)).path.rstrip("/")


def _not_installed(folder: Path) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>OHIF viewer not installed</title>"
        "<h1>The OHIF viewer is not installed</h1>"
        f"<p>Install it with <code>{INSTALL_COMMAND}</code> (needs Node.js and npm), "
        "then reload this page. It is installed in "
        f"<code>{folder}</code>.</p><p><a href='../'>Back to the study list</a></p>",
        status_code=503,
    )


def app_config(prefix: str) -> str:
    """OHIF's window.config for this server (same origin, DICOMweb at ``{prefix}/dicom-web``)."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "radpacs",
        "configuration": {
            "friendlyName": "radpacs",
            "name": "radpacs",
            "qidoSupportsIncludeField": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "thumbnail",
            "thumbnailRequestStrategy": "fetch",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "supportsReject": False,
            "staticWado": False,
            "singlepart": "bulkdata,video",
            "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
            "omitQuotationForMultipartRequest": True,
        },
    }
    config = {
        "routerBasename": f"{prefix}/viewer",
        "extensions": [],
        "modes": [],
        # OHIF's onboarding tour (11 steps over the image at the first open): off
        "customizationService": [{"ohif.tours": {"$set": []}}],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "defaultDataSourceName": "radpacs",
        "dataSources": [source],
    }
    root = json.dumps(f"{prefix}/dicom-web")
    return (
        "// Written by radpacs for this server: DICOMweb on the same origin.\n"
        f"window.config = {json.dumps(config, indent=2)};\n"
        f"(function () {{\n  var root = window.location.origin + {root};\n"
        "  var c = window.config.dataSources[0].configuration;\n"
        "  c.qidoRoot = root; c.wadoRoot = root; c.wadoUriRoot = root;\n})();\n"
    )


def _index(folder: Path, prefix: str) -> HTMLResponse:
    base = f"{prefix}/viewer/"
    html = (folder / "index.html").read_text(encoding="utf-8")
    html = html.replace('window.PUBLIC_URL="/"', f"window.PUBLIC_URL={json.dumps(base)}")
    for attribute in ("href", "src"):
        html = html.replace(f'{attribute}="/', f'{attribute}="{base}')
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


def _has_session(request: Request, settings: Settings) -> bool:
    """Whether the request carries a session cookie that authenticates (always, auth off)."""
    if not settings.auth_enabled:
        return True
    services = services_of(request.app)
    cookie = request.cookies.get(SESSION_COOKIE)
    if services is None or not cookie:
        return False
    try:
        services.auth.authenticator.authenticate(cookie)
    except RadpacsError:
        return False
    return True


def _to_login(request: Request, prefix: str, path: str) -> RedirectResponse:
    """303 to the study list, which logs in and then goes back to ``viewer/{path}?{query}``."""
    link = f"viewer/{path}" + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{prefix}/?next={quote(link, safe='')}", status_code=303)


@router.get("/viewer", include_in_schema=False)
@router.get("/viewer/{path:path}", include_in_schema=False)
def viewer(request: Request, settings: SettingsDep, path: str = "") -> Response:
    folder = viewer_dir(settings)
    if installed_version(folder) is None:
        return _not_installed(folder)
    prefix = _prefix(request)
    if path == "app-config.js":
        return Response(
            app_config(prefix),
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache"},
        )
    if path and path != "index.html":
        target = (folder / path).resolve()
        if target.is_relative_to(folder.resolve()) and target.is_file():
            hashed = ".bundle." in target.name or target.suffix in (".wasm", ".woff2")
            headers = {"Cache-Control": _IMMUTABLE if hashed else "no-cache"}
            return FileResponse(target, headers=headers)
        if "." in path.rsplit("/", 1)[-1] and not path.startswith("viewer"):
            return Response(status_code=404)
    if not _has_session(request, settings):
        return _to_login(request, prefix, path)
    return _index(folder, prefix)
