"""What radpacs, dicognito and deid leave behind on the same files (docs/deid.md table).

    .venv/bin/python bench/deid_compare.py

Each tool de-identifies every file of the corpus (pydicom's test files that pydicom reads
as instances, and the rt-workshop files) with its default settings: radpacs with the
Basic Profile, dicognito's ``Anonymizer``, deid's default recipe with private tags
removed. The outputs are read back and checked for original instance UIDs and original
values of the attributes that PS3.15 Table E.1-1 does not keep, anywhere in the dataset;
for private attributes; for Patient Identity Removed; and for the RTSTRUCT -> RTDOSE
frame of reference link of the rt-workshop files. Prints a Markdown table.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pydicom

from peers import BENCH, RT_WORKSHOP, corpus, everything, identifying, run_peer
from radpacs.deid import Anonymizer
from radpacs.deid.files import anonymize_bytes

OUT = BENCH / "out" / "compare"


def radpacs_outputs(paths: list[str]) -> dict[str, str]:
    target = OUT / "radpacs"
    target.mkdir(parents=True, exist_ok=True)
    anonymizer = Anonymizer(b"compare-secret-0123456789")
    written = {}
    for index, path in enumerate(paths):
        try:
            data = anonymize_bytes(anonymizer, Path(path).read_bytes(), pixels_checked=True)
        except Exception:
            continue
        out = target / f"{index:04d}.dcm"
        out.write_bytes(data)
        written[path] = str(out)
    return written


def _read(path: str) -> pydicom.Dataset:
    return pydicom.dcmread(path, force=True)


def rt_link(written: dict[str, str]) -> str:
    dose_in = str(RT_WORKSHOP / "rtdose.dcm")
    struct_in = str(RT_WORKSHOP / "rtstruct-sphere.dcm")
    if dose_in not in written or struct_in not in written:
        return "n/a"
    dose, struct = _read(written[dose_in]), _read(written[struct_in])
    frames = struct.get("ReferencedFrameOfReferenceSequence") or []
    frame = frames[0].get("FrameOfReferenceUID") if frames else None
    if frame is None:
        return "broken: Frame of Reference UID removed"
    changed = frame != _read(struct_in).ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    same = frame == dose.FrameOfReferenceUID
    return (
        "kept, UIDs replaced"
        if same and changed
        else ("kept, UIDs unchanged" if same else "broken")
    )


def measure(paths: list[str], written: dict[str, str]) -> dict[str, object]:
    uid_files = value_files = text_files = private_files = marked = 0
    uids_left = values_left = texts_left = 0
    examples: set[str] = set()
    for path, out in written.items():
        original, result = _read(path), _read(out)
        uids, values, texts = identifying(original)
        present = everything(result)
        left_uids, left_values, left_texts = uids & present, values & present, texts & present
        text_files += bool(left_texts)
        texts_left += len(left_texts)
        uid_files += bool(left_uids)
        value_files += bool(left_values)
        uids_left += len(left_uids)
        values_left += len(left_values)
        examples.update(sorted(left_texts)[:2])
        private_files += any(e.tag.is_private for e in result.iterall())
        marked += result.get("PatientIdentityRemoved") == "YES"
    return {
        "handled": f"{len(written)} / {len(paths)}",
        "files with an original instance UID": f"{uid_files} ({uids_left} UIDs)",
        "files with an identifying value (any VR)": f"{value_files} ({values_left} values)",
        "... of which names, IDs, texts, dates": f"{text_files} ({texts_left} values)",
        "files with private attributes": private_files,
        "Patient Identity Removed = YES": marked,
        "RTSTRUCT -> RTDOSE frame of reference": rt_link(written),
        "examples": ", ".join(sorted(examples)[:6]),
    }


def main() -> None:
    warnings.simplefilter("ignore")
    shutil.rmtree(OUT, ignore_errors=True)
    paths = corpus()
    results = {"radpacs": measure(paths, radpacs_outputs(paths))}
    for tool in ("dicognito", "deid"):
        peer = run_peer("anonymize", tool, str(OUT / tool), paths=paths)
        results[tool] = measure(paths, dict(peer["written"]))  # type: ignore[call-overload]
    rows = list(results["radpacs"])
    print("| | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for row in rows:
        print(f"| {row} | " + " | ".join(str(results[t][row]) for t in results) + " |")


if __name__ == "__main__":
    main()
