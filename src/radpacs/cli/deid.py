"""``radpacs anonymize IN OUT``: de-identify a DICOM file, a folder or a .zip (PS3.15 Annex E).

A folder is walked recursively and a zip read member by member; the output keeps the
input's layout (same relative names, a zip for a zip). Files that are not DICOM are left
out and counted. Instances with Burned In Annotation YES are refused (and counted)
unless ``--pixels-checked`` is given. The exit code is 1 when any DICOM file was refused
or failed, else 0. Note that the layout is kept as it is: folder and file names that
identify the patient must be renamed by the caller.

The main CLI calls :func:`register` to add the command.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from radpacs.cli.options import DataDir
from radpacs.deid import Anonymizer, Option
from radpacs.deid.files import anonymize_bytes
from radpacs.deid.secret import installation_secret
from radpacs.errors import InvalidInput
from radpacs.settings import load_settings

__all__ = ["register"]


class _Tally:
    def __init__(self) -> None:
        self.done = 0
        self.skipped = 0
        self.refused: list[str] = []

    def run(
        self, anonymizer: Anonymizer, data: bytes, name: str, pixels_checked: bool
    ) -> bytes | None:
        if not _looks_like_dicom(data):
            self.skipped += 1
            return None
        try:
            result = anonymize_bytes(anonymizer, data, pixels_checked=pixels_checked, name=name)
        except InvalidInput as exc:
            self.refused.append(f"{name}: {exc}")
            return None
        self.done += 1
        return result


def _looks_like_dicom(data: bytes) -> bool:
    """A Part 10 file ('DICM' at 128), or a bare dataset starting with group 0008 or 0002."""
    if data[128:132] == b"DICM":
        return True
    return len(data) > 8 and data[:2] in (b"\x08\x00", b"\x02\x00")


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path


def anonymize_command(
    input_path: Annotated[
        Path, typer.Argument(metavar="IN", exists=True, help="a DICOM file, folder or .zip")
    ],
    output_path: Annotated[
        Path, typer.Argument(metavar="OUT", help="where to write the same layout")
    ],
    option: Annotated[
        list[Option] | None,
        typer.Option("--option", "-o", help="a PS3.15 E.3 Option; repeat for several"),
    ] = None,
    pixels_checked: Annotated[
        bool, typer.Option(help="the pixels of Burned In Annotation YES instances were checked")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """De-identify IN into OUT by the Basic Application Level Confidentiality Profile."""
    settings = load_settings(data_dir=data_dir)
    secret = installation_secret(settings.deid_secret, settings.data_dir)
    try:
        anonymizer = Anonymizer(secret, option or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    tally = _Tally()
    if input_path.is_dir():
        for path in _files(input_path):
            relative = path.relative_to(input_path)
            result = tally.run(anonymizer, path.read_bytes(), str(relative), pixels_checked)
            if result is not None:
                target = output_path / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(result)
    elif zipfile.is_zipfile(input_path):
        output_path.parent.mkdir(parents=True, exist_ok=True)
        with (
            zipfile.ZipFile(input_path) as source,
            zipfile.ZipFile(output_path, "w", zipfile.ZIP_DEFLATED) as sink,
        ):
            for member in source.infolist():
                if member.is_dir():
                    continue
                result = tally.run(anonymizer, source.read(member), member.filename, pixels_checked)
                if result is not None:
                    sink.writestr(member.filename, result)
    else:
        target = output_path / input_path.name if output_path.is_dir() else output_path
        result = tally.run(anonymizer, input_path.read_bytes(), input_path.name, pixels_checked)
        if result is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(result)
    for line in tally.refused:
        typer.echo(f"refused {line}", err=True)
    typer.echo(f"anonymized {tally.done}, not DICOM {tally.skipped}, refused {len(tally.refused)}")
    if tally.refused:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add the ``anonymize`` command to the radpacs command line."""
    app.command("anonymize")(anonymize_command)
