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
    "client",
    "emit_json",
    "err",
    "format_number",
    "interactive",
    "out",
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


@contextmanager
def request_errors() -> Iterator[None]:
    """Turn a failed request into a one-line message on stderr and exit code 2."""
    from radpacs.errors import RadpacsError

    try:
        yield
    except RadpacsError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
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
    """A table whose cells fold rather than cut: UIDs are shown whole."""
    shown = Table(title=title)
    for column in columns:
        shown.add_column(column, overflow="fold")
    return shown


def text(value: Any) -> str:
    if isinstance(value, list):
        return "\\".join(str(item) for item in value)
    return "" if value is None else str(value)


def format_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return text(value)
