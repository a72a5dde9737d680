"""Logging for ``radpacs serve``: the console as uvicorn does it, plus files rotated by size.

In the log folder (``log_dir``, default ``<data_dir>/logs``) ``radpacs.log`` receives
uvicorn's error and access logs, radpacs' own loggers and the ``radpacs.audit`` lines (one
per audited request); ``dicomweb.log`` and ``api.log`` receive the request lines of each
service (``/dicom-web`` and ``/api``, :class:`ServiceFilter`), as Sphere DicomWeb logs per
service (seed 001). Each rolls over at ``log_max_bytes`` (10 MB) and keeps ``log_backups``
(20) old files. ``log_config`` names a YAML file in the ``logging.config.dictConfig`` shape
that replaces this configuration; its relative ``filename`` values are placed in the log
folder. Every handler redacts tokens (:class:`RedactTokens`), in a file of the user's too:
``?token=`` (however its name is percent-encoded), ``Bearer`` credentials and JWTs never
reach a log. With several workers each process writes its own files (``radpacs-<pid>.log``),
because rotating one file from several processes loses lines.
"""

from __future__ import annotations

import logging.handlers
import os
from pathlib import Path
from typing import Any

import yaml

from radpacs.auth.credentials import redact_tokens
from radpacs.settings import Settings

__all__ = [
    "RedactTokens",
    "ServiceFilter",
    "log_file",
    "logging_config",
    "rotating_handler",
    "user_logging_config",
]


class RedactTokens(logging.Filter):
    """Replace tokens in a record's message and arguments (``?token=`` however encoded,
    ``Bearer`` credentials, JWTs) with ``[redacted]``: no log line holds a live credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_tokens(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        elif isinstance(record.args, dict):
            record.args = {
                key: redact_tokens(value) if isinstance(value, str) else value
                for key, value in record.args.items()
            }
        return True


class ServiceFilter(logging.Filter):
    """Pass the request lines (uvicorn access records) of one service, by path prefix:
    ``ServiceFilter("/dicom-web")``; usable in a dictConfig file as
    ``{"()": "radpacs.logs.ServiceFilter", "prefix": "/dicom-web"}``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix.rstrip("/")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, str) and arg.startswith("/"):
                path = arg.split("?", 1)[0]
                return path == self.prefix or path.startswith(self.prefix + "/")
        return False


def log_file(settings: Settings, per_process: bool = False, name: str = "radpacs") -> Path:
    """Where a rotating log file goes; ``{pid}`` is filled in by each process."""
    stem = f"{name}-{{pid}}" if per_process else name
    return settings.resolved_log_dir / f"{stem}.log"


def user_logging_config(settings: Settings, path: Path) -> dict[str, Any]:
    """The dictConfig of a YAML file; relative ``filename`` values go into the log folder,
    whose folders are made, and every handler also redacts tokens. ValueError names what is
    wrong with the file."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"log_config {path} cannot be read: {exc}") from exc
    if not isinstance(config, dict) or config.get("version") != 1:
        raise ValueError(
            f"log_config {path} is not a logging.config.dictConfig mapping (version: 1)"
        )
    config.setdefault("disable_existing_loggers", False)
    config.setdefault("filters", {})["radpacs_redact"] = {"()": "radpacs.logs.RedactTokens"}
    for name, handler in (config.get("handlers") or {}).items():
        if not isinstance(handler, dict):
            raise ValueError(f"log_config {path}: handler {name} is not a mapping")
        handler["filters"] = [*handler.get("filters", []), "radpacs_redact"]
        if "filename" in handler:
            target = Path(str(handler["filename"]))
            if not target.is_absolute():
                target = settings.resolved_log_dir / target
            target.parent.mkdir(parents=True, exist_ok=True)
            handler["filename"] = str(target)
    return config


def rotating_handler(
    filename: str,
    maxBytes: int,
    backupCount: int,
) -> logging.handlers.RotatingFileHandler:
    """A size-rotated file handler; ``{pid}`` in ``filename`` becomes this process's id."""
    return logging.handlers.RotatingFileHandler(
        filename.replace("{pid}", str(os.getpid())),
        maxBytes=maxBytes,
        backupCount=backupCount,
        encoding="utf-8",
    )


def logging_config(settings: Settings, per_process: bool = False) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary, for ``uvicorn.run(log_config=...)``: the
    ``log_config`` file's when one is set, else radpacs's (see the module docstring)."""
    if settings.log_config is not None:
        return user_logging_config(settings, settings.log_config)
    path = log_file(settings, per_process)
    path.parent.mkdir(parents=True, exist_ok=True)
    level = settings.log_level.upper()

    def rotating(name: str, *filters: str) -> dict[str, Any]:
        return {
            "()": "radpacs.logs.rotating_handler",
            "filename": str(log_file(settings, per_process, name)),
            "maxBytes": settings.log_max_bytes,
            "backupCount": settings.log_backups,
            "formatter": "file",
            "filters": ["redact", *filters],
        }

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            },
            "file": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        },
        "filters": {
            "redact": {"()": "radpacs.logs.RedactTokens"},
            "dicomweb": {"()": "radpacs.logs.ServiceFilter", "prefix": "/dicom-web"},
            "api": {"()": "radpacs.logs.ServiceFilter", "prefix": "/api"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
                "filters": ["redact"],
            },
            "access_console": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "stream": "ext://sys.stdout",
                "filters": ["redact"],
            },
            "file": rotating("radpacs"),
            "dicomweb_file": rotating("dicomweb", "dicomweb"),
            "api_file": rotating("api", "api"),
        },
        "loggers": {
            "uvicorn": {"handlers": ["console", "file"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {
                "handlers": ["access_console", "file", "dicomweb_file", "api_file"],
                "level": level,
                "propagate": False,
            },
            "radpacs": {"handlers": ["console", "file"], "level": level, "propagate": False},
            "radpacs.audit": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }
