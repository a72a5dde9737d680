"""What the client commands share: terminal or pipe, JSON or tables, progress, errors.

On a terminal the commands show progress bars and tables. When stdout is not a terminal (a
pipe, a file, a script) they show no progress and print JSON on stdout; ``--json`` asks for
JSON on a terminal too. Messages and errors go to stderr (:data:`err`); a failed request is
one line there and exit code 2. Commands call these through the module (``console.out()``)
so that a test can replace :func:`interactive`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from radpacs.client import RadpacsClient

__all__ = [
    "LOGIN_HINT",
    "client",
    "describe",
    "emit_json",
    "err",
    "format_number",
    "interactive",
    "out",
    "print_table",
    "progress",
    "request_errors",
    "table",
    "text",
]

err = Console(stderr=True, soft_wrap=True)


def interactive() -> bool:
    return sys.stdout.isatty()


def out() -> Console:
    return Console()


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2 if interactive() else None, default=str))


def client(url: str | None, token: str | None, **options: Any) -> RadpacsClient:
    from radpacs.client import RadpacsClient

    return RadpacsClient.from_config(url, token, **options)


LOGIN_HINT = (
    "not logged in, or the token expired or was revoked: run `radpacs login` "
    "(or give --token / RADPACS_TOKEN)"
)


def describe(exc: Exception) -> str:
    """A failed request in words: the server's ``detail`` rather than its JSON body."""
    from radpacs.errors import RadpacsRequestError

    if not isinstance(exc, RadpacsRequestError):
        return str(exc)
    detail = exc.text.strip()
    try:
        body = json.loads(detail)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        detail = body["detail"]
    status = f"HTTP {exc.status_code}" if exc.status_code is not None else "no response"
    return f"{exc.method} {exc.path}: {status}: {detail or '(empty body)'}"


@contextmanager
def request_errors() -> Iterator[None]:
    """Turn a failed request into a message on stderr and exit code 2; a 401 says to run
    ``radpacs login``."""
    from radpacs.errors import RadpacsError, RadpacsRequestError

    try:
        yield
    except RadpacsError as exc:
        err.print(f"[red]error:[/red] {describe(exc)}", markup=True, highlight=False)
        if isinstance(exc, RadpacsRequestError) and exc.status_code == 401:
            err.print(LOGIN_HINT, highlight=False)
        raise typer.Exit(code=2) from exc


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when on a terminal; else a silent counter."""
    if not (interactive() and err.is_terminal):
        yield lambda step: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda step: bar.advance(task, step)


def table(*columns: str, title: str | None = None) -> Table:
    """A table whose UID columns never wrap (a UID is copied whole, from one line) and whose
    other cells fold; print it with :func:`print_table`."""
    shown = Table(title=title)
    for column in columns:
        whole = "UID" in column
        shown.add_column(column, no_wrap=whole, overflow="ignore" if whole else "fold")
    return shown


_FOLDED_COLUMN_WIDTH = 10  # what a folding column keeps when the UIDs need the room


def print_table(shown: Table) -> None:
    """Print on stdout as wide as the terminal, or wider when the UID columns need it (the
    terminal then wraps the line, but no UID is cut by a line break)."""
    console = out()
    needed = 1
    for column in shown.columns:
        if column.no_wrap:
            lengths = [len(str(cell)) for cell in column.cells] + [len(str(column.header))]
            needed += max(lengths) + 3
        else:
            needed += _FOLDED_COLUMN_WIDTH + 3
    if needed > console.width:
        console = Console(width=needed)
    console.print(shown)


def text(value: Any) -> str:
    if isinstance(value, list):
        return "\\".join(str(item) for item in value)
    return "" if value is None else str(value)


def format_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return text(value)
