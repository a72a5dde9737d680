"""``radpacs user add|list|remove`` and ``radpacs load-demo``: accounts and the workshop data.

The first administrator of a new installation::

    printf '%s\\n' "$PASSWORD" | radpacs user add alice --role admin --password-stdin --data-dir DIR

Nothing ships with a default password: without an account (or ``RADPACS_ADMIN_USER`` and
``RADPACS_ADMIN_PASSWORD`` at first start) no token can be had. The main CLI calls
:func:`register` to add the commands.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from radpacs.auth.roles import Role
from radpacs.cli.options import DatabaseUrl, DataDir
from radpacs.settings import Settings, load_settings

if TYPE_CHECKING:
    from radpacs.archive import Archive
    from radpacs.archive.accounts import AccountStore

__all__ = ["load_demo_into", "register", "user_app"]

user_app = typer.Typer(
    help="Manage accounts (admin, uploader, reader, service).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@contextmanager
def _accounts(settings: Settings) -> Iterator[AccountStore]:
    """The account store of the archive ``settings`` name, open for the block."""
    from radpacs.archive import Archive
    from radpacs.archive.accounts import AccountStore

    with Archive.from_settings(settings) as archive:
        yield AccountStore(archive.engine)


@user_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Account name.")],
    role: Annotated[Role, typer.Option(help="What the account may do.")] = Role.READER,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an account with a password (asked for, or read from stdin)."""
    from radpacs.auth.passwords import hash_password
    from radpacs.auth.usernames import check_username
    from radpacs.errors import RadpacsError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            typer.echo("the passwords differ", err=True)
            raise typer.Exit(code=2)
    try:
        name = check_username(username)
        password_hash = hash_password(password)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from exc
    try:
        with _accounts(load_settings(data_dir=data_dir, database_url=database_url)) as accounts:
            accounts.add(name, role, password_hash=password_hash)
    except RadpacsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"created {role.value} account {name}")


@user_app.command("list")
def list_accounts(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List accounts: name, role, and whether it was enrolled without a password."""
    with _accounts(load_settings(data_dir=data_dir, database_url=database_url)) as accounts:
        rows = accounts.list()
    for account in rows:
        enrolled = "  (enrolled, no password)" if account.enrolled else ""
        typer.echo(f"{account.username}\t{account.role.value}{enrolled}")


@user_app.command("remove")
def remove(
    username: Annotated[str, typer.Argument(help="Account name.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove an account; its tokens stop working at once."""
    from radpacs.errors import NotFound

    try:
        with _accounts(load_settings(data_dir=data_dir, database_url=database_url)) as accounts:
            accounts.remove(username)
    except NotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"removed {username}")


def load_demo_into(archive: Archive, demo_dir: Path | None) -> list[str]:
    """Store and name the workshop files; the names given. Exit 1 if there is no folder."""
    from radpacs.archive.demo import default_demo_dir, load_demo
    from radpacs.archive.names import DatasetNames

    folder = demo_dir or default_demo_dir()
    if folder is None or not folder.is_dir():
        typer.echo(
            "no demo folder: give --demo-dir (the rt-workshop folder: rtdose.dcm, rtstruct-*.dcm)",
            err=True,
        )
        raise typer.Exit(code=1)
    named = load_demo(archive, DatasetNames(archive.engine), folder)
    return sorted(item.name for item in named)


def load_demo_command(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    demo_dir: Annotated[
        Path | None,
        typer.Option(help="The rt-workshop folder (default: ../shared/data/rt-workshop)."),
    ] = None,
) -> None:
    """Store the radiotherapy workshop files and name them (sphere, cylinder, cone, dose)."""
    from radpacs.archive import Archive

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    with Archive.from_settings(settings) as archive:
        names = load_demo_into(archive, demo_dir)
    typer.echo(f"loaded {len(names)} datasets: {', '.join(names)}")


def register(app: typer.Typer) -> None:
    """Add ``user`` and ``load-demo`` to the radpacs command line."""
    app.add_typer(user_app, name="user")
    app.command("load-demo")(load_demo_command)


def login_hint(settings: Settings, archive: Archive) -> str:
    """One line for the serve banner: how to get in."""
    if not settings.auth_enabled:
        return "auth is OFF (--no-auth): every request acts as the local administrator"
    from radpacs.archive.accounts import AccountStore

    count = AccountStore(archive.engine).count()
    enrolment = " Open enrolment: POST /api/account idul=NAME." if settings.open_enrolment else ""
    if count == 0 and not settings.admin_user:
        return (
            "no accounts yet: create an admin with `radpacs user add NAME --role admin "
            f"--password-stdin --data-dir {settings.data_dir}`, then POST /api/auth "
            f"username=NAME password=... for a token.{enrolment}"
        )
    return f"log in: POST /api/auth with username and password for a token.{enrolment}"
