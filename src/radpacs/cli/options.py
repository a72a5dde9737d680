"""Options that several commands take, declared once.

Server-side commands (serve, check, worker, user, load-demo) take :data:`DataDir` and
:data:`DatabaseUrl`; client commands take :data:`UrlOption`, :data:`TokenOption` and
:data:`JsonOption`. Every server-side option also comes from ``RADPACS_*`` environment
variables or settings.yml; an option given on the command line wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["DataDir", "DatabaseUrl", "JsonOption", "TokenOption", "UrlOption"]

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Folder for the index and the files.")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(help="SQLAlchemy URL of the index (default: SQLite in the data dir)."),
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Server root URL [env RADPACS_URL, else the config file]."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="Bearer token [env RADPACS_TOKEN, else the config file]."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (the default when stdout is not a terminal).")
]
