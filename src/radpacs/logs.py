"""Logging for ``radpacs serve``: the console as uvicorn does it, plus a file rotated by size.

``<data_dir>/logs/radpacs.log`` rolls over at ``log_max_bytes`` and keeps
``log_backups`` old files (``radpacs.log.1`` ...). It receives uvicorn's error and access
logs, radpacs' own loggers and the ``radpacs.audit`` lines (one per audited request).
Every handler redacts tokens (:class:`RedactTokens`): ``?token=`` (however its name is
percent-encoded), ``Bearer`` credentials and JWTs never reach a log.
With several workers each process writes its own file, ``radpacs-<pid>.log``, because
rotating one file from several processes loses lines.
"""

from __future__ import annotations

import logging.handlers
import os
from pathlib import Path
from typing import Any

from radpacs.auth.credentials import redact_tokens
from radpacs.settings import Settings

__all__ = ["RedactTokens", "log_file", "logging_config", "rotating_handler"]


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


def log_file(settings: Settings, per_process: bool = False) -> Path:
    """Where the rotating log file goes; ``{pid}`` is filled in by each process."""
    name = "radpacs-{pid}.log" if per_process else "radpacs.log"
    return settings.data_dir / "logs" / name


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
    """A ``logging.config.dictConfig`` dictionary, for ``uvicorn.run(log_config=...)``."""
    path = log_file(settings, per_process)
    path.parent.mkdir(parents=True, exist_ok=True)
    level = settings.log_level.upper()
    rotating = {
        "()": "radpacs.logs.rotating_handler",
        "filename": str(path),
        "maxBytes": settings.log_max_bytes,
        "backupCount": settings.log_backups,
        "formatter": "file",
        "filters": ["redact"],
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
        "filters": {"redact": {"()": "radpacs.logs.RedactTokens"}},
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
            "file": rotating,
        },
        "loggers": {
            "uvicorn": {"handlers": ["console", "file"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {
                "handlers": ["access_console", "file"],
                "level": level,
                "propagate": False,
            },
            "radpacs": {"handlers": ["console", "file"], "level": level, "propagate": False},
            "radpacs.audit": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }
