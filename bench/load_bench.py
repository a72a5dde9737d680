"""A bounded load test (locust, headless, loopback) of radpacs and Orthanc, one after the other.

    python bench/load_bench.py [--users 10 50 100 --duration 60 --workers 1] \
        [--locust /path/to/locust] [--only both|radpacs|orthanc]

Each server is started fresh (as bench/archive_bench.py does: radpacs `serve --no-auth
--no-dimse`, Orthanc 1.10 with its DICOMweb plugin, SQLite index), filled with the default
corpus of archive_bench.py (1,000 CT instances in 20 studies) by STOW, then driven by
bench/locustfile.py (OHIF-like viewers and one uploader in ten) at each user count for
--duration seconds. Printed per level: requests/s, median and p95 latency of all requests and
of each kind, and the failures (any failure is an error of the run: exit status 1). The
locust CSV files are kept in bench/out/load-<timestamp>/.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_bench as ab

BENCH_DIR = Path(__file__).resolve().parent


def write_bodies(folder: Path, seed: int) -> int:
    """STOW bodies of a second corpus (other UIDs), one file per batch of 10, named by boundary."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = ab.build_corpus(10, 2, 25, seed)
    for content_type, body in ab.stow_batches(corpus, 10):
        boundary = content_type.rsplit("boundary=", 1)[1]
        (folder / f"{boundary}.body").write_bytes(body)
    return len(corpus.instances)


def read_stats(prefix: Path) -> list[dict[str, Any]]:
    """Rows of locust's <prefix>_stats.csv."""
    with Path(f"{prefix}_stats.csv").open() as handle:
        return list(csv.DictReader(handle))


def run_level(
    locust: str, host: str, users: int, duration: int, prefix: Path, bodies: Path
) -> list[dict[str, Any]]:
    """One headless locust run of `users` users for `duration` s; its stats rows."""
    command = [
        locust, "-f", str(BENCH_DIR / "locustfile.py"), "--headless", "--only-summary",
        "-u", str(users), "-r", str(max(1, users // 5)), "-t", f"{duration}s",
        "--host", host, "--csv", str(prefix), "--stop-timeout", "10",
    ]  # fmt: skip
    env = {**os.environ, "LOAD_BENCH_BODIES": str(bodies)}
    subprocess.run(
        command, env=env, timeout=duration + 120, check=False, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return read_stats(prefix)


def describe(rows: list[dict[str, Any]]) -> list[str]:
    """Lines: every kind of request and the aggregate, with rate, median, p95, failures."""
    lines = []
    for row in rows:
        lines.append(
            f"  {row['Name']:<16} {float(row['Requests/s']):8.1f} req/s  median "
            f"{row['50%']:>6} ms  p95 {row['95%']:>6} ms  requests {row['Request Count']:>6}  "
            f"failures {row['Failure Count']}"
        )
    return lines


def main() -> int:
    """Start each server, fill it, load it at every user level, print and keep the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", nargs="+", type=int, default=[10, 50, 100])
    p.add_argument("--duration", type=int, default=60, help="seconds per level")
    p.add_argument("--workers", type=int, default=1, help="radpacs server processes")
    p.add_argument("--only", choices=["both", "radpacs", "orthanc"], default="both")
    p.add_argument("--locust", default=shutil.which("locust") or "locust")
    args = p.parse_args()
    bench_args = ab.parse_args(["--workers", str(args.workers)])
    ab.startup_timeout_s = 180.0  # a busy machine starts several processes slowly
    out = BENCH_DIR / "out" / f"load-{dt.datetime.now():%Y%m%d-%H%M%S}"
    bodies = out / "bodies"
    write_bodies(bodies, seed=2)
    corpus = ab.build_corpus(20, 2, 25, 1)
    names = ["radpacs", "orthanc"] if args.only == "both" else [args.only]
    failures = 0
    summary: dict[str, dict[int, dict[str, Any]]] = {}
    for name in names:
        work_dir = Path(tempfile.mkdtemp(prefix=f"load-{name}-"))
        server = ab.start_server(name, work_dir, bench_args)
        try:
            stow = ab.measure_stow(server.dicomweb_root, corpus, 10, 4, "identity")
            print(f"[{name}] filled: {stow.stored_instances} instances", flush=True)
            for users in args.users:
                rows = run_level(
                    args.locust, server.dicomweb_root, users, args.duration,
                    out / f"{name}-{users}", bodies,
                )  # fmt: skip
                total = next(r for r in rows if r["Name"] == "Aggregated")
                failures += int(total["Failure Count"])
                summary.setdefault(name, {})[users] = total
                print(f"[{name}] {users} users, {args.duration} s:", flush=True)
                print("\n".join(describe(rows)), flush=True)
        finally:
            ab.stop(server)
            shutil.rmtree(work_dir, ignore_errors=True)
    print("\nusers  " + "  ".join(f"{n + ' req/s, p95 ms':>26}" for n in names))
    for users in args.users:
        cells = []
        for name in names:
            row = summary.get(name, {}).get(users)
            cells.append("-" if row is None else f"{float(row['Requests/s']):.1f}, {row['95%']}")
        print(f"{users:>5}  " + "  ".join(f"{c:>26}" for c in cells))
    print(f"\nlocust CSV files in {out}; failures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
