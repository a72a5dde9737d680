"""The follow-up pages: /followup (patients: search, paging) and /tracking?patient=ID.

Both are HTML shells; static/followup.js fills them from /api/followup (the shells hold no
patient data, as the study list). The tracking page shows a table of lesions x timepoints,
Chart.js charts (served from static/vendor, no CDN) of each lesion's longest diameter and
volume and of the RECIST sum of diameters with each timepoint's response, a link opening each
timepoint's studies in OHIF (/viewer/), the correction actions and the export buttons.
"""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from radpacs import __version__
from radpacs.http.deps import SettingsDep
from radpacs.settings import Settings
from radpacs.web.ohif import installed_version
from radpacs.web.viewer import viewer_dir

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · radpacs</title>
<link rel="stylesheet" href="static/radpacs.css?v={version}">
<link rel="stylesheet" href="static/followup.css?v={version}">
</head>
<body data-page="{page}">
<header>
  <h1><a href="./">radpacs</a> · {title}</h1>
  <nav><a href="followup">Follow-up patients</a> · <a href="viewer/">OHIF viewer</a>
    · <a href="docs">API</a></nav>
</header>
<p id="auth-needed" class="notice" hidden>Log in on the <a href="./">home page</a> first.</p>
"""

_TAIL = """<script>window.RADPACS = {config};</script>
<script src="static/vendor/chart.umd.js?v=4.4.7"></script>
<script src="static/followup.js?v={version}" defer></script>
</body>
</html>
"""

_PATIENTS = """<main>
<section aria-labelledby="patients-title">
  <h2 id="patients-title">Patients</h2>
  <form id="patient-search">
    <input name="search" placeholder="Patient ID or name" aria-label="Patient ID or name">
    <button type="submit">Search</button>
  </form>
  <table id="patient-table">
    <thead><tr><th>Patient ID</th><th>Name</th><th>Timepoints</th><th>Lesions</th>
      <th>Latest RECIST</th><th>Updated</th></tr></thead>
    <tbody></tbody>
  </table>
  <p id="patients-status" role="status"></p>
  <nav id="pager">
    <button id="prev" type="button" disabled>Previous</button>
    <span id="page-label"></span>
    <button id="next" type="button" disabled>Next</button>
  </nav>
</section>
</main>
"""

_TRACKING = """<main>
<section aria-labelledby="patient-title">
  <h2 id="patient-title">Patient</h2>
  <p id="patient-summary"></p>
  <p class="actions">
    <a class="button" id="export-csv" download>Export CSV</a>
    <a class="button" id="export-json" download>Export JSON</a>
    <button type="button" id="store-sr">Store as DICOM SR</button>
    <span id="action-status" role="status"></span>
  </p>
</section>
<section aria-labelledby="table-title">
  <h2 id="table-title">Lesions &times; timepoints</h2>
  <div class="scroll"><table id="tracking-table"><thead></thead><tbody></tbody>
    <tfoot></tfoot></table></div>
  <form id="merge-form" class="actions">
    <label>Merge <select id="merge-into" aria-label="lesion to keep"></select></label>
    <label>with <select id="merge-other" aria-label="lesion merged into it"></select></label>
    <button type="submit" id="merge-button">Merge</button>
  </form>
</section>
<section aria-labelledby="charts-title">
  <h2 id="charts-title">Charts</h2>
  <div class="charts">
    <figure><canvas id="chart-sum" aria-label="Sum of diameters"></canvas>
      <figcaption>RECIST sum of diameters (mm) and response</figcaption></figure>
    <figure><canvas id="chart-diameter" aria-label="Longest diameter"></canvas>
      <figcaption>Longest axial diameter per lesion (mm)</figcaption></figure>
    <figure><canvas id="chart-volume" aria-label="Volume"></canvas>
      <figcaption>Volume per lesion (mm&sup3;)</figcaption></figure>
  </div>
</section>
<section aria-labelledby="sources-title">
  <h2 id="sources-title">Sources and corrections</h2>
  <ul id="sources"></ul>
  <ul id="corrections"></ul>
</section>
</main>
"""


def _page(settings: Settings, page: str, title: str, body: str) -> HTMLResponse:
    viewer_installed = installed_version(viewer_dir(settings)) is not None
    config = json.dumps({"viewerInstalled": viewer_installed, "pageSize": 25})
    return HTMLResponse(
        _HEAD.format(title=title, version=__version__, page=page)
        + body
        + _TAIL.format(config=config, version=__version__)
    )


@router.get("/followup", response_class=HTMLResponse)
def patients_page(settings: SettingsDep) -> HTMLResponse:
    """The follow-up patient list."""
    return _page(settings, "patients", "Follow-up", _PATIENTS)


@router.get("/tracking", response_class=HTMLResponse)
def tracking_page(settings: SettingsDep) -> HTMLResponse:
    """One patient's tracking page (``?patient=ID``)."""
    return _page(settings, "tracking", "Tracking", _TRACKING)
