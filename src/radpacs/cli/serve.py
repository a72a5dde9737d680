"""``radpacs serve`` and ``radpacs check``: run the server, compare files with the index.

Every option also comes from ``RADPACS_*`` environment variables or settings.yml; an option
given on the command line wins.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from radpacs import __version__
from radpacs.cli.options import DatabaseUrl, DataDir
from radpacs.settings import DuplicatePolicy, Settings, load_settings

__all__ = ["check", "register", "serve"]


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    workers: Annotated[int | None, typer.Option(help="Server processes.")] = None,
    dimse: Annotated[
        bool | None,
        typer.Option("--dimse/--no-dimse", help="Also listen for DICOM associations (default)."),
    ] = None,
    dimse_port: Annotated[int | None, typer.Option(help="DICOM port (default 11112).")] = None,
    duplicate_policy: Annotated[
        DuplicatePolicy | None,
        typer.Option(help="What to do with a different object under a known UID."),
    ] = None,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth", help="Require tokens (default) or not (single-user laptop)."
        ),
    ] = None,
    open_enrolment: Annotated[
        bool | None,
        typer.Option(
            "--open-enrolment/--closed-enrolment",
            help="Let anyone create a password-less reader account (POST /api/account).",
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Store and name the RT workshop datasets first.")
    ] = False,
    workshop: Annotated[
        bool,
        typer.Option(
            "--workshop",
            help="The RT workshop preset: --demo, --open-enrolment, and /api/anonymize, "
            "/api/dvh, /api/dvh/plot without a token (docs/auth.md).",
        ),
    ] = False,
    demo_dir: Annotated[
        Path | None, typer.Option(help="The rt-workshop folder for --demo.")
    ] = None,
) -> None:
    """Start the DICOMweb server (DICOMweb at /dicom-web, REST at /api, docs at /docs)."""
    import uvicorn

    from radpacs.app import create_app
    from radpacs.archive import Archive
    from radpacs.cli.users import load_demo_into, login_hint
    from radpacs.dimse.service import start_node
    from radpacs.logs import logging_config

    overrides = {
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "database_url": database_url,
        "workers": workers,
        "dimse_enabled": dimse,
        "dimse_port": dimse_port,
        "duplicate_policy": duplicate_policy,
        "auth_enabled": auth,
        "open_enrolment": open_enrolment,
    }
    if workshop:
        overrides["workshop"] = True
        if open_enrolment is None:
            overrides["open_enrolment"] = True
    settings = load_settings(**overrides)
    with Archive.from_settings(settings) as archive:  # create and migrate, before any worker
        if demo or settings.workshop:
            names = load_demo_into(archive, demo_dir)
            typer.echo(f"demo datasets: {', '.join(names)}")
        hint = login_hint(settings, archive)
    typer.echo(
        f"radpacs {__version__} serving http://{settings.host}:{settings.port}/ "
        f"(DICOMweb at /dicom-web, data in {settings.data_dir.resolve()})"
    )
    typer.echo(hint)
    try:
        logging_config(settings, per_process=settings.resolved_workers > 1)  # a bad log_config file
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if settings.dimse_enabled:
        typer.echo(
            f"DICOM node {settings.dimse_ae_title} on "
            f"{settings.dimse_listen_host}:{settings.dimse_port} (--no-dimse turns it off)"
        )
    if settings.resolved_workers == 1:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=logging_config(settings),
            **proxy_options(settings),
            **connection_options(settings),
        )
        return
    for name, value in overrides.items():  # workers rebuild the settings from the environment
        if value is not None:
            os.environ[f"RADPACS_{name.upper()}"] = str(value)
    close_dimse = start_node(settings) if settings.dimse_enabled else None  # in this parent
    try:
        uvicorn.run(
            "radpacs.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.resolved_workers,
            log_level=settings.log_level,
            log_config=logging_config(settings, per_process=True),
            **proxy_options(settings),
            **connection_options(settings),
        )
    finally:
        if close_dimse is not None:
            close_dimse()


def connection_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's keep-alive timeout: ``keep_alive_timeout`` (75 s, nginx's default).

    uvicorn's own 5 s, with uvloop (whose loop runs due timers before it reads sockets), let
    a loop held up for 5 s under load close connections whose next request had already
    arrived, and clients got resets (bench/README.md, Load test).
    """
    return {"timeout_keep_alive": settings.keep_alive_timeout}


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's X-Forwarded-For handling: on only for the ``trusted_proxies`` (uvicorn's own
    default trusts 127.0.0.1, which let any local client choose its address)."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


def check(
    data_dir: DataDir = None,
    clean: Annotated[
        bool,
        typer.Option(
            help="Remove files that no index row refers to, and temporary files of interrupted "
            "writes untouched for 10 minutes."
        ),
    ] = False,
) -> None:
    """Compare stored files with the index: orphan files and missing files."""
    from radpacs.archive import Archive

    with Archive.from_settings(load_settings(data_dir=data_dir)) as archive:
        report = archive.check(clean=clean)
        counts = archive.counts()
    typer.echo(
        f"{counts['studies']} studies, {counts['series']} series, {counts['instances']} instances"
    )
    typer.echo(
        f"{len(report.orphan_keys)} orphan files" + (f", {report.cleaned} removed" if clean else "")
    )
    for key in report.orphan_keys[:20]:
        typer.echo(f"  orphan {key}")
    typer.echo(
        f"{len(report.temporaries)} temporary files of interrupted writes"
        + (f", {report.temporaries_cleaned} removed (untouched for 10 minutes)" if clean else "")
    )
    typer.echo(f"{len(report.missing)} indexed instances without a file")
    for sop in report.missing[:20]:
        typer.echo(f"  missing {sop}")
    if report.missing:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``check`` to the radpacs command line."""
    app.command("serve")(serve)
    app.command("check")(check)
