"""DVH benchmark: radpacs against dicompyler-core on structures with analytical DVHs.

Structures: the three rt-workshop structures (Nelms et al. 2015, analytical values from
shared/data/rt-workshop/README.md) and a synthetic 2-litre elliptic-cylinder "body" on a
3 mm dose grid with a linear dose along x (closed form: elliptic segments).

For each, prints the best-of-N wall and CPU times (radpacs and dicompyler-core's default
mode get the same N; its slow interpolated mode runs once) and the largest relative error
over volume, Dmin, Dmax, Dmean, D99, D95, D5, D1 and D0.03cc for radpacs, dicompyler-core's
default mode and its interpolated (supersampled) mode, and the speed ratios. Times include
reading the DICOM files, which both tools do. dicompyler-core 0.5.6 needs pydicom < 3: it runs in
bench/.venv-dicompyler, created on first use.

    .venv/bin/python bench/dvh_bench.py [--repeat 5] [--skip-interpolated]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path

# Both tools single-threaded, so that CPU times compare like with like.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pydicom

from radpacs.rt import dvhs_from_datasets

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from dvh_phantoms import LinearDose, rtdose_dataset, rtstruct_dataset  # noqa: E402

WORKSHOP = ROOT.parent / "shared" / "data" / "rt-workshop"
OUT = HERE / "out"
DICOMPYLER_VENV = HERE / ".venv-dicompyler"
DICOMPYLER_REQUIREMENTS = [
    "dicompyler-core[dvhinterpolation]==0.5.6",  # the extra brings scikit-image
    "pydicom<3",
    "numpy",
    "matplotlib",
    "six",
]
METRICS = ["D99", "D95", "D5", "D1", "D0.03cc"]
COLUMNS = ["volume", "min", "max", "mean", *METRICS]

#: README table (dose in cGy, volume in cm3), converted to Gy below.
WORKSHOP_REFERENCE = {
    "sphere": [7.23824, 390, 2810, 1600, 541, 724.5, 2475, 2658.5, 2709.5],
    "cylinder": [10.94782, 390, 2810, 1600, 414, 510.5, 2689, 2785.5, 2803],
    "cone": [3.66435, 390, 2810, 2207.47, 919, 1287.5, 2769, 2801.5, 2803],
}


@dataclass(frozen=True)
class Case:
    name: str
    struct: Path
    dose: Path
    roi: int
    reference: dict[str, float]


def workshop_cases() -> list[Case]:
    cases = []
    for shape, values in WORKSHOP_REFERENCE.items():
        reference = {
            name: value if name == "volume" else value / 100.0
            for name, value in zip(COLUMNS, values, strict=True)
        }
        cases.append(
            Case(
                f"{shape} (workshop)",
                WORKSHOP / f"rtstruct-{shape}.dcm",
                WORKSHOP / "rtdose.dcm",
                2,
                reference,
            )
        )
    return cases


def body_case(a: float = 90.0, b: float = 70.0, litres: float = 2.0) -> Case:
    """An elliptic cylinder of ``litres`` contoured every 3 mm, dose 20 Gy + 0.2 Gy/mm * x."""
    slice_mm = 3.0
    height = litres * 1e6 / (math.pi * a * b)
    planes = round(height / slice_mm)
    height = planes * slice_mm
    zs = -height / 2 + slice_mm * (np.arange(planes) + 0.5)
    angle = np.linspace(0.0, 2 * np.pi, 512, endpoint=False)
    # Scale the polygon so that its area equals the ellipse's (pi a b).
    polygon_factor = math.sqrt(2 * math.pi / (512 * math.sin(2 * math.pi / 512)))
    contours = [
        np.column_stack(
            [
                a * polygon_factor * np.cos(angle),
                b * polygon_factor * np.sin(angle),
                np.full(angle.size, z),
            ]
        )
        for z in zs
    ]
    dose = LinearDose(axis="x", offset=20.0, gradient=0.2, origin=0.0)
    spacing = 3.0
    margin = 2 * spacing
    nx = int((2 * a + 2 * margin) / spacing) + 1
    ny = int((2 * b + 2 * margin) / spacing) + 1
    nz = int((height + 2 * margin) / spacing) + 1
    origin = (-a - margin + 0.37, -b - margin + 0.81, -height / 2 - margin + 0.5)
    OUT.mkdir(parents=True, exist_ok=True)
    struct_path, dose_path = OUT / "body-rtstruct.dcm", OUT / "body-rtdose.dcm"
    rtstruct_dataset([("Body", contours)]).save_as(struct_path, enforce_file_format=True)
    rtdose_dataset(dose, origin, (spacing,) * 3, (nz, ny, nx)).save_as(
        dose_path, enforce_file_format=True
    )

    def above(d: float) -> float:  # mm3 receiving >= d: elliptic segment x >= p
        p = (d - 20.0) / 0.2
        t = min(max(p / a, -1.0), 1.0)
        return height * a * b * (math.acos(t) - t * math.sqrt(1 - t * t))

    volume = math.pi * a * b * height

    def dose_at(fraction: float) -> float:
        low, high = 20.0 - 0.2 * a, 20.0 + 0.2 * a
        for _ in range(100):
            middle = (low + high) / 2
            low, high = (middle, high) if above(middle) > fraction * volume else (low, middle)
        return (low + high) / 2

    reference = {
        "volume": volume / 1000.0,
        "min": 20.0 - 0.2 * a,
        "max": 20.0 + 0.2 * a,
        "mean": 20.0,
        "D99": dose_at(0.99),
        "D95": dose_at(0.95),
        "D5": dose_at(0.05),
        "D1": dose_at(0.01),
        "D0.03cc": dose_at(30.0 / volume),
    }
    return Case(f"body {litres:g} L, 3 mm grid", struct_path, dose_path, 1, reference)


def run_radpacs(case: Case, repeat: int) -> dict[str, object]:
    best = cpu = math.inf
    dvh = None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        struct, dose = pydicom.dcmread(case.struct), pydicom.dcmread(case.dose)
        [dvh] = dvhs_from_datasets(struct, dose, case.roi)
        best = min(best, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    assert dvh is not None
    stats = {name: metric.value for name, metric in dvh.statistics(METRICS).items()}
    return {"time": best, "cpu": cpu, "stats": stats}


def ensure_dicompyler() -> Path:
    python = DICOMPYLER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {DICOMPYLER_VENV} for dicompyler-core ...", file=sys.stderr)
        venv.create(DICOMPYLER_VENV, with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *DICOMPYLER_REQUIREMENTS], check=True
        )
    return python


def run_dicompyler(cases: list[Case], mode: str, repeat: int) -> list[dict[str, object]]:
    jobs = []
    for case in cases:
        options: dict[str, object] = {}
        if mode == "interpolated":
            spacing = float(pydicom.dcmread(case.dose, stop_before_pixels=True).PixelSpacing[0])
            options = {
                "interpolation_resolution": (spacing / 4, spacing / 4),
                "interpolation_segments_between_planes": 2,
                "use_structure_extents": True,
            }
        jobs.append(
            {
                "struct": str(case.struct),
                "dose": str(case.dose),
                "roi": case.roi,
                "repeat": repeat,
                "metrics": METRICS,
                "options": options,
            }
        )
    python = ensure_dicompyler()
    done = subprocess.run(
        [str(python), str(HERE / "_dicompyler_runner.py")],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def max_error(stats: dict[str, float | None], reference: dict[str, float]) -> tuple[float, str]:
    errors = {
        name: abs((stats[name] or math.nan) - want) / abs(want) * 100.0
        for name, want in reference.items()
    }
    worst = max(errors, key=lambda name: errors[name])
    return errors[worst], worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs (default 5)")
    parser.add_argument("--skip-interpolated", action="store_true")
    args = parser.parse_args()

    cases = [*workshop_cases(), body_case()]
    results: dict[str, list[dict[str, object]]] = {
        "radpacs": [run_radpacs(case, args.repeat) for case in cases],
        "dicompyler default": run_dicompyler(cases, "default", args.repeat),
    }
    if not args.skip_interpolated:
        results["dicompyler interpolated"] = run_dicompyler(cases, "interpolated", 1)

    header = (
        f"{'structure':26} {'tool':24} {'wall [s]':>8} {'cpu [s]':>8} {'max err':>8}  "
        f"{'worst':7} {'speed-up wall/cpu':>17}"
    )
    print(header)
    print("-" * len(header))
    report = []
    for index, case in enumerate(cases):
        ours = results["radpacs"][index]
        for tool, runs in results.items():
            run = runs[index]
            wall, cpu = float(run["time"]), float(run["cpu"])  # type: ignore[arg-type]
            error, worst = max_error(run["stats"], case.reference)  # type: ignore[arg-type]
            ratio = ""
            if tool != "radpacs":
                wall_ratio = wall / float(ours["time"])  # type: ignore[arg-type]
                cpu_ratio = cpu / float(ours["cpu"])  # type: ignore[arg-type]
                ratio = f"{wall_ratio:7.1f}x {cpu_ratio:7.1f}x"
            print(
                f"{case.name:26} {tool:24} {wall:8.3f} {cpu:8.3f} {error:7.2f}%  "
                f"{worst:7} {ratio:>17}"
            )
            report.append(
                {
                    "structure": case.name,
                    "tool": tool,
                    "wall": wall,
                    "cpu": cpu,
                    "max_error_pct": error,
                    "worst": worst,
                    "stats": run["stats"],
                    "reference": case.reference,
                }
            )
        print()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "dvh_bench.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
