"""Scale-out figures: bench/archive_bench.py with 1, 2, 4 API processes, beside Orthanc.

For each backend (folder, or S3 on a moto server this script starts on loopback) and each
process count, a fresh PostgreSQL database (or SQLite) and a fresh bucket prefix are made and
archive_bench.py runs radpacs (`radpacs serve --workers N`) and Orthanc one after the other in
the same run, so every figure has its Orthanc counterpart measured minutes apart. Extra
arguments after `--` go to archive_bench.py.

    python bench/scale_bench.py --backends folder s3 --workers 1 2 4 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432 -- --studies 8

Each run's table and JSON file are archive_bench.py's own; a summary of the STOW and retrieve
rows is printed at the end. `--env NAME=VALUE` sets radpacs settings for every run (for
example RADPACS_S3_READ_AHEAD=0 to measure without read-ahead).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
RUN_TIMEOUT_S = 1800
ACCESS_KEY, SECRET_KEY = "bench", "bench-secret"


@contextlib.contextmanager
def moto_server(port: int) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1:port, with a bucket `bench`; its endpoint URL."""
    program = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(program), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(endpoint, timeout=2)
                break
            time.sleep(0.2)
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        ).create_bucket(Bucket="bench")
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=15)


def fresh_database(server_url: str | None) -> str | None:
    """A new empty PostgreSQL database on server_url (createdb), or None for SQLite."""
    if not server_url:
        return None
    name = f"bench_{uuid.uuid4().hex[:10]}"
    url = httpx.URL(server_url.replace("postgresql+psycopg", "http"))
    subprocess.run(
        [
            "createdb",
            "-h",
            url.host,
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            name,
        ],
        check=True,
        timeout=60,
    )
    return f"{server_url.rstrip('/')}/{name}"


def latest_result(since: float) -> dict[str, object] | None:
    """The newest bench/out/archive-*.json written after `since`."""
    files = [p for p in (BENCH_DIR / "out").glob("archive-*.json") if p.stat().st_mtime >= since]
    if not files:
        return None
    data: dict[str, object] = json.loads(max(files, key=lambda p: p.stat().st_mtime).read_text())
    return data


def main() -> int:
    """Run archive_bench.py once per backend and process count; print a summary."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", nargs="+", choices=["folder", "s3"], default=["folder"])
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--database-url", help="PostgreSQL server URL without a database name")
    p.add_argument("--moto-port", type=int, default=25090)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for radpacs")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    args = p.parse_args()
    extra = [a for a in args.bench_args if a != "--"]
    rows = []
    with contextlib.ExitStack() as stack:
        endpoint = None
        if "s3" in args.backends:
            endpoint = stack.enter_context(moto_server(args.moto_port))
        for backend in args.backends:
            for workers in args.workers:
                env = dict(os.environ)
                env.update(item.split("=", 1) for item in args.env)
                if backend == "s3":
                    env.update(
                        RADPACS_BLOB_BACKEND="s3",
                        RADPACS_S3_ENDPOINT_URL=str(endpoint),
                        RADPACS_S3_BUCKET="bench",
                        RADPACS_S3_PREFIX=f"{uuid.uuid4().hex[:8]}/",
                        RADPACS_S3_ACCESS_KEY_ID=ACCESS_KEY,
                        RADPACS_S3_SECRET_ACCESS_KEY=SECRET_KEY,
                    )
                database = fresh_database(args.database_url)
                if database:
                    env["RADPACS_DATABASE_URL"] = database
                started = time.time()
                command = [
                    sys.executable,
                    str(BENCH_DIR / "archive_bench.py"),
                    "--workers",
                    str(workers),
                    *extra,
                ]
                print(f"== {backend}, {workers} process(es): {shlex.join(command)}", flush=True)
                subprocess.run(command, env=env, timeout=RUN_TIMEOUT_S, check=False)
                result = latest_result(started)
                summary = result.get("summary", {}) if result else {}
                rows.append((backend, workers, summary))
    print(
        "\nbackend  processes  STOW radpacs/orthanc (ratio)  retrieve MB/s radpacs/orthanc (ratio)"
    )
    for backend, workers, summary in rows:
        assert isinstance(summary, dict)
        cells = []
        for key in ("stow_instances_per_s", "retrieve_mb_per_s"):
            row = summary.get(key) or {}
            values = [row.get("radpacs"), row.get("orthanc"), row.get("ratio_radpacs_better")]
            cells.append(
                " / ".join("-" if v is None else f"{v:.1f}" for v in values[:2])
                + (f" ({values[2]:.2f})" if values[2] is not None else "")
            )
        print(f"{backend:<8} {workers:>9}  {cells[0]:<28} {cells[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
