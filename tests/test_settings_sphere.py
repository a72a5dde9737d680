"""Sphere DicomWeb's settings.yml (seed 001) read by radpacs with the meaning it had there:
``api.ip``/``api.port``/``api.allowed_hosts``, ``api.start`` (the REST API) and
``api.dicomweb.start`` (DICOMweb), ``api.dicomweb.jwt_validate``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from conftest import LiveServer
from radpacs.settings import load_settings, read_settings_file

#: The seed's file, its "==>" notes written as YAML comments.
SEED_SETTINGS = """\
api:
    start: False  # ==> Activer les APIs
    ip: 127.0.0.1 # ==> l'ip de l'Api
    port: 5555    # ==> Le port
    allowed_hosts: # ==> Les hôtes autorisés (liste)
        - '*'     # ==> Tous les hôtes
        - 127.0.0.1  # ==> Une IP spécifique
    dicomweb:
        start: False  # ==> Activer l'Api DicomWeb
        jwt_validate: False  # ==> Utiliser la validation jwt (True ou False)
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_seed_file_means_what_it_meant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, SEED_SETTINGS)
    assert read_settings_file(path) == {
        "api_enabled": False,
        "host": "127.0.0.1",
        "port": 5555,
        "allowed_hosts": ["*", "127.0.0.1"],
        "dicomweb_enabled": False,
        "jwt_validate": False,
    }
    monkeypatch.setenv("RADPACS_CONFIG", str(path))
    settings = load_settings(data_dir=tmp_path / "data")
    assert (settings.host, settings.port) == ("127.0.0.1", 5555)
    assert not settings.api_enabled and not settings.dicomweb_enabled
    monkeypatch.setenv("RADPACS_PORT", "6000")  # the environment still wins over the file
    assert load_settings().port == 6000


def test_both_layouts_mix_and_mistakes_are_named(tmp_path: Path) -> None:
    mixed = _write(tmp_path, "data_dir: /srv/x\napi:\n  port: 7000\n  dicomweb:\n    start: true\n")
    assert read_settings_file(mixed) == {
        "data_dir": "/srv/x",
        "port": 7000,
        "dicomweb_enabled": True,
    }
    for text, message in (
        ("api:\n  colour: blue\n", "unknown key api.colour"),
        ("api:\n  dicomweb:\n    stop: true\n", "unknown key api.dicomweb.stop"),
        ("port: 1\napi:\n  port: 2\n", "api.port and port set the same setting"),
        ("api: [1, 2]\n", "api must be a mapping"),
        ("- a\n- b\n", "must hold a mapping of settings"),
    ):
        with pytest.raises(ValueError, match=message):
            read_settings_file(_write(tmp_path, text))


def test_a_server_started_with_the_seed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start: False turns the REST API and DICOMweb off (health and login stay); True on."""
    monkeypatch.setenv("RADPACS_CONFIG", str(_write(tmp_path, SEED_SETTINGS)))
    server = LiveServer(tmp_path / "off").start()  # --port beats the file's 5555
    try:
        assert httpx.get(f"{server.url}/api/health").status_code == 200
        assert httpx.get(f"{server.url}/dicom-web/studies").status_code == 404
        assert httpx.post(f"{server.url}/api/dvh/plot", json={"dvhs": []}).status_code == 404
        assert httpx.get(f"{server.url}/api/auth/me").status_code != 404  # login stays
    finally:
        server.stop()
    switched_on = SEED_SETTINGS.replace("start: False", "start: True")
    monkeypatch.setenv("RADPACS_CONFIG", str(_write(tmp_path, switched_on)))
    server = LiveServer(tmp_path / "on").start()
    try:
        assert httpx.get(f"{server.url}/dicom-web/studies").status_code in (200, 204)
        assert httpx.post(f"{server.url}/api/dvh/plot", json={"dvhs": []}).status_code == 400
    finally:
        server.stop()
