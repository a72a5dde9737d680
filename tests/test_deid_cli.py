"""``radpacs anonymize IN OUT`` on a file, a folder and a zip, through typer's CliRunner."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pydicom
import pytest
import typer
from typer.testing import CliRunner

from _deid_support import RT_WORKSHOP
from radpacs.cli.deid import register


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """radpacs (test)"""

    register(app)
    return app


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    source = tmp_path / "in"
    (source / "plan" / "deep").mkdir(parents=True)
    shutil.copy(RT_WORKSHOP / "rtdose.dcm", source / "rtdose.dcm")
    shutil.copy(RT_WORKSHOP / "rtstruct-sphere.dcm", source / "plan" / "deep" / "struct.dcm")
    (source / "README.txt").write_text("not DICOM")
    return source


def _run(cli: typer.Typer, tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["anonymize", *args, "--data-dir", str(tmp_path / "data")])
    return result.exit_code, result.output


def test_folder_keeps_its_layout_and_links(cli: typer.Typer, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = _run(cli, tmp_path, str(folder), str(out))
    assert code == 0, output
    assert "anonymized 2, not DICOM 1, refused 0" in output
    dose = pydicom.dcmread(out / "rtdose.dcm")
    struct = pydicom.dcmread(out / "plan" / "deep" / "struct.dcm")
    assert not (out / "README.txt").exists()
    assert dose.PatientIdentityRemoved == "YES"
    assert (
        struct.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == dose.FrameOfReferenceUID
    )
    assert dose.StudyInstanceUID == struct.StudyInstanceUID
    assert dose.StudyInstanceUID != pydicom.dcmread(folder / "rtdose.dcm").StudyInstanceUID


def test_zip_in_zip_out(cli: typer.Typer, folder: Path, tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.rglob("*"):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    out = tmp_path / "clean.zip"
    code, output = _run(cli, tmp_path, str(archive), str(out), "--option", "retain_uids")
    assert code == 0, output
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["plan/deep/struct.dcm", "rtdose.dcm"]


def test_single_file_and_burned_in_refusal(cli: typer.Typer, folder: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(folder / "rtdose.dcm")
    ds.BurnedInAnnotation = "YES"
    burned = tmp_path / "burned.dcm"
    ds.save_as(burned)
    code, output = _run(cli, tmp_path, str(burned), str(tmp_path / "x.dcm"))
    assert code == 1 and "refused 1" in output
    assert not (tmp_path / "x.dcm").exists()
    code, output = _run(cli, tmp_path, str(burned), str(tmp_path / "x.dcm"), "--pixels-checked")
    assert code == 0, output
    assert pydicom.dcmread(tmp_path / "x.dcm").PatientIdentityRemoved == "YES"


def test_conflicting_options_are_refused(cli: typer.Typer, folder: Path, tmp_path: Path) -> None:
    code, _ = _run(
        cli,
        tmp_path,
        str(folder),
        str(tmp_path / "out"),
        "-o",
        "retain_longitudinal_full_dates",
        "-o",
        "retain_longitudinal_modified_dates",
    )
    assert code != 0
