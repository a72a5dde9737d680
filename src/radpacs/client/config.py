"""Where the client finds its server and token: arguments, then the environment, then a file.

Precedence, highest first: values given explicitly (command-line options), the environment
variables ``RADPACS_URL`` and ``RADPACS_TOKEN``, the user config file written by
``radpacs login``. The file is ``$RADPACS_CONFIG_DIR/config.toml``, else
``$XDG_CONFIG_HOME/radpacs/config.toml``, else ``~/.config/radpacs/config.toml``; it holds
a token, so it is written with mode 0600, and its token is used only for its own URL.

Example::

    config = resolve(url=None, token=None)  # ClientConfig(url='http://127.0.0.1:8080', ...)
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from radpacs.errors import ConfigurationError

__all__ = ["DEFAULT_URL", "ClientConfig", "config_path", "read_config", "resolve", "write_config"]

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class ClientConfig:
    """A server URL and, when logged in, a bearer token."""

    url: str = DEFAULT_URL
    token: str | None = None


def config_path() -> Path:
    """The user config file's path (it may not exist)."""
    folder = os.environ.get("RADPACS_CONFIG_DIR")
    if folder:
        return Path(folder) / "config.toml"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "radpacs" / "config.toml"


def read_config(path: Path | None = None) -> dict[str, str]:
    """The file's ``url`` and ``token`` (absent keys left out); {} when there is no file."""
    path = path or config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from exc
    return {key: str(data[key]) for key in ("url", "token") if data.get(key)}


def write_config(url: str, token: str | None, path: Path | None = None) -> Path:
    """Write the file atomically with mode 0600 (it holds a token); its path."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = [f"url = {json.dumps(url)}"]
    if token:
        lines.append(f"token = {json.dumps(token)}")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as sink:
            sink.write("# written by `radpacs login`\n" + "\n".join(lines) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def resolve(url: str | None = None, token: str | None = None) -> ClientConfig:
    """The URL and token by precedence: arguments, environment, config file, default URL."""
    stored = read_config()
    chosen_url = (url or os.environ.get("RADPACS_URL") or stored.get("url") or DEFAULT_URL).rstrip(
        "/"
    )
    chosen_token = token or os.environ.get("RADPACS_TOKEN")
    if not chosen_token and stored.get("url", "").rstrip("/") == chosen_url:
        chosen_token = stored.get("token")  # never send the file's token to another server
    return ClientConfig(url=chosen_url, token=chosen_token or None)
