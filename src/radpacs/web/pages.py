"""The radpacs web UI at /: an HTML shell; study list, upload, delete and AI run in radpacs.js.

The page talks to the server as any client does: QIDO-RS for the list, STOW-RS for files,
POST /api/upload-zip for .zip archives, DELETE for studies, and links into OHIF at /viewer/.
When a call answers 401 the page shows its login form and posts it to /api/session, whose
HttpOnly cookie then authenticates the page and OHIF alike (same origin); the header shows
the account and role from GET /api/auth/me and a "Log out" button (DELETE /api/session).
"Analyze" on a study lists the models that take its series (GET /api/ai/models?study=),
submits a job (POST /api/ai/jobs), shows its progress and then its results
(GET /api/ai/jobs/{id}/result) with a link that opens the study in OHIF.
Paths are relative, so the UI works behind a proxy prefix. No build step: static/ holds the
one script and the one stylesheet.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from radpacs import __version__
from radpacs.http.deps import SettingsDep
from radpacs.web.ohif import installed_version
from radpacs.web.viewer import INSTALL_COMMAND, viewer_dir

__all__ = ["STATIC_DIR", "router", "static_files"]

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    """The UI's script, stylesheet and icon, mounted at /static."""
    return StaticFiles(directory=STATIC_DIR)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>radpacs</title>
<link rel="icon" href="static/favicon.svg?v={version}" type="image/svg+xml">
<link rel="icon" href="static/favicon.ico?v={version}" sizes="16x16 32x32 48x48">
<link rel="stylesheet" href="static/radpacs.css?v={version}">
</head>
<body>
<header>
  <h1>radpacs</h1>
  <nav><a href="viewer/" id="ohif-link">OHIF viewer</a> · <a href="docs">API</a>
    <span id="account" hidden> · <span id="who"></span>
      <button id="logout" type="button" hidden>Log out</button></span></nav>
</header>
{viewer_notice}
<main>
<section id="upload" aria-labelledby="upload-title">
  <h2 id="upload-title">Upload</h2>
  <div id="dropzone" tabindex="0">
    <p>Drop DICOM files, folders or .zip archives here</p>
    <p>
      <label class="button">Choose files<input id="file-input" type="file" multiple hidden></label>
      <label class="button">Choose a folder<input id="folder-input" type="file"
        webkitdirectory multiple hidden></label>
    </p>
  </div>
  <ul id="uploads"></ul>
</section>
<section id="studies" aria-labelledby="studies-title">
  <h2 id="studies-title">Studies</h2>
  <form id="search">
    <input name="PatientName" placeholder="Patient name" aria-label="Patient name">
    <input name="PatientID" placeholder="Patient ID" aria-label="Patient ID">
    <input name="AccessionNumber" placeholder="Accession" aria-label="Accession number">
    <label>From <input name="from" type="date"></label>
    <label>To <input name="to" type="date"></label>
    <select name="ModalitiesInStudy" aria-label="Modality">
      <option value="">Any modality</option>
      {modalities}
    </select>
    <button type="submit">Search</button>
    <button type="reset">Clear</button>
  </form>
  <table id="study-table">
    <thead><tr>
      <th data-sort="PatientName">Patient</th>
      <th data-sort="PatientID">Patient ID</th>
      <th data-sort="StudyDate">Date</th>
      <th data-sort="AccessionNumber">Accession</th>
      <th data-sort="ModalitiesInStudy">Modalities</th>
      <th data-sort="StudyDescription">Description</th>
      <th data-sort="NumberOfStudyRelatedSeries">Series</th>
      <th data-sort="NumberOfStudyRelatedInstances">Instances</th>
      <th title="Quality control of the study's instances">QC</th>
      <th></th>
    </tr></thead>
    <tbody></tbody>
  </table>
  <p id="list-status" role="status"></p>
  <nav id="pager">
    <button id="prev" type="button" disabled>Previous</button>
    <span id="page-label"></span>
    <button id="next" type="button" disabled>Next</button>
  </nav>
</section>
</main>
<dialog id="login" aria-labelledby="login-title">
  <form id="login-form">
    <h2 id="login-title">Log in to radpacs</h2>
    <p id="login-next" hidden>Log in to open the viewer link you followed.</p>
    <label>User name <input name="username" id="login-username" autocomplete="username"
      required></label>
    <label>Password <input name="password" id="login-password" type="password"
      autocomplete="current-password" required></label>
    <p id="login-error" role="alert"></p>
    <menu><button type="submit" id="login-button">Log in</button></menu>
  </form>
</dialog>
<dialog id="confirm-delete">
  <form method="dialog">
    <p id="confirm-text"></p>
    <menu>
      <button value="cancel" id="cancel-delete">Cancel</button>
      <button value="delete" id="confirm-delete-button" class="danger">Delete</button>
    </menu>
  </form>
</dialog>
<dialog id="analyze" aria-labelledby="analyze-title">
  <form id="analyze-form" method="dialog">
    <h2 id="analyze-title">Analyze</h2>
    <p id="analyze-study"></p>
    <label>Model <select id="analyze-model" name="model" required></select></label>
    <p id="analyze-description"></p>
    <label>Parameters (JSON, optional)
      <textarea id="analyze-parameters" name="parameters" rows="3"
        placeholder='{{"polarity": "dark"}}'></textarea></label>
    <progress id="analyze-progress" max="1" value="0" hidden></progress>
    <p id="analyze-status" role="status"></p>
    <ul id="analyze-results"></ul>
    <menu>
      <button value="close" id="analyze-close" formnovalidate>Close</button>
      <button value="run" id="analyze-run" type="submit">Run</button>
    </menu>
  </form>
</dialog>
<script>window.RADPACS = {config};</script>
<script src="static/radpacs.js?v={version}" defer></script>
</body>
</html>
"""

_MODALITIES = (
    "CT",
    "MR",
    "PT",
    "CR",
    "DX",
    "MG",
    "US",
    "NM",
    "XA",
    "RTSTRUCT",
    "RTDOSE",
    "RTPLAN",
    "SEG",
    "SR",
    "OT",
)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """The site icon, for browsers that ask /favicon.ico whatever the page says."""
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/vnd.microsoft.icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(settings: SettingsDep) -> HTMLResponse:
    """The study list page."""
    folder = viewer_dir(settings)
    viewer_installed = installed_version(folder) is not None
    notice = (
        ""
        if viewer_installed
        else '<p class="notice" id="viewer-missing">The OHIF viewer is not installed: run '
        f"<code>{html.escape(INSTALL_COMMAND)}</code> and reload this page to open studies.</p>"
    )
    config = json.dumps({"viewerInstalled": viewer_installed, "pageSize": 25})
    page = _PAGE.format(
        version=__version__,
        viewer_notice=notice,
        modalities="".join(f'<option value="{m}">{m}</option>' for m in _MODALITIES),
        config=config,
    )
    return HTMLResponse(page)
