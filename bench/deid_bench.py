"""Instances per second, radpacs and dicognito, on the same files in one run.

    .venv/bin/python bench/deid_bench.py [--rounds 5]

Both sides read each file from bytes in memory, de-identify it and write it to bytes;
dicognito runs in bench/.venv-peers (created if missing) and times itself inside that
process. Only the files dicognito handles are timed, for both.
"""

from __future__ import annotations

import argparse
import io
import time
import warnings
from pathlib import Path

import pydicom

from peers import corpus, run_peer
from radpacs.deid import Anonymizer
from radpacs.deid.files import write_dataset


def time_radpacs(paths: list[str], rounds: int) -> tuple[int, float]:
    blobs = [Path(p).read_bytes() for p in paths]
    anonymizer = Anonymizer(b"benchmark-secret-0123456789")

    def one(data: bytes) -> None:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        anonymizer.anonymize(ds, pixels_checked=True, copy_first=False)
        write_dataset(ds)

    for data in blobs:  # warm-up
        one(data)
    start = time.perf_counter()
    for _ in range(rounds):
        for data in blobs:
            one(data)
    return len(blobs) * rounds, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    paths = corpus()
    peer = run_peer("time-dicognito", str(args.rounds), paths=paths)
    ok = list(peer["ok"])  # type: ignore[call-overload]
    count, seconds = time_radpacs(ok, args.rounds)
    ours = count / seconds
    theirs = float(peer["instances"]) / float(peer["seconds"])  # type: ignore[arg-type]
    print(f"files: {len(ok)} of {len(paths)} (those dicognito handles), rounds: {args.rounds}")
    print(f"radpacs   {ours:8.1f} instances/s")
    print(f"dicognito {theirs:8.1f} instances/s")
    print(f"ratio radpacs/dicognito: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
