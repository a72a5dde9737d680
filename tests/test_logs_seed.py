"""Logs per service, rotated 10 MB x 20 (seed 001), and a dictConfig YAML file of the user's
(the seed's logging_config.yml handler) with a log folder setting."""

from __future__ import annotations

import logging
import logging.config
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer
from radpacs.logs import logging_config
from radpacs.settings import load_settings

#: The seed's handler as printed, in a complete dictConfig file around it.
SEED_LOGGING = """\
version: 1
disable_existing_loggers: false
formatters:
    extended_color:
        format: "%(asctime)s %(levelname)s %(name)s %(message)s"
filters:
    dicomweb:
        (): radpacs.logs.ServiceFilter
        prefix: /dicom-web
handlers:
    api_dicomweb_handler: # api_dicomweb
        class: logging.handlers.RotatingFileHandler
        level: INFO
        formatter: extended_color
        filename: './log/api_dicomweb.log'
        maxBytes: 10485760 # 10MB
        backupCount: 20
        encoding: utf8
        filters: [dicomweb]
loggers:
    uvicorn.access:
        handlers: [api_dicomweb_handler]
        level: INFO
        propagate: false
"""


@pytest.fixture
def reset_logging() -> Iterator[None]:
    yield
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})


def _request_line(path: str) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200
    )


def _flush() -> None:
    for name in ("uvicorn.access", "radpacs"):
        for handler in logging.getLogger(name).handlers:
            handler.flush()


def test_one_log_per_service_rotated_10_mb_by_20(tmp_path: Path, reset_logging: None) -> None:
    settings = load_settings(data_dir=tmp_path / "data", log_dir=tmp_path / "logs")
    logging.config.dictConfig(logging_config(settings))
    _request_line("/dicom-web/studies?PatientID=1")
    _request_line("/api/health")
    _request_line("/")
    _flush()
    logs = tmp_path / "logs"
    dicomweb = (logs / "dicomweb.log").read_text()
    api = (logs / "api.log").read_text()
    everything = (logs / "radpacs.log").read_text()
    assert "/dicom-web/studies" in dicomweb and "/api/health" not in dicomweb
    assert "/api/health" in api and "/dicom-web" not in api
    assert all(path in everything for path in ("/dicom-web/studies", "/api/health", '"GET / '))
    files = [
        handler
        for handler in logging.getLogger("uvicorn.access").handlers
        if isinstance(handler, logging.handlers.RotatingFileHandler)
    ]
    assert len(files) == 3
    assert {(handler.maxBytes, handler.backupCount) for handler in files} == {(10485760, 20)}


def test_the_seed_logging_file_with_a_log_folder(tmp_path: Path, reset_logging: None) -> None:
    config = tmp_path / "logging_config.yml"
    config.write_text(SEED_LOGGING)
    settings = load_settings(
        data_dir=tmp_path / "data", log_dir=tmp_path / "var", log_config=config
    )
    logging.config.dictConfig(logging_config(settings))
    [handler] = logging.getLogger("uvicorn.access").handlers
    assert isinstance(handler, logging.handlers.RotatingFileHandler)
    assert (handler.maxBytes, handler.backupCount, handler.level) == (10485760, 20, logging.INFO)
    _request_line("/dicom-web/studies?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")
    _request_line("/api/health")
    handler.flush()
    text = (tmp_path / "var" / "log" / "api_dicomweb.log").read_text()
    assert "/dicom-web/studies?token=[redacted]" in text  # redacted in the user's file too
    assert "/api/health" not in text


def test_a_bad_logging_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "logging.yml"
    config.write_text("handlers: {}\n")
    settings = load_settings(data_dir=tmp_path / "data", log_config=config)
    with pytest.raises(ValueError, match=r"is not a logging\.config\.dictConfig mapping"):
        logging_config(settings)


def test_a_server_logs_with_the_seed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "logging_config.yml"
    config.write_text(SEED_LOGGING)
    monkeypatch.setenv("RADPACS_LOG_CONFIG", str(config))
    monkeypatch.setenv("RADPACS_LOG_DIR", str(tmp_path / "var"))
    server = LiveServer(tmp_path / "data").start()
    try:
        assert httpx.get(f"{server.url}/dicom-web/studies?PatientID=LOGGED").status_code in (
            200,
            204,
        )
    finally:
        server.stop()
    text = (tmp_path / "var" / "log" / "api_dicomweb.log").read_text()
    assert "/dicom-web/studies?PatientID=LOGGED" in text
    assert "/api/health" not in text  # the readiness probes are another service
