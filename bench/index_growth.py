"""Grow a radpacs archive block by block and print, at each size, ingest speed, every QIDO
shape's latency, study metadata (cold and cached) and the index size per instance.

Run it with the radpacs venv, from the repository root (in-process: the Archive API, no
HTTP, so that the index is what is measured; bench/archive_bench.py compares the HTTP
server with Orthanc):

    python bench/index_growth.py                                  # 20,000 instances, SQLite
    python bench/index_growth.py --database-url \
        'postgresql+psycopg://postgres@127.0.0.1:5432/test'       # a fresh schema, dropped after
    python bench/index_growth.py --total 100000 --block 20000     # a bigger machine
    python bench/index_growth.py --total 1000000 --block 100000   # ~1 h of ingest on 8 cores

The corpus is pydicom's CT_small.dcm with new UIDs: 10 instances per series, 5 series per
study, a patient per 2 studies, names drawn from a list that holds GAGNON and GAGNE (for
``PatientName=Gagn*``), dates over ten years and accession numbers, deterministic for a
--seed. Each QIDO figure is the median of --repeat runs; "cold" metadata is the first call
on a freshly opened engine (the OS page cache stays warm), "cached" the median after it.
Only the local database and a temporary folder are touched.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import io
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import create_engine, text

from radpacs.archive import Archive, Level, parse_query
from radpacs.settings import load_settings

FAMILY = ["GAGNON", "GAGNE", "SMITH", "NGUYEN", "MARTIN", "TREMBLAY", "ROY", "COTE", "BROWN"]
GIVEN = ["ANNA", "JOHN", "MARIA", "PETER", "SARA", "TOM", "LINA", "OMAR", "LUC", "EVA"]
SERIES_PER_STUDY = 5
INSTANCES_PER_SERIES = 10


def uid(seed: int, *parts: object) -> str:
    return str(generate_uid(entropy_srcs=["/".join(str(p) for p in (seed, *parts))]))


def instances(seed: int, start: int, count: int) -> Iterator[bytes]:
    """Instances number ``start`` .. ``start + count - 1`` of the corpus, as PS3.10 bytes."""
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    template = pydicom.dcmread(path)
    for n in range(start, start + count):
        study, rest = divmod(n, SERIES_PER_STUDY * INSTANCES_PER_SERIES)
        series, number = divmod(rest, INSTANCES_PER_SERIES)
        rng = random.Random(f"{seed}/{study}")
        patient = study // 2
        ds = copy.deepcopy(template)
        ds.PatientName = f"{FAMILY[patient % len(FAMILY)]}^{rng.choice(GIVEN)}{patient}"
        ds.PatientID = f"P{patient:07d}"
        ds.StudyInstanceUID = uid(seed, "study", study)
        ds.SeriesInstanceUID = uid(seed, "series", study, series)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid(seed, "sop", n)
        ds.StudyDate = (dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(3650))).strftime(
            "%Y%m%d"
        )
        ds.AccessionNumber = f"A{study:08d}"
        ds.SeriesNumber = series + 1
        ds.InstanceNumber = number + 1
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        yield buffer.getvalue()


def index_bytes(archive: Archive) -> int:
    """Bytes the index takes: SQLite pages (WAL included), or every PostgreSQL relation of
    the schema with its indexes and TOAST."""
    with archive.engine.connect() as connection:
        if archive.engine.dialect.name == "sqlite":
            return int(
                connection.scalar(
                    text("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size")
                )
                or 0
            )
        return int(
            connection.scalar(
                text(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace"
                    " n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"
                    " AND c.relkind IN ('r', 'm')"
                )
            )
            or 0
        )


def median_ms(run: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def qido_shapes(
    seed: int, stored: int
) -> dict[str, tuple[Level, list[tuple[str, str]], str | None]]:
    """Each query shape, aimed at data that exists at this size."""
    last_study = (stored - 1) // (SERIES_PER_STUDY * INSTANCES_PER_SERIES)
    study = uid(seed, "study", last_study // 2)
    series = uid(seed, "series", last_study // 2, 0)
    return {
        "studies (limit 100)": (Level.STUDY, [("limit", "100")], None),
        "PatientName=Gagn*": (Level.STUDY, [("PatientName", "Gagn*")], None),
        "PatientID=": (Level.STUDY, [("PatientID", f"P{last_study // 4:07d}")], None),
        "AccessionNumber=": (Level.STUDY, [("AccessionNumber", f"A{last_study // 3:08d}")], None),
        "StudyDate range": (Level.STUDY, [("StudyDate", "20200101-20200131")], None),
        "ModalitiesInStudy=CT": (
            Level.STUDY,
            [("ModalitiesInStudy", "CT"), ("limit", "100")],
            None,
        ),
        "series of a study": (Level.SERIES, [], study),
        "instances of a series": (
            Level.INSTANCE,
            [("StudyInstanceUID", study), ("SeriesInstanceUID", series)],
            None,
        ),
        "includefield=KVP (series)": (Level.SERIES, [("includefield", "00180060")], study),
        "residual SliceThickness=": (
            Level.SERIES,
            [("SliceThickness", "5"), ("limit", "10")],
            study,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=20_000)
    parser.add_argument("--block", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=50, help="instances per store_many call")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="radpacs-index-growth-"))
    admin = None
    url = args.database_url
    if url:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(url)
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    settings = (
        load_settings(data_dir=work, database_url=url) if url else load_settings(data_dir=work)
    )
    try:
        archive = Archive.from_settings(settings)
        print(
            f"database: {archive.engine.dialect.name}; blocks of {args.block}, batch {args.batch}"
        )
        stored = 0
        while stored < args.total:
            count = min(args.block, args.total - stored)
            batch: list[bytes] = []
            start = time.perf_counter()
            encode_s = 0.0
            generator = instances(args.seed, stored, count)
            while True:
                t0 = time.perf_counter()
                batch = [blob for _, blob in zip(range(args.batch), generator, strict=False)]
                encode_s += time.perf_counter() - t0
                if not batch:
                    break
                results = archive.store_many(batch)
                assert all(r.outcome.name == "STORED" for r in results), results[0]
            rate = count / (time.perf_counter() - start - encode_s)
            stored += count
            size = index_bytes(archive)
            print(
                f"\n== {stored} instances: ingest {rate:.0f} inst/s in this block; index "
                f"{size / 1e6:.1f} MB, {size / stored:.0f} B per instance"
            )
            for name, (level, params, study_uid) in qido_shapes(args.seed, stored).items():
                query = parse_query(level, params, study_uid=study_uid)
                found = len(archive.search(query).matches)
                ms = median_ms(lambda q=query, a=archive: a.search(q), args.repeat)
                print(f"  QIDO {name:<28} {ms:7.2f} ms  ({found} matches)")
            study = uid(args.seed, "study", 0)
            archive.close()
            archive = Archive.from_settings(settings)
            t0 = time.perf_counter()
            body = archive.metadata(study)
            cold = (time.perf_counter() - t0) * 1000
            cached = median_ms(lambda a=archive, s=study: a.metadata(s), args.repeat)
            print(
                f"  study metadata ({SERIES_PER_STUDY * INSTANCES_PER_SERIES} instances, "
                f"{len(body) / 1e3:.0f} kB): cold {cold:.2f} ms, cached {cached:.2f} ms"
            )
        archive.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if admin is not None:
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


if __name__ == "__main__":
    main()
