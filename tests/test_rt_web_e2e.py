"""The radiotherapy page in headless Chromium (Debian's, through Playwright): a stored plan
of two beam doses, summed with weights on the page; the DVH plot draws (Chart.js served by
radpacs), the statistics table matches radpacs.rt within 1 %, the CSV files download, and the
DVHs are kept in the study as a DICOM RT Dose.
Screenshot in test-artifacts/web/rt.png."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import LiveServer
from dvh_phantoms import (
    LinearDose,
    box,
    refer_to_plan,
    roundtrip,
    rtdose_dataset,
    rtplan_dataset,
    rtstruct_dataset,
    sphere,
    to_bytes,
)
from radpacs.archive import Archive
from radpacs.rt import dvhs_from_datasets
from radpacs.settings import load_settings
from test_web_e2e import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.peer

GRID = {"origin": (-30.0, -30.0, -30.0), "spacing": (2.5, 2.5, 2.5), "shape": (25, 25, 25)}
WEIGHTS = [1.0, 0.5]


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, object]]]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    structures = rtstruct_dataset(
        [
            ("PTV", sphere((0.0, 0.0, 0.0), 10.0, 2.5).polygons()),
            ("Cube", box((5.0, 5.0, 0.0), (12.0, 12.0, 12.5), 2.5).polygons()),
        ]
    )
    plan = rtplan_dataset(structures)
    beams = [
        rtdose_dataset(LinearDose("x", 12.0, 0.4, 0.0), **GRID),  # type: ignore[arg-type]
        rtdose_dataset(LinearDose("z", 16.0, -0.3, 0.0), **GRID),  # type: ignore[arg-type]
    ]
    for beam in beams:
        refer_to_plan(beam, plan, "BEAM")
    data = tmp_path / "data"
    archive = Archive.from_settings(load_settings(data_dir=data))
    archive.store_many([to_bytes(item) for item in (structures, plan, *beams)])
    archive.close()
    expected = dvhs_from_datasets(
        roundtrip(structures), [roundtrip(beam) for beam in beams], weights=WEIGHTS
    )
    live = LiveServer(data).start()
    yield live, {"study": str(structures.StudyInstanceUID), "dvhs": expected}
    live.stop()


def test_dvh_page_plots_tabulates_and_exports(
    stored: tuple[LiveServer, dict[str, object]], tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    server, facts = stored
    expected = {dvh.name: dvh for dvh in facts["dvhs"]}  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
            page.goto(f"{server.url}/rt?study={facts['study']}")
            rows = page.locator("#object-table tbody tr")
            sync_api.expect(rows).to_have_count(4, timeout=15_000)  # plan, structures, 2 doses
            doses = page.locator('input[name="dose"]')
            sync_api.expect(doses).to_have_count(2)
            doses.nth(1).check()
            page.locator("input.weight").nth(1).fill(str(WEIGHTS[1]))
            page.fill("#prescription", "20")
            page.fill("#extra-metrics", "D50, V15Gy")
            page.click("#compute")
            table = page.locator("#stats-table tbody tr")
            sync_api.expect(table).to_have_count(2, timeout=30_000)

            drawn = page.evaluate(
                """() => {
                  const chart = Chart.getChart('dvh-chart');
                  const canvas = document.getElementById('dvh-chart');
                  const data = canvas.getContext('2d')
                    .getImageData(0, 0, canvas.width, canvas.height).data;
                  let painted = 0;
                  for (let i = 3; i < data.length; i += 4 * 7) if (data[i] > 0) painted += 1;
                  const top = Math.max(...chart.data.datasets[0].data.map((p) => p.x));
                  return {sets: chart.data.datasets.map((d) => d.label), painted, top,
                          axis: chart.options.scales.x.title.text};
                }"""
            )
            assert drawn["sets"] == ["PTV", "Cube"]
            assert drawn["painted"] > 1000
            # doses in % of the 20 Gy prescription: the PTV's curve ends just past its Dmax
            assert drawn["axis"] == "dose [% of prescription]"
            ptv_max = 100 * expected["PTV"].dose_max / 20.0
            assert ptv_max <= drawn["top"] <= ptv_max + 2
            page.screenshot(path=str(ARTIFACTS / "rt.png"), full_page=True)

            for name, dvh in expected.items():
                row = page.locator(f'#stats-table tbody tr[data-roi="{name}"]')
                for metric in ("volume", "min", "mean", "max", "D95", "D2cc", "V20Gy", "D50"):
                    shown = row.locator(f'td[data-metric="{metric}"]').get_attribute("data-value")
                    want = dvh.statistic(metric, prescription=20.0).value
                    if want is None:
                        assert shown == ""
                        continue
                    assert shown, f"{name} {metric} empty"
                    assert float(shown) == pytest.approx(want, rel=0.01, abs=1e-6), (name, metric)
            shown_mean = page.locator(
                '#stats-table tbody tr[data-roi="PTV"] td[data-metric="mean"]'
            ).inner_text()
            relative = 100 * expected["PTV"].dose_mean / 20.0
            assert f"({relative:.3g} %)" in shown_mean

            with page.expect_download() as caught:
                page.click("#csv-table")
            table_csv = Path(caught.value.path()).read_text()
            lines = list(csv.reader(io.StringIO(table_csv)))
            assert lines[0][:5] == ["roi", "volume [cm3]", "min [Gy]", "mean [Gy]", "max [Gy]"]
            by_roi = {line[0]: line for line in lines[1:]}
            mean_column = lines[0].index("mean [Gy]")
            assert float(by_roi["PTV"][mean_column]) == pytest.approx(
                expected["PTV"].dose_mean, rel=0.01
            )
            with page.expect_download() as caught:
                page.click("#csv-curves")
            curves = list(csv.reader(io.StringIO(Path(caught.value.path()).read_text())))
            assert curves[0] == ["dose [% of prescription]", "PTV [cm3]", "Cube [cm3]"]
            assert float(curves[1][1]) == pytest.approx(expected["PTV"].volume, rel=1e-3)
            assert float(curves[-1][1]) == 0.0

            page.click("#store-dvh")
            sync_api.expect(page.locator("#store-status")).to_contain_text(
                "Kept as RT Dose", timeout=30_000
            )
            sync_api.expect(page.locator("#object-table tbody tr")).to_have_count(5)
            sync_api.expect(
                page.locator("#object-table tbody tr", has_text="RTDOSE (DVH)")
            ).to_have_count(1)
        finally:
            browser.close()
