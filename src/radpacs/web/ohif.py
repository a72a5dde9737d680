"""The prebuilt OHIF viewer: fetched from npm (@ohif/app, its dist/ folder), never committed.

:func:`install_viewer` runs ``npm pack @ohif/app@VERSION`` into a temporary folder, extracts
``package/dist`` into the viewer folder (by default ``src/radpacs/web/ohif/``, git-ignored; the
``viewer_dir`` setting moves it) and makes the bundles work under any URL prefix: the build
hard-codes its public path ``"/"``, which is replaced by the folder of the running script, so
that the same files serve at ``/viewer/`` directly or behind a proxy prefix.

Example::

    install_viewer(default_viewer_dir())  # -> Path('.../radpacs/web/ohif')
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from radpacs.errors import ConfigurationError, StorageError
from radpacs.settings import Settings

__all__ = [
    "OHIF_PACKAGE",
    "OHIF_VERSION",
    "default_viewer_dir",
    "install_viewer",
    "installed_version",
    "viewer_dir",
]

OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"
_MARKER = ".radpacs-ohif.json"
_PUBLIC_PATH = '__webpack_require__.p = "/";'
# The folder of the script being run: document.currentScript for pages, self.location in workers.
_RELATIVE_PUBLIC_PATH = (
    "__webpack_require__.p = (function () { var s = typeof document !== 'undefined' && "
    "document.currentScript; var u = (s && s.src) || self.location.href; "
    "return u.replace(/[?#].*$/, '').replace(/[^/]*$/, ''); })();"
)


def default_viewer_dir() -> Path:
    """``src/radpacs/web/ohif`` beside this module (git-ignored)."""
    return Path(__file__).parent / "ohif"


def viewer_dir(settings: Settings) -> Path:
    """Where the OHIF files are: the viewer_dir setting, else src/radpacs/web/ohif."""
    return settings.viewer_dir or default_viewer_dir()


def installed_version(folder: Path) -> str | None:
    """The OHIF version installed in ``folder``, or None when no viewer is there."""
    marker = folder / _MARKER
    if not (folder / "index.html").is_file() or not marker.is_file():
        return None
    version = json.loads(marker.read_text()).get("version")
    return str(version) if version else None


def _npm_pack(version: str, into: Path, npm: str) -> Path:
    if shutil.which(npm) is None:
        raise ConfigurationError(
            f"{npm!r} was not found: install Node.js and npm (Debian: apt-get install -y npm)"
        )
    command = [npm, "pack", f"{OHIF_PACKAGE}@{version}", "--pack-destination", str(into)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    except subprocess.CalledProcessError as exc:
        raise StorageError(f"{' '.join(command)} failed: {exc.stderr.strip()[-500:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise StorageError(f"{' '.join(command)} took more than 10 minutes") from exc
    tarballs = list(into.glob("*.tgz"))
    if len(tarballs) != 1:
        raise StorageError(f"npm pack left {len(tarballs)} tarballs in {into}")
    return tarballs[0]


def _extract_dist(tarball: Path, into: Path) -> None:
    prefix = "package/dist/"
    with tarfile.open(tarball, "r:gz") as archive:
        members = []
        for member in archive.getmembers():
            if not member.name.startswith(prefix) or not (member.isfile() or member.isdir()):
                continue
            member.name = member.name[len(prefix) :]
            if member.name:
                members.append(member)
        archive.extractall(into, members=members, filter="data")
    if not (into / "index.html").is_file():
        raise StorageError(f"{tarball.name} has no package/dist/index.html")


def _relocate(folder: Path) -> int:
    """Make the bundles' public path relative to the script's own folder; count the files."""
    patched = 0
    for script in folder.rglob("*.js"):
        text = script.read_text(encoding="utf-8", errors="surrogateescape")
        if _PUBLIC_PATH in text:
            script.write_text(
                text.replace(_PUBLIC_PATH, _RELATIVE_PUBLIC_PATH),
                encoding="utf-8",
                errors="surrogateescape",
            )
            patched += 1
    for sheet in folder.rglob("*.css"):  # url(/font.woff2) -> relative to the stylesheet
        text = sheet.read_text(encoding="utf-8", errors="surrogateescape")
        if "url(/" in text:
            sheet.write_text(
                text.replace("url(/", "url(./"), encoding="utf-8", errors="surrogateescape"
            )
    return patched


def install_viewer(folder: Path, version: str = OHIF_VERSION, npm: str = "npm") -> Path:
    """Fetch OHIF ``version`` with npm and install its dist/ in ``folder`` (replacing any)."""
    folder = folder.resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".ohif-") as work:
        work_dir = Path(work)
        tarball = _npm_pack(version, work_dir, npm)
        staged = work_dir / "dist"
        _extract_dist(tarball, staged)
        if _relocate(staged) == 0:
            raise StorageError(
                f"{OHIF_PACKAGE}@{version}: no bundle sets its public path; this version's "
                "build is not one radpacs knows how to serve under /viewer/"
            )
        (staged / _MARKER).write_text(json.dumps({"package": OHIF_PACKAGE, "version": version}))
        old = work_dir / "old"
        if folder.exists():
            folder.rename(old)
        staged.rename(folder)
    return folder
