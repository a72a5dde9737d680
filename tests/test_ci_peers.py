"""The CI hook of tests/_ci_peers.py: a missing required peer fails in CI, skips elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

SAMPLE = """
import pytest

def test_redis_missing():
    pytest.skip("Redis is not running on 127.0.0.1:6379")

def test_browser_missing():
    pytest.importorskip("playwright_that_is_not_installed")

@pytest.mark.peer
def test_marked_peer():
    pytest.skip("the peer program is not installed")

def test_unrelated_skip():
    pytest.skip("nothing to do on this platform")
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rfs",
        "-p",
        "_ci_peers",
        "-p",
        "no:cacheprovider",
    ]
    return subprocess.run(
        [*command, "-o", "markers=peer", str(tmp_path / "test_sample.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_a_skip_for_a_required_peer_fails(tmp_path: Path, ci: str) -> None:
    run = _run(tmp_path, ci)
    assert run.returncode == 1, run.stdout
    assert "3 failed, 1 skipped" in run.stdout
    assert run.stdout.count("CI requires this peer, but the test was skipped") >= 3
    assert "Redis is not running" in run.stdout
    assert "playwright_that_is_not_installed" in run.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_it_skips(tmp_path: Path, ci: str | None) -> None:
    run = _run(tmp_path, ci)
    assert run.returncode == 0, run.stdout
    assert "4 skipped" in run.stdout
