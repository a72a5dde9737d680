"""Peak memory of one large STOW-RS, radpacs beside Orthanc, on this machine.

Run it with the radpacs venv, from the repository root:

    python bench/stow_memory_bench.py [--parts 300 --part-mb 5] [--only radpacs|orthanc]

Each server starts on a free loopback port with a fresh data directory (as in
bench/archive_bench.py). One STOW-RS body of --parts distinct CT instances of about --part-mb
MB each is streamed to it by the client (made on the fly, never held whole); the figure is the
server's peak resident memory (VmHWM from /proc) before and after, and the time the store took.
Writes bench/out/stow-memory-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _stow_load import CONTENT_TYPE, parts, peak_rss_bytes
from archive_bench import default_radpacs_cmd, start_orthanc, start_radpacs, stop

MB = 1024 * 1024


def measure(server_name: str, parts_count: int, part_mb: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"stow-memory-{server_name}-") as work:
        if server_name == "radpacs":
            server = start_radpacs(Path(work), default_radpacs_cmd(), 1)
        else:
            server = start_orthanc(
                Path(work),
                "Orthanc",
                "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                {},
            )
        try:
            assert server.process is not None
            pid = server.process.pid
            before = peak_rss_bytes(pid)
            started = time.monotonic()
            with httpx.Client(timeout=1800) as client:
                response = client.post(
                    f"{server.dicomweb_root}/studies",
                    content=parts(parts_count, part_mb * MB, generate_uid()),
                    headers={"Content-Type": CONTENT_TYPE, "Accept": "application/dicom+json"},
                )
            seconds = time.monotonic() - started
            stored = len(response.json().get("00081199", {}).get("Value", []))
            peak = peak_rss_bytes(pid)
        finally:
            stop(server)
    body_mb = parts_count * part_mb
    result = {
        "server": server_name,
        "status": response.status_code,
        "stored": stored,
        "body_mb": body_mb,
        "peak_rss_before_mb": round(before / MB),
        "peak_rss_after_mb": round(peak / MB),
        "seconds": round(seconds, 1),
    }
    print(
        f"{server_name:8} HTTP {response.status_code}, {stored}/{parts_count} stored, "
        f"{body_mb} MiB body: peak RSS {before / MB:.0f} -> {peak / MB:.0f} MiB, {seconds:.1f} s",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=300)
    parser.add_argument("--part-mb", type=int, default=5)
    parser.add_argument("--only", choices=["radpacs", "orthanc"])
    args = parser.parse_args()
    names = [args.only] if args.only else ["radpacs", "orthanc"]
    results = [measure(name, args.parts, args.part_mb) for name in names]
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"stow-memory-{stamp}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
