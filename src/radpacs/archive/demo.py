"""Demo data: the workshop dataset (one RTDOSE and three RTSTRUCTs, stored and named), and
:func:`sample_ct`, one CT slice every install has (pydicom ships it).

The files live outside the repository, in ``../shared/data/rt-workshop`` beside the
checkout (:func:`default_demo_dir`), or in a folder given on the command line. Each file
is named after its stem: ``rtdose.dcm`` -> ``dose``, ``rtstruct-sphere.dcm`` -> ``sphere``.
Loading twice is harmless: the archive stores each instance once.
"""

from __future__ import annotations

from pathlib import Path

import pydicom

from radpacs.archive.archive import Archive, Outcome
from radpacs.archive.names import DatasetNames, NamedInstance
from radpacs.errors import ConfigurationError, InvalidInput

__all__ = ["SAMPLE_CT_NAME", "dataset_name", "default_demo_dir", "load_demo", "sample_ct"]

SAMPLE_CT_NAME = "CT_small.dcm"


def sample_ct() -> Path:
    """pydicom's ``CT_small.dcm`` (128x128 CT, Patient Name ``CompressedSamples^CT1``), read
    from pydicom's own folder; ConfigurationError if this pydicom build lacks it."""
    path = Path(pydicom.__file__).parent / "data" / "test_files" / SAMPLE_CT_NAME
    if not path.is_file():
        raise ConfigurationError(f"pydicom's sample {SAMPLE_CT_NAME} is not installed ({path})")
    return path


def default_demo_dir() -> Path | None:
    """``shared/data/rt-workshop`` beside the repository (``../shared``) or beside a folder
    above it (a worktree in ``wt/NAME``), when that folder exists."""
    repository = Path(__file__).resolve().parents[3]
    for folder in repository.parents:
        candidate = folder / "shared" / "data" / "rt-workshop"
        if candidate.is_dir():
            return candidate
    return None


def dataset_name(path: Path) -> str:
    """The name a demo file gets: its stem without the ``rt``/``rtstruct-`` prefix."""
    stem = path.stem.lower()
    for prefix in ("rtstruct-", "rtstruct_", "rt"):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix) :]
    return stem


def load_demo(archive: Archive, names: DatasetNames, folder: Path) -> list[NamedInstance]:
    """Store every ``*.dcm`` of ``folder`` and name it; InvalidInput if one cannot be stored."""
    files = sorted(folder.glob("*.dcm"))
    if not files:
        raise InvalidInput(f"no .dcm files in {folder}")
    results = archive.store_many([path.read_bytes() for path in files])
    named: list[NamedInstance] = []
    for path, result in zip(files, results, strict=True):
        if result.outcome is Outcome.FAILED:
            raise InvalidInput(f"{path.name} could not be stored: {result.message}")
        name = dataset_name(path)
        names.set(name, result.study_uid, result.series_uid, result.sop_instance_uid)
        named.append(
            NamedInstance(name, result.study_uid, result.series_uid, result.sop_instance_uid)
        )
    return named
