"""``radpacs apps``: callback apps of a running server (docs/ai-apps.md, "Callback apps").

- ``radpacs apps register NAME URL [--modality CT] [--body-part CHEST] [--input study]
  [--on-arrival] [--timeout 30] [--stable-seconds 10]`` (admin);
- ``radpacs apps list``, ``radpacs apps remove NAME`` (admin);
- ``radpacs apps enable|disable NAME`` (admin);
- ``radpacs apps run NAME STUDY [--series UID]``: trigger an analysis;
- ``radpacs apps analyses [--app NAME] [--study UID]``, ``radpacs apps show WORKITEM``,
  ``radpacs apps cancel WORKITEM``.

``--json`` prints the server's JSON instead of one line per app or analysis. The main CLI
calls :func:`register`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from radpacs.cli._console import client as _client
from radpacs.cli._console import emit_json as _emit_json
from radpacs.cli._console import request_errors
from radpacs.cli.options import JsonOption, TokenOption, UrlOption

__all__ = ["register"]

apps_app = typer.Typer(help="Callback apps: register them, run them on studies, follow them.")
NameArg = Annotated[str, typer.Argument(help="The app's registered name.")]
WorkitemArg = Annotated[str, typer.Argument(help="The analysis' workitem UID.")]


def _app_line(app: Any) -> str:
    accepts = ",".join(app.modalities) or "any"
    state = "enabled" if app.enabled else "disabled"
    return f"{app.name}\t{app.url}\t{app.trigger}\t{accepts}\t{state}"


def _analysis_line(analysis: Any) -> str:
    reason = f"\t{analysis.reason}" if analysis.reason else ""
    return f"{analysis.workitem}\t{analysis.app}\t{analysis.study}\t{analysis.state}{reason}"


def _show(items: list[Any], line: Any, as_json: bool) -> None:
    if as_json:
        _emit_json([item.model_dump(mode="json") for item in items])
        return
    for item in items:
        typer.echo(line(item))


@apps_app.command("register")
def register_app(
    name: NameArg,
    app_url: Annotated[str, typer.Argument(help="Where analysis requests are POSTed.")],
    modality: Annotated[
        list[str] | None, typer.Option("--modality", help="An accepted modality (repeat).")
    ] = None,
    body_part: Annotated[
        list[str] | None, typer.Option("--body-part", help="An accepted body part (repeat).")
    ] = None,
    input: Annotated[str, typer.Option("--input", help="series or study.")] = "series",
    on_arrival: Annotated[
        bool, typer.Option("--on-arrival", help="Run on every matching arrived series.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per delivery.")] = 30.0,
    stable_seconds: Annotated[
        float, typer.Option("--stable-seconds", help="On arrival: quiet seconds first.")
    ] = 10.0,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a callback app (admin); its host must be in apps_allowed_hosts."""
    with request_errors(), _client(url, token) as client:
        app = client.register_app(
            name,
            app_url,
            modalities=modality or [],
            body_parts=body_part or [],
            input=input,
            trigger="on-arrival" if on_arrival else "on-demand",
            timeout=timeout,
            stable_seconds=stable_seconds,
        )
    _show([app], _app_line, as_json)


@apps_app.command("list")
def list_apps(
    url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """The registered apps: name, URL, trigger, modalities, enabled."""
    with request_errors(), _client(url, token) as client:
        apps = client.apps()
    _show(apps, _app_line, as_json)


def _set_enabled(name: str, enabled: bool, url: str | None, token: str | None) -> None:
    with request_errors(), _client(url, token) as client:
        app = client.update_app(name, enabled=enabled)
    typer.echo(_app_line(app))


@apps_app.command("enable")
def enable(name: NameArg, url: UrlOption = None, token: TokenOption = None) -> None:
    """Let an app run again (admin)."""
    _set_enabled(name, True, url, token)


@apps_app.command("disable")
def disable(name: NameArg, url: UrlOption = None, token: TokenOption = None) -> None:
    """Stop an app from running, on arrival or on demand (admin)."""
    _set_enabled(name, False, url, token)


@apps_app.command("remove")
def remove(name: NameArg, url: UrlOption = None, token: TokenOption = None) -> None:
    """Unregister an app (admin); its analyses stay readable."""
    with request_errors(), _client(url, token) as client:
        client.remove_app(name)
    typer.echo(f"removed {name}")


@apps_app.command("run")
def run(
    name: NameArg,
    study: Annotated[str, typer.Argument(help="The Study Instance UID.")],
    series: Annotated[str | None, typer.Option("--series", help="Only this series.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trigger an analysis of a study (or one series) by an app."""
    with request_errors(), _client(url, token) as client:
        analysis = client.trigger_app(name, study, series)
    _show([analysis], _analysis_line, as_json)


@apps_app.command("analyses")
def analyses(
    app: Annotated[str | None, typer.Option("--app", help="Only this app.")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Only this study.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """The latest analyses first: workitem, app, study, state (and why it was canceled)."""
    with request_errors(), _client(url, token) as client:
        found = client.app_analyses(app, study)
    _show(found, _analysis_line, as_json)


@apps_app.command("show")
def show(workitem: WorkitemArg, url: UrlOption = None, token: TokenOption = None) -> None:
    """One analysis as JSON, with its delivery and the app's result."""
    with request_errors(), _client(url, token) as client:
        analysis = client.app_analysis(workitem)
    _emit_json(analysis.model_dump(mode="json"))


@apps_app.command("cancel")
def cancel(workitem: WorkitemArg, url: UrlOption = None, token: TokenOption = None) -> None:
    """Cancel an analysis; the app is told at <app url>/cancel."""
    with request_errors(), _client(url, token) as client:
        analysis = client.cancel_app_analysis(workitem)
    typer.echo(_analysis_line(analysis))


def register(app: typer.Typer) -> None:
    app.add_typer(apps_app, name="apps")
