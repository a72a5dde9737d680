"""The client commands of ``radpacs``: login, upload, query, retrieve/download, delete,
status.

Each talks to a server through :class:`radpacs.client.RadpacsClient`. The server URL and the
token come from ``--url``/``--token``, else ``RADPACS_URL``/``RADPACS_TOKEN``, else the user
config file that ``radpacs login`` writes (see :mod:`radpacs.client.config`). Output rules
(terminal or pipe, JSON, exit codes) are in :mod:`radpacs.cli._console`. Exit codes: 0 done,
1 some inputs failed (upload) or the server is not healthy (status), 2 a request failed or
the usage is wrong.

The main CLI calls :func:`register` to add the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from radpacs.cli import _console as console
from radpacs.cli.options import JsonOption, TokenOption, UrlOption

if TYPE_CHECKING:
    from radpacs.client import RadpacsClient, SearchMatch

__all__ = ["register"]

Level = Literal["studies", "series", "instances"]

_COLUMNS: dict[str, list[str]] = {
    "studies": [
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "StudyDate",
        "ModalitiesInStudy",
        "StudyDescription",
        "NumberOfStudyRelatedInstances",
    ],
    "series": [
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "NumberOfSeriesRelatedInstances",
    ],
    "instances": ["SOPInstanceUID", "SOPClassUID", "InstanceNumber", "SeriesInstanceUID"],
}


def keyword_view(match: SearchMatch) -> dict[str, Any]:
    """A match as {keyword: value}: one value as itself, several as a list."""
    from radpacs.dicom.tags import keyword_of

    view: dict[str, Any] = {}
    for tag in match.dataset:
        keyword = keyword_of(int(tag, 16))
        values = match.values(tag)
        view[keyword] = values[0] if len(values) == 1 else values or None
    return view


def login(
    url: UrlOption = None,
    username: Annotated[
        str | None,
        typer.Option("--username", "-u", help="Account name (asked on a terminal)."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="Password [env RADPACS_PASSWORD; else read from stdin when it is not a "
            "terminal; else asked, hidden].",
            envvar="RADPACS_PASSWORD",
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Save this token instead of logging in.")
    ] = None,
) -> None:
    """Log in (POST /api/auth) and save the URL and token in the user config file (mode 0600).

    The URL is --url, else RADPACS_URL, else the one the last login saved, else
    http://127.0.0.1:8080. In a script: printf '%s\\n' "$PASSWORD" | radpacs login -u alice
    """
    from radpacs.client.config import resolve, write_config
    from radpacs.errors import RadpacsRequestError

    server = resolve(url).url
    if token is None:
        username = username or _ask("Username", "--username (-u)")
        if password is None and not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                console.err.print("error: standard input holds no password (one line expected)")
                raise typer.Exit(code=2)
        password = password or _ask("Password", "--password or RADPACS_PASSWORD", hide=True)
    with console.request_errors(), console.client(server, token) as client:
        if token is None:
            assert username is not None and password is not None
            try:
                token = client.login(username, password)
            except RadpacsRequestError as exc:
                if exc.status_code != 401:
                    raise
                console.err.print(
                    f"error: {server} refused the login: wrong user name or password "
                    f"({console.describe(exc)})",
                    highlight=False,
                )
                raise typer.Exit(code=2) from exc
        client.status()  # the server answers at that URL
        path = write_config(server, token)
    console.err.print(f"logged in to {server}; saved in {path}", highlight=False)


def _ask(prompt: str, option: str, hide: bool = False) -> str:
    """Ask on a terminal; off a terminal (a script), say which option to give and exit 2."""
    if not sys.stdin.isatty():
        console.err.print(f"error: {prompt.lower()} needed: give {option}", highlight=False)
        raise typer.Exit(code=2)
    answer: str = typer.prompt(prompt, hide_input=hide)
    return answer


def upload(
    paths: Annotated[
        list[Path], typer.Argument(exists=True, help="DICOM files, folders (recursive), .zip files")
    ],
    url: UrlOption = None,
    token: TokenOption = None,
    skip_existing: Annotated[
        bool,
        typer.Option(help="Ask the server which instances it has and send only the others."),
    ] = True,
    ignore_non_dicom: Annotated[
        bool,
        typer.Option(
            "--ignore-non-dicom",
            help="Files that are not DICOM (notes, DICOMDIR, images) do not count as failures.",
        ),
    ] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 4,
    batch_size: Annotated[int, typer.Option(min=1, help="Instances per STOW-RS request.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Store files, folders and zips (STOW-RS, in parallel batches).

    Exit 1 when anything was not stored (a failure, or a file that is not DICOM unless
    --ignore-non-dicom); each such file is listed with the reason.
    """
    from radpacs.client.sources import collect

    with console.request_errors():
        sources = collect(paths)
        with (
            console.client(
                url, token, concurrency=concurrency, batch_instances=batch_size
            ) as client,
            console.progress("uploading", len(sources)) as advance,
        ):
            summary = client.store(
                sources, skip_existing=skip_existing, progress=lambda done: advance(len(done))
            )
    counts = summary.counts()
    not_stored = summary.failed + ([] if ignore_non_dicom else summary.not_dicom)
    if as_json or not console.interactive():
        console.emit_json({"counts": counts, "items": summary.model_dump(mode="json")["items"]})
        for item in not_stored:
            console.err.print(f"not stored: {item.source}: {item.reason}", highlight=False)
    else:
        console.out().print(", ".join(f"{name} {count}" for name, count in counts.items()))
        if not_stored:
            table = console.table(
                "file", "SOP Instance UID", "reason", title=f"{len(not_stored)} not stored"
            )
            for item in not_stored:
                table.add_row(item.source, item.sop_instance_uid, item.reason)
            console.print_table(table)
    if not_stored:
        raise typer.Exit(code=1)


def query(
    level: Annotated[str, typer.Argument(help="studies, series or instances")] = "studies",
    filters: Annotated[
        list[str] | None, typer.Argument(help="KEY=VALUE matching keys (keyword or tag)")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Search within this study.")] = None,
    series: Annotated[str | None, typer.Option(help="Search within this series.")] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", "-i", help="An extra attribute to return.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many matches.")] = None,
    fuzzy: Annotated[bool, typer.Option(help="Fuzzy matching of person names.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search studies, series or instances (QIDO-RS, every page); a table or JSON."""
    if level not in _COLUMNS:
        raise typer.BadParameter(f"{level!r}: choose studies, series or instances")
    pairs = []
    for item in filters or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE")
        pairs.append((name, value))
    with console.request_errors(), console.client(url, token) as client:
        matches = client.search(
            level,
            pairs,
            study=study,
            series=series,
            include=include or [],
            fuzzy=fuzzy,
            limit=limit,
        )
    if as_json or not console.interactive():
        console.emit_json([keyword_view(match) for match in matches])
        return
    columns = _COLUMNS[level] + [name for name in include or [] if name not in _COLUMNS[level]]
    table = console.table(*columns, title=f"{len(matches)} {level}")
    for match in matches:
        table.add_row(*(console.text(match.values(column) or None) for column in columns))
    console.print_table(table)


def _expected_instances(client: RadpacsClient, study: str, series: str | None) -> int | None:
    if series:
        found = client.search("series", {"SeriesInstanceUID": series}, study=study, limit=1)
        keyword = "NumberOfSeriesRelatedInstances"
    else:
        found = client.search("studies", {"StudyInstanceUID": study}, limit=1)
        keyword = "NumberOfStudyRelatedInstances"
    if not found:
        return None
    value = found[0].get(keyword)
    return int(value) if value is not None else None


def retrieve(
    study: Annotated[str, typer.Argument(help="Study Instance UID")],
    series: Annotated[str | None, typer.Option(help="Only this series.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")] = Path("."),
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a study or series (WADO-RS) to OUT/<study>/<series>/<sop>.dcm."""
    with console.request_errors(), console.client(url, token) as client:
        total = _expected_instances(client, study, series)
        with console.progress("downloading", total) as advance:
            files = client.retrieve(study, out, series, progress=lambda path: advance(1))
    if as_json or not console.interactive():
        console.emit_json({"files": [str(path) for path in files]})
    else:
        console.out().print(f"{len(files)} instances written under {out}", highlight=False)


def delete(
    study: Annotated[str, typer.Argument(help="Study Instance UID")],
    series: Annotated[str | None, typer.Option(help="Only this series.")] = None,
    instance: Annotated[
        str | None, typer.Option(help="Only this instance (needs --series).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a study, a series or an instance from the archive."""
    if instance and not series:
        raise typer.BadParameter("--instance needs --series")
    what = (
        f"instance {instance}" if instance else f"series {series}" if series else f"study {study}"
    )
    if not yes:
        if not sys.stdin.isatty():
            console.err.print("refusing to delete without --yes when not on a terminal")
            raise typer.Exit(code=2)
        typer.confirm(f"Delete {what}?", abort=True)
    with console.request_errors(), console.client(url, token) as client:
        client.delete(study, series, instance)
    console.err.print(f"deleted {what}", highlight=False)


def status(url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Server health and how many patients, studies, series and instances it holds."""
    with console.request_errors(), console.client(url, token) as client:
        report = client.status()
    if as_json or not console.interactive():
        console.emit_json(report.model_dump())
    else:
        table = console.table("server", "status", "version", *report.counts)
        table.add_row(report.url, report.status, report.version, *map(str, report.counts.values()))
        console.print_table(table)
    if report.status != "ok":
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add login, upload, query, retrieve/download, delete, status to the command line."""
    app.command("login")(login)
    app.command("upload")(upload)
    app.command("query")(query)
    app.command("retrieve")(retrieve)
    app.command("download", help="Same as retrieve.")(retrieve)
    app.command("delete")(delete)
    app.command("status")(status)
