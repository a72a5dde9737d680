"""Inference time of the classical segmenter alone on a 200 x 512 x 512 CT, in process.

The phantom: a body ellipse at 40 HU in air, spheres of 5, 10, 15 and 20 mm radius at
150 HU with partial volume, noise 12 HU, 0.7 x 0.7 x 2.5 mm voxels. Times `segment()` (what
the worker's "infer" covers, without loading files) for the default focal mode and for a
window, best and median of ``--repeat`` runs, and prints each region's volume beside the
spheres' true volumes.

    .venv/bin/python bench/segmenter_bench.py [--slices 200] [--size 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _ai_support import add_sphere
from radpacs.ai.builtin.segmenter import segment

SPACING = (0.7, 0.7, 2.5)
RADII = (20.0, 15.0, 10.0, 5.0)


def phantom(slices: int, size: int) -> tuple[np.ndarray, list[float]]:
    """float32 CT in HU (stored as integers) and the spheres' true volumes, largest first."""
    _, j, i = np.ogrid[:slices, :size, :size]
    c = (size - 1) / 2
    body = ((i - c) / (0.42 * size)) ** 2 + ((j - c) / (0.32 * size)) ** 2 <= 1
    volume = np.broadcast_to(np.where(body, 40, -1000), (slices, size, size)).astype(np.float32)
    spacing_kji = (SPACING[2], SPACING[1], SPACING[0])
    middle = (slices * SPACING[2] / 2, c * SPACING[1], c * SPACING[0])
    offsets = ((0, -60), (0, 60), (-50, 0), (45, 20))
    truths = [
        add_sphere(volume, (middle[0], middle[1] + dj, middle[2] + di), r, spacing_kji, 150.0)
        for r, (dj, di) in zip(RADII, offsets, strict=True)
    ]
    volume += np.random.default_rng(0).normal(0, 12, volume.shape).astype(np.float32)
    return np.round(volume).astype(np.float32), truths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    array, truths = phantom(args.slices, args.size)
    print("true volumes (mm3): " + ", ".join(f"{t:.0f}" for t in truths))
    voxel = float(np.prod(SPACING))
    for name, parameters in (
        ("focal (defaults)", {}),
        ("window 100..400", {"lower": 100, "upper": 400}),
    ):
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            _, sizes = segment(array, SPACING, parameters)
            times.append(time.perf_counter() - start)
        volumes = ", ".join(f"{s * voxel:.0f}" for s in sizes)
        print(
            f"{args.slices}x{args.size}x{args.size} {name}: best {min(times):.2f} s, "
            f"median {float(np.median(times)):.2f} s; regions (mm3): {volumes}"
        )


if __name__ == "__main__":
    main()
