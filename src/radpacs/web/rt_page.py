"""The radiotherapy page of a study, ``/rt?study=UID``: an HTML shell; rt.js does the rest.

The page lists the study's RT objects (GET /api/rt/studies/{study}/objects), lets the user
pick a structure set, one dose or several (a plan sum, with weights), the ROIs, a
prescription and extra Dx/Vx statistics, asks POST /api/rt/dvh, draws the cumulative DVHs
with Chart.js 4.4.7 (served from static/vendor, no CDN), shows the statistics table
(volume, Dmin, Dmean, Dmax, D95, D2cc, V20Gy and the typed-in ones), exports the table
and the curves as CSV, and can keep the DVHs in the study (POST /api/rt/dvh/store).
The page holds no patient data: everything comes through the API, which checks the
caller (the session cookie of the main page).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from radpacs import __version__

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>radpacs - radiotherapy</title>
<link rel="stylesheet" href="static/radpacs.css?v={version}">
<script src="static/vendor/chart.umd.js?v=4.4.7"></script>
<script src="static/rt.js?v={version}" defer></script>
</head>
<body>
<header>
  <h1>radpacs · radiotherapy</h1>
  <nav><a href="./">Studies</a> · <a href="docs">API</a></nav>
</header>
<main>
<section id="rt-objects" aria-labelledby="objects-title">
  <h2 id="objects-title">RT objects of the study</h2>
  <p id="rt-study"></p>
  <table id="object-table"><thead><tr><th>Kind</th><th>Label</th><th>UID</th>
    <th>Refers to</th></tr></thead><tbody></tbody></table>
  <p id="objects-status" role="status"></p>
</section>
<section id="rt-choose" aria-labelledby="choose-title">
  <h2 id="choose-title">DVH</h2>
  <form id="dvh-form">
    <label>Structure set <select id="structure-set"></select></label>
    <fieldset id="dose-list"><legend>Doses (several: a plan sum, with weights)</legend></fieldset>
    <fieldset id="roi-list"><legend>ROIs</legend></fieldset>
    <label>Prescription (Gy) <input id="prescription" type="number" min="0" step="any"></label>
    <label>More statistics <input id="extra-metrics" placeholder="D50, V30Gy, D0.03cc"></label>
    <button type="submit" id="compute">Compute</button>
  </form>
  <p id="dvh-status" role="status"></p>
</section>
<section id="rt-results" aria-labelledby="results-title" hidden>
  <h2 id="results-title">Results</h2>
  <div id="chart-box"><canvas id="dvh-chart" aria-label="cumulative DVH"></canvas></div>
  <table id="stats-table"><thead></thead><tbody></tbody></table>
  <p>
    <button type="button" id="csv-table">Table as CSV</button>
    <button type="button" id="csv-curves">Curves as CSV</button>
    <button type="button" id="store-dvh">Keep the DVHs in the study</button>
  </p>
  <p id="store-status" role="status"></p>
</section>
</main>
</body>
</html>
"""


@router.get("/rt", response_class=HTMLResponse, include_in_schema=False)
def rt_page() -> HTMLResponse:
    """The page shell; the study comes from ``?study=`` and is read by rt.js."""
    return HTMLResponse(_PAGE.replace("{version}", __version__))
