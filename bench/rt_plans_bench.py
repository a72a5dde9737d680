"""Dose statistics of every ROI of 100 stored plans: radpacs's one request per plan
(GET /api/rt/plans/{plan}/statistics) beside dicompyler-core on the same files.

Each plan is its own study: an RTSTRUCT with three ROIs (a 30 mm sphere, a 16 mm
cylinder lying across the 3 mm contour planes, a 30 x 20 x 24 mm box), an RTPLAN naming
it and a PLAN RTDOSE (3 mm grid, 41 x 41 x 41, a linear dose of 0.3-0.8 Gy/mm along a
direction that changes from plan to plan). The files are written with the phantom writers
of ``tests/dvh_phantoms.py`` and stored in a fresh archive (SQLite, temporary directory);
radpacs is called in-process through the HTTP stack (FastAPI's TestClient), one request
per plan. dicompyler-core 0.5.6 (default mode, its own venv, see dvh_bench.py) computes
the same ROIs from the same files, one ``get_dvh`` per ROI. Error: the largest relative
error of Dmean over all ROIs (for a linear dose, Dmean is the dose at the centroid).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/rt_plans_bench.py [--plans 100] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from pydicom.uid import generate_uid  # noqa: E402

from dvh_phantoms import (  # noqa: E402
    LinearDose,
    box,
    lying_cylinder,
    refer_to_plan,
    rtdose_dataset,
    rtplan_dataset,
    rtstruct_dataset,
    sphere,
    to_bytes,
)
from radpacs.app import create_app  # noqa: E402
from radpacs.settings import load_settings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SHAPES = {
    "PTV": (sphere((0.0, 0.0, 0.0), 15.0, 3.0), (0.0, 0.0, 0.0)),
    "OAR": (lying_cylinder((0.0, 25.0, 0.0), 8.0, 40.0, 3.0), (0.0, 25.0, 0.0)),
    "box": (box((-25.0, -20.0, 0.0), (30.0, 20.0, 24.0), 3.0), (-25.0, -20.0, 0.0)),
}


def write_plans(folder: Path, count: int) -> list[dict[str, object]]:
    """Write ``count`` plans; return, per plan, its files, UIDs and expected Dmean per ROI."""
    plans = []
    for number in range(count):
        study = generate_uid()
        structures = rtstruct_dataset(
            [(name, shape.polygons()) for name, (shape, _) in SHAPES.items()]
        )
        plan = rtplan_dataset(structures, label=f"plan {number}")
        angle = 2 * math.pi * number / count
        axis = "xyz"[number % 3]
        gradient = 0.3 + 0.5 * (0.5 + 0.5 * math.sin(angle))
        dose = LinearDose(axis, offset=40.0, gradient=gradient, origin=0.0)
        grid = rtdose_dataset(dose, (-60.0, -60.0, -60.0), (3.0, 3.0, 3.0), (41, 41, 41))
        refer_to_plan(grid, plan, "PLAN")
        files = {}
        for kind, dataset in (("rtstruct", structures), ("rtplan", plan), ("rtdose", grid)):
            dataset.StudyInstanceUID = study
            dataset.PatientID = f"BENCH{number:03d}"
            path = folder / f"{number:03d}-{kind}.dcm"
            path.write_bytes(to_bytes(dataset))
            files[kind] = path
        expected = {}
        for name, (_, centre) in SHAPES.items():
            value = centre["xyz".index(axis)]
            expected[name] = 40.0 + gradient * value
        plans.append({"files": files, "plan": str(plan.SOPInstanceUID), "mean": expected})
    return plans


def run_radpacs(plans: list[dict[str, object]], data_dir: Path) -> dict[str, object]:
    app = create_app(load_settings(data_dir=data_dir, auth_enabled=False))
    with TestClient(app) as client:
        archive = client.app.state.services.archive  # type: ignore[attr-defined]
        for plan in plans:
            files = plan["files"]
            assert isinstance(files, dict)
            archive.store_many([Path(path).read_bytes() for path in files.values()])
        start, start_cpu = time.perf_counter(), time.process_time()
        answers = []
        for plan in plans:
            response = client.get(
                f"/api/rt/plans/{plan['plan']}/statistics", params={"metrics": "D95,D2cc,V20Gy"}
            )
            response.raise_for_status()
            answers.append(response.json())
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    error = 0.0
    for plan, answer in zip(plans, answers, strict=True):
        expected = plan["mean"]
        assert isinstance(expected, dict)
        for roi in answer["rois"]:
            got = roi["statistics"]["mean"]["value"]
            error = max(error, abs(got / expected[roi["name"]] - 1))
    return {"wall": wall, "cpu": cpu, "error": error}


def run_peer(plans: list[dict[str, object]]) -> dict[str, object]:
    from dvh_bench import ensure_dicompyler

    jobs = []
    for plan in plans:
        files = plan["files"]
        assert isinstance(files, dict)
        for number, _name in enumerate(SHAPES, start=1):
            jobs.append(
                {
                    "struct": str(files["rtstruct"]),
                    "dose": str(files["rtdose"]),
                    "roi": number,
                    "repeat": 1,
                    "metrics": ["D95", "D2cc", "V20Gy"],
                    "options": {},
                }
            )
    python = ensure_dicompyler()
    start = time.perf_counter()
    done = subprocess.run(
        [str(python), str(HERE / "_dicompyler_runner.py")],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    error = 0.0
    names = list(SHAPES)
    for index, result in enumerate(results):
        expected = plans[index // len(names)]["mean"]
        assert isinstance(expected, dict)
        got = result["stats"]["mean"]
        error = max(error, abs(got / expected[names[index % len(names)]] - 1))
    compute = sum(result["time"] for result in results)
    cpu = sum(result["cpu"] for result in results)
    return {"wall": wall, "compute": compute, "cpu": cpu, "error": error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=100)
    parser.add_argument("--no-peer", action="store_true", help="skip dicompyler-core")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "files").mkdir()
        plans = write_plans(folder / "files", args.plans)
        ours = run_radpacs(plans, folder / "data")
        print(
            f"radpacs, {args.plans} plans x {len(SHAPES)} ROIs, one request per plan: "
            f"wall {ours['wall']:.2f} s ({1000 * float(ours['wall']) / args.plans:.0f} ms/plan), "
            f"CPU {ours['cpu']:.2f} s, max Dmean error {100 * float(ours['error']):.3f} %"
        )
        if not args.no_peer:
            peer = run_peer(plans)
            print(
                f"dicompyler-core default, one get_dvh per ROI: wall {peer['wall']:.2f} s "
                f"(DVH time {peer['compute']:.2f} s, CPU {peer['cpu']:.2f} s), "
                f"max Dmean error {100 * float(peer['error']):.3f} %"
            )


if __name__ == "__main__":
    main()
