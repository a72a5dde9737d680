"""Time from AI job submission to stored results: 200-slice 512x512 CT, classical segmenter.

Runs a real `radpacs serve` (embedded worker, SQLite queue) in a temporary folder, stores
a synthetic CT (body ellipse at 40 HU, three spheres at 150 HU, noise) through STOW-RS,
submits a job and polls until it succeeds. Prints submit-to-stored wall time and the
worker's own split into load, infer and write.

    .venv/bin/python bench/ai_bench.py [--slices 200] [--size 512]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _ai_support import make_series
from conftest import LiveServer, multipart, to_bytes


def phantom(slices: int, size: int) -> np.ndarray:
    k, j, i = np.ogrid[:slices, :size, :size]
    c = size / 2
    body = ((i - c) / (0.42 * size)) ** 2 + ((j - c) / (0.32 * size)) ** 2 <= 1
    volume = np.broadcast_to(np.where(body, 40, -1000), (slices, size, size)).astype(np.float32)
    for ck, cj, ci, r in (
        (slices * 0.3, c - 40, c - 60, 25),
        (slices * 0.5, c + 30, c + 50, 35),
        (slices * 0.7, c, c, 18),
    ):
        volume[((k - ck) * 2.5) ** 2 + (j - cj) ** 2 + (i - ci) ** 2 <= r**2] = 150
    volume += np.random.default_rng(0).normal(0, 12, volume.shape).astype(np.float32)
    return volume.astype(np.int16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    datasets = make_series(phantom(args.slices, args.size), spacing=(0.7, 0.7, 2.5))
    with tempfile.TemporaryDirectory() as folder:
        server = LiveServer(Path(folder) / "data", ["--no-auth", "--no-dimse"]).start()
        try:
            for start in range(0, len(datasets), 50):
                body, content_type = multipart([to_bytes(d) for d in datasets[start : start + 50]])
                httpx.post(
                    f"{server.url}/dicom-web/studies",
                    content=body,
                    headers={"Content-Type": content_type},
                    timeout=120,
                ).raise_for_status()
            request = {
                "model": "classical-segmenter",
                "study": datasets[0].StudyInstanceUID,
                "series": datasets[0].SeriesInstanceUID,
                "parameters": {"lower": 100, "upper": 400},
            }
            submitted = time.perf_counter()
            job = httpx.post(f"{server.url}/api/ai/jobs", json=request).json()
            while job["state"] in ("queued", "running"):
                time.sleep(0.1)
                job = httpx.get(f"{server.url}/api/ai/jobs/{job['id']}").json()
            elapsed = time.perf_counter() - submitted
        finally:
            server.stop()
    if job["state"] != "succeeded":
        raise SystemExit(f"job {job['state']}: {job['error']}")
    t = job["timings"]
    print(
        f"{args.slices} slices {args.size}x{args.size}: submit -> stored {elapsed:.2f} s "
        f"(load {t['load']:.2f} s, infer {t['infer']:.2f} s, write {t['write']:.2f} s; "
        f"rest = queue, process start, polling); "
        f"{len(job['result_series'])} result series"
    )


if __name__ == "__main__":
    main()
