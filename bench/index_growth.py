"""Grow radpacs (SQLite and PostgreSQL) and Orthanc side by side, block by block, and print at
each size the ingest rate of the block, every QIDO shape's latency, study metadata and the
index size per instance, with radpacs/Orthanc ratios.

Run it with the radpacs venv, from the repository root:

    python bench/index_growth.py                                   # 1k, 10k, 50k, 100k
    python bench/index_growth.py --database-url \
        'postgresql+psycopg://postgres@127.0.0.1:5432/test'        # + radpacs on PostgreSQL
    python bench/index_growth.py --sizes 1000,10000,100000,1000000 \
        --database-url ... --block-timeout 7200                     # a bigger machine

Every server is started by the bench on a free loopback port with a fresh temporary folder:
radpacs with `radpacs serve --no-auth --no-dimse` (its SQLite index; with --database-url a
second radpacs on a fresh PostgreSQL schema, dropped after) and Orthanc (Debian packages
orthanc + orthanc-dicomweb, its own SQLite index; as in bench/archive_bench.py). At each
size, the next block of instances is built once (CT_small.dcm's header with 8x8 pixels and
new UIDs: 10 instances a series, 5 series a study, a patient per 2 studies, names that hold
GAGNON and GAGNE, dates over ten years, accession numbers; deterministic for a --seed) and
sent to each server in turn, never at once, as the same multipart STOW-RS bodies of --batch
instances by --clients threads, each with its own keep-alive client. Then each QIDO shape
is asked once to warm up and --repeat times timed (median), and study metadata of a study
not asked before ("first") and again ("again", median). Index size: radpacs's index.sqlite
and Orthanc's index (SQLite pages, those in the WAL included), every relation of the
PostgreSQL schema with indexes and TOAST.

With --block-timeout, a server that takes longer than that to store a block (Orthanc, on a
big run) is stopped there, its count and rate reported, and the run goes on without it.

Ratios are phrased so that >1 means radpacs is better (Orthanc's time / radpacs's time, and
radpacs's rate / Orthanc's rate, Orthanc's bytes / radpacs's bytes). Figures go to stdout and,
after each size, to bench/out/index-growth-<timestamp>.json. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import queue
import shlex
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from archive_bench import (
    DEFAULT_ORTHANC_PLUGIN,
    DEFAULT_OUT_DIR,
    DICOM_JSON,
    Server,
    background_cpu,
    default_radpacs_cmd,
    deterministic_uid,
    encode_instance,
    load_template,
    multipart_body,
    new_client,
    query_url,
    start_orthanc,
    start_radpacs,
    stop,
    stow_worker,
)

FAMILY = ["GAGNON", "GAGNE", "SMITH", "NGUYEN", "MARTIN", "TREMBLAY", "ROY", "COTE", "BROWN"]
GIVEN = ["ANNA", "JOHN", "MARIA", "PETER", "SARA", "TOM", "LINA", "OMAR", "LUC", "EVA"]
SERIES_PER_STUDY = 5
INSTANCES_PER_SERIES = 10
PER_STUDY = SERIES_PER_STUDY * INSTANCES_PER_SERIES
SIDE = 8  # pixels a side: the index is measured, not the blob store


def instances(seed: int, start: int, count: int) -> Iterator[bytes]:
    """Instances number ``start`` .. ``start + count - 1`` of the corpus, as PS3.10 bytes."""
    import random

    ds = load_template()
    ds.Rows = ds.Columns = SIDE
    ds.PixelData = bytes(SIDE * SIDE * 2)
    for n in range(start, start + count):
        study, rest = divmod(n, PER_STUDY)
        series, number = divmod(rest, INSTANCES_PER_SERIES)
        rng = random.Random(f"{seed}/{study}")
        patient = study // 2
        date = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(3650))
        sop = deterministic_uid(seed, "sop", n)
        yield encode_instance(
            ds,
            {
                "PatientName": f"{FAMILY[patient % len(FAMILY)]}^{rng.choice(GIVEN)}{patient}",
                "PatientID": f"P{patient:07d}",
                "StudyInstanceUID": deterministic_uid(seed, "study", study),
                "SeriesInstanceUID": deterministic_uid(seed, "series", study, series),
                "SOPInstanceUID": sop,
                "StudyDate": date.strftime("%Y%m%d"),
                "AccessionNumber": f"A{study:08d}",
                "SeriesNumber": series + 1,
                "InstanceNumber": number + 1,
            },
        )


def stow_bodies(blobs: list[bytes], batch: int) -> list[tuple[str, bytes]]:
    """The block as ready-to-send (content type, body) STOW requests of ``batch`` instances."""
    bodies = []
    for start in range(0, len(blobs), batch):
        boundary = f"growth-{uuid.uuid4().hex}"
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        bodies.append((content_type, multipart_body(blobs[start : start + batch], boundary)))
    return bodies


def stow(
    root: str, bodies: list[tuple[str, bytes]], clients: int, timeout: float | None
) -> tuple[float, int, int]:
    """Send the bodies with ``clients`` keep-alive threads, none started after ``timeout``
    seconds; (seconds, failed requests, requests answered)."""
    work: queue.Queue[tuple[str, bytes]] = queue.Queue()
    for body in bodies:
        work.put(body)
    statuses: list[tuple[int, bool]] = []
    threads = [
        threading.Thread(
            target=stow_worker, args=(new_client("identity"), root, work, statuses), daemon=True
        )
        for _ in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        left = None if timeout is None else max(0.0, started + timeout - time.perf_counter())
        thread.join(left)
        if thread.is_alive():  # out of time: no new request; the ones under way finish
            with contextlib.suppress(queue.Empty):
                while True:
                    work.get_nowait()
            thread.join()
    seconds = time.perf_counter() - started
    failed = sum(1 for status, failures in statuses if status != 200 or failures)
    return seconds, failed, len(statuses)


@dataclass
class Target:
    """A server of the run and how to read its index size."""

    label: str
    server: Server
    index_bytes: Callable[[], int]


def sqlite_bytes(path: Path) -> int:
    """Pages of a SQLite database, those still in its write-ahead log included (the WAL
    file's own length depends on when a checkpoint last ran, not on the data). Orthanc
    keeps its index locked: then the length of the file and its WAL (at most ~4 MB more,
    SQLite's default checkpoint)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            pages, size = db.execute(
                "SELECT page_count, page_size FROM pragma_page_count, pragma_page_size"
            ).fetchone()
        return int(pages) * int(size)
    except sqlite3.OperationalError:  # database is locked
        wal = path.with_name(path.name + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def schema_bytes(engine: Engine, schema: str) -> int:
    """Every relation of a PostgreSQL schema with its indexes and TOAST."""
    with engine.connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace"
                    " n ON n.oid = c.relnamespace WHERE n.nspname = :schema"
                    " AND c.relkind IN ('r', 'm')"
                ),
                {"schema": schema},
            )
            or 0
        )


def qido_shapes(seed: int, stored: int) -> dict[str, tuple[str, dict[str, str]]]:
    """Each query shape as (path under the DICOMweb root, parameters), aimed at data that
    exists at this size."""
    last_study = (stored - 1) // PER_STUDY
    study = deterministic_uid(seed, "study", last_study // 2)
    series = deterministic_uid(seed, "series", last_study // 2, 0)
    return {
        "studies (limit 100)": ("/studies", {"limit": "100"}),
        "PatientName=Gagn*": ("/studies", {"PatientName": "Gagn*"}),
        "PatientName=Gagn* limit 10": ("/studies", {"PatientName": "Gagn*", "limit": "10"}),
        "PatientID=": ("/studies", {"PatientID": f"P{last_study // 4:07d}"}),
        "AccessionNumber=": ("/studies", {"AccessionNumber": f"A{last_study // 3:08d}"}),
        "StudyDate range": ("/studies", {"StudyDate": "20200101-20200131"}),
        "ModalitiesInStudy=CT": ("/studies", {"ModalitiesInStudy": "CT", "limit": "100"}),
        "series of a study": (f"/studies/{study}/series", {}),
        "instances of a series": (f"/studies/{study}/series/{series}/instances", {}),
        "includefield=KVP (series)": (f"/studies/{study}/series", {"includefield": "00180060"}),
        "residual SliceThickness=": (
            f"/studies/{study}/series",
            {"SliceThickness": "5", "limit": "10"},
        ),
    }


def timed(client: httpx.Client, url: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(url, headers={"Accept": DICOM_JSON})
    return (time.perf_counter() - started) * 1000, response


def median_get(client: httpx.Client, url: str, repeat: int) -> tuple[float, int]:
    """One warm-up GET, then the median of ``repeat`` (ms, and the number of results)."""
    _, response = timed(client, url)
    response.raise_for_status()
    found = len(response.json()) if response.status_code == 200 else 0
    return statistics.median(timed(client, url)[0] for _ in range(repeat)), found


def measure_size(
    target: Target, seed: int, stored: int, repeat: int
) -> dict[str, tuple[float, int]]:
    """Every QIDO shape and study metadata on one server: name -> (ms, results)."""
    root = target.server.dicomweb_root
    out: dict[str, tuple[float, int]] = {}
    with new_client("identity") as client:
        for name, (path, params) in qido_shapes(seed, stored).items():
            out[name] = median_get(client, query_url(root + path, params), repeat)
        # a study of the last block, asked here for the first time on every server
        study = deterministic_uid(seed, "study", (stored - 1) // PER_STUDY)
        first, response = timed(client, f"{root}/studies/{study}/metadata")
        response.raise_for_status()
        again = statistics.median(
            timed(client, f"{root}/studies/{study}/metadata")[0] for _ in range(repeat)
        )
        out["study metadata, first"] = (first, len(response.json()))
        out["study metadata, again"] = (again, len(response.json()))
    return out


def ratio(ours: float, theirs: float, higher_is_better: bool) -> str:
    if ours <= 0 or theirs <= 0:
        return "-"
    return f"{(ours / theirs if higher_is_better else theirs / ours):.2f}"


def print_size(stored: int, row: dict[str, dict[str, Any]], labels: list[str]) -> None:
    """One table for this size: a column per server, then radpacs/Orthanc ratios."""
    radpacs = [label for label in labels if label != "orthanc"]
    has_orthanc = "orthanc" in labels
    head = "".join(f"{label:>16}" for label in labels)
    if has_orthanc:
        head += "".join(f"{label + '/orthanc':>20}" for label in radpacs)
    print(f"\n== {stored} instances\n{'':<32}{head}", flush=True)

    def line(name: str, values: dict[str, float], fmt: str, higher: bool) -> None:
        cells = "".join(f"{format(values[label], fmt):>16}" for label in labels)
        if has_orthanc:
            cells += "".join(
                f"{ratio(values[label], values['orthanc'], higher):>20}" for label in radpacs
            )
        print(f"{name:<32}{cells}", flush=True)

    line("ingest, inst/s (this block)", {k: row[k]["ingest"] for k in labels}, ".0f", True)
    line("index, B per instance", {k: row[k]["index_bytes"] / stored for k in labels}, ".0f", False)
    for name in row[labels[0]]["latency"]:
        values = {k: row[k]["latency"][name][0] for k in labels}
        counts = {k: row[k]["latency"][name][1] for k in labels}
        cells = "".join(f"{f'{values[k]:.2f} ({counts[k]})':>16}" for k in labels)
        if has_orthanc:
            cells += "".join(f"{ratio(values[k], values['orthanc'], False):>20}" for k in radpacs)
        print(f"{name + ', ms':<32}{cells}", flush=True)
        if len(set(counts.values())) > 1:
            print(f"  NOTE {name}: the servers return different counts {counts}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000,100000")
    parser.add_argument("--batch", type=int, default=20, help="instances per STOW request")
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive clients")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--database-url", default="", help="also radpacs on this PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="no radpacs on SQLite")
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument("--orthanc-bin", default="Orthanc")
    parser.add_argument(
        "--block-timeout",
        type=float,
        default=None,
        help="seconds a server may take to store a block; one that takes longer is stopped "
        "there (its count is reported) and the run goes on with the others",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes != sorted(set(sizes)) or sizes[0] <= 0:
        parser.error("--sizes: increasing positive numbers")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on a kill too
    work = Path(tempfile.mkdtemp(prefix="radpacs-index-growth-"))
    DEFAULT_OUT_DIR.mkdir(exist_ok=True)
    out_path = DEFAULT_OUT_DIR / f"index-growth-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    targets: list[Target] = []
    admin: Engine | None = None
    schema = f"growth_{uuid.uuid4().hex[:10]}"
    try:
        if not args.no_sqlite:
            folder = work / "sqlite"
            folder.mkdir()
            server = start_radpacs(folder, default_radpacs_cmd(), 1)
            data = folder / "data"
            targets.append(
                Target("sqlite", server, lambda d=data: sqlite_bytes(d / "index.sqlite"))
            )
        if args.database_url:
            admin = create_engine(args.database_url)
            with admin.begin() as connection:
                connection.execute(text(f"CREATE SCHEMA {schema}"))
            url = args.database_url
            url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
            folder = work / "postgresql"
            folder.mkdir()
            command = f"{default_radpacs_cmd()} --database-url {shlex.quote(url)}"
            server = start_radpacs(folder, command, 1)
            targets.append(Target("postgresql", server, lambda e=admin: schema_bytes(e, schema)))
        if not args.no_orthanc:
            folder = work / "orthanc"
            folder.mkdir()
            server = start_orthanc(folder, args.orthanc_bin, DEFAULT_ORTHANC_PLUGIN, {})
            index = folder / "index" / "index"
            targets.append(Target("orthanc", server, lambda d=index: sqlite_bytes(d)))
        labels = [t.label for t in targets]
        print(
            f"servers: {', '.join(labels)}; sizes {sizes}; STOW {args.batch} instances a "
            f"request, {args.clients} keep-alive clients; QIDO median of {args.repeat}",
            flush=True,
        )
        results: dict[str, Any] = {"args": vars(args), "sizes": {}, "stopped": {}}
        stored = 0
        for size in sizes:
            t0 = time.perf_counter()
            blobs = list(instances(args.seed, stored, size - stored))
            bodies = stow_bodies(blobs, args.batch)
            built = time.perf_counter() - t0
            print(
                f"\n[block {stored}..{size}] built {len(blobs)} instances "
                f"({sum(map(len, blobs)) / len(blobs) / 1e3:.1f} kB each) in {built:.0f} s",
                flush=True,
            )
            del blobs
            row: dict[str, dict[str, Any]] = {}
            for target in list(targets):
                busy = background_cpu(target.label, "before")
                seconds, failed, sent = stow(
                    target.server.dicomweb_root, bodies, args.clients, args.block_timeout
                )
                if failed:
                    raise SystemExit(f"{target.label}: {failed} STOW requests failed")
                count = min(size - stored, sent * args.batch)
                rate = count / seconds
                if sent < len(bodies):  # left behind: measured no further
                    print(
                        f"[{target.label}] STOPPED after --block-timeout: {stored + count} "
                        f"instances stored, {rate:.0f} inst/s in this block",
                        flush=True,
                    )
                    results["stopped"][target.label] = {"instances": stored + count, "ingest": rate}
                    targets.remove(target)
                    stop(target.server)
                    continue
                print(f"[{target.label}] stored the block at {rate:.0f} inst/s", flush=True)
                row[target.label] = {"ingest": rate, "busy_before": busy}
            del bodies
            stored = size
            labels = [t.label for t in targets]
            for target in targets:
                row[target.label]["index_bytes"] = target.index_bytes()
                row[target.label]["latency"] = measure_size(target, args.seed, stored, args.repeat)
            print_size(stored, row, labels)
            results["sizes"][str(stored)] = row
            out_path.write_text(json.dumps(results, indent=1))
        print(f"\nwritten: {out_path}", flush=True)
    finally:
        for target in targets:
            stop(target.server)
        shutil.rmtree(work, ignore_errors=True)
        if admin is not None:
            with contextlib.suppress(Exception), admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


if __name__ == "__main__":
    main()
