"""Runs inside bench/.venv-peers (dicognito, deid): never imported by radpacs.

Usage: python _peer_runner.py time-dicognito ROUNDS   < paths.json  -> JSON on stdout
       python _peer_runner.py anonymize TOOL OUTDIR   < paths.json  -> JSON on stdout
Timing is measured inside this process: read from bytes, anonymize, write to bytes.
"""

from __future__ import annotations

import io
import json
import sys
import time
import warnings
from pathlib import Path

import pydicom

warnings.simplefilter("ignore")


def _dicognito(data: bytes, anonymizer: object) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    anonymizer.anonymize(ds)  # type: ignore[attr-defined]
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def time_dicognito(paths: list[str], rounds: int) -> dict[str, object]:
    from dicognito.anonymizer import Anonymizer

    blobs = {p: Path(p).read_bytes() for p in paths}
    ok = []
    for path, data in blobs.items():  # warm-up round, and the list of files it handles
        try:
            _dicognito(data, Anonymizer(seed="bench"))
            ok.append(path)
        except Exception:
            pass
    anonymizer = Anonymizer(seed="bench")
    start = time.perf_counter()
    for _ in range(rounds):
        for path in ok:
            _dicognito(blobs[path], anonymizer)
    seconds = time.perf_counter() - start
    return {"ok": ok, "instances": len(ok) * rounds, "seconds": seconds}


def anonymize(paths: list[str], tool: str, outdir: Path) -> dict[str, object]:
    outdir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    if tool == "dicognito":
        from dicognito.anonymizer import Anonymizer

        anonymizer = Anonymizer(seed="compare")
        for index, path in enumerate(paths):
            try:
                target = outdir / f"{index:04d}.dcm"
                target.write_bytes(_dicognito(Path(path).read_bytes(), anonymizer))
                written[path] = str(target)
            except Exception:
                pass
    elif tool == "deid":
        from deid.config import DeidRecipe
        from deid.dicom import replace_identifiers

        recipe = DeidRecipe()  # deid's default recipe (deid.dicom)
        for index, path in enumerate(paths):
            try:
                result = replace_identifiers(
                    dicom_files=[path], deid=recipe, save=False, remove_private=True
                )
                target = outdir / f"{index:04d}.dcm"
                result[0].save_as(target)
                written[path] = str(target)
            except Exception:
                pass
    else:
        raise SystemExit(f"unknown tool {tool}")
    return {"written": written}


def main() -> None:
    paths = json.load(sys.stdin)
    if sys.argv[1] == "time-dicognito":
        print(json.dumps(time_dicognito(paths, int(sys.argv[2]))))
    else:
        print(json.dumps(anonymize(paths, sys.argv[2], Path(sys.argv[3]))))


if __name__ == "__main__":
    main()
