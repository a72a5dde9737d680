"""The ``dvh`` command that the main CLI adds with radpacs.cli.dvh.register_local."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from _deid_support import RT_WORKSHOP as WORKSHOP  # the worktree's shared/, or /work/shared
from radpacs.cli.dvh import register_local as register


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("version")  # a second command, so that "dvh" is a named subcommand
    def version() -> None:
        typer.echo("0")

    return app


def test_table_of_statistics(app: typer.Typer) -> None:
    result = CliRunner().invoke(
        app,
        [
            "dvh",
            str(WORKSHOP / "rtstruct-cone.dcm"),
            str(WORKSHOP / "rtdose.dcm"),
            "--prescription",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    header, row = result.stdout.strip().splitlines()
    assert header.split()[:4] == ["ROI", "volume", "[cm3]", "min"]
    assert "D0.03cc [Gy]" in header and "V95% [cm3]" in header
    cells = row.split()
    assert cells[0] == "Cone_02_0"
    assert float(cells[1]) == pytest.approx(3.66435, rel=0.01)


def test_json_and_plot(app: typer.Typer, tmp_path: Path) -> None:
    plot = tmp_path / "dvh.svg"
    result = CliRunner().invoke(
        app,
        [
            "dvh",
            str(WORKSHOP / "rtstruct-sphere.dcm"),
            str(WORKSHOP / "rtdose.dcm"),
            "--roi",
            "2",
            "--json",
            "--plot",
            str(plot),
        ],
    )
    assert result.exit_code == 0, result.output
    [dvh] = json.loads(result.stdout)
    assert dvh["name"] == "Sphere_02_0" and dvh["type"] == "cumulative"
    assert dvh["statistics"]["D95"]["value"] == pytest.approx(7.245, rel=0.01)
    assert plot.read_bytes().startswith(b"<?xml") and b"Sphere_02_0" in plot.read_bytes()


def test_bad_input_exits_with_the_message(app: typer.Typer) -> None:
    result = CliRunner().invoke(
        app, ["dvh", str(WORKSHOP / "rtdose.dcm"), str(WORKSHOP / "rtdose.dcm")]
    )
    assert result.exit_code == 2
    assert "error: the structure file is not an RTSTRUCT" in result.stderr
