"""Shared by the DIMSE tests: a radpacs DICOM node on free ports, DCMTK tools, a storescp."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from radpacs.archive import Archive
from radpacs.archive.audit import AuditLog
from radpacs.dimse import DimseServer
from radpacs.settings import Settings, load_settings

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def need(tool: str) -> str:
    """The path of a DCMTK or Orthanc binary; a failure under CI, a skip elsewhere."""
    path = shutil.which(tool)
    if path is None:
        import os

        message = f"{tool} is not installed (scripts/install-system-deps installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def dcmtk(tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool; its exit status and output are the caller's to check."""
    return subprocess.run(
        [need(tool), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Node:
    """A running radpacs DICOM node and what the tests need to call it."""

    settings: Settings
    archive: Archive
    audit: AuditLog
    server: DimseServer

    @property
    def port(self) -> int:
        return self.server.address[1]

    @property
    def peer(self) -> list[str]:
        """``-aec RADPACS 127.0.0.1 PORT`` for a DCMTK command line."""
        return ["-aec", self.settings.dimse_ae_title, LOOPBACK, str(self.port)]


@contextmanager
def running_node(data_dir: Path, **overrides: Any) -> Iterator[Node]:
    """A DimseServer over a fresh archive in ``data_dir``, with ``overrides`` as settings."""
    values: dict[str, Any] = {"data_dir": data_dir, "dimse_port": free_port()}
    values.update(overrides)
    settings = load_settings(**values)
    archive = Archive.from_settings(settings)
    audit = AuditLog(archive.engine)
    server = DimseServer(settings, archive, audit)
    server.start()
    try:
        yield Node(settings, archive, audit, server)
    finally:
        server.stop()
        audit.close()
        archive.close()


class StoreScp:
    """DCMTK's storescp in a subprocess: a C-MOVE destination writing files to a folder."""

    def __init__(self, folder: Path, ae_title: str = "DEST") -> None:
        self.folder = folder
        self.ae_title = ae_title
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [need("storescp"), "-aet", ae_title, "+xa", "-od", str(folder), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((LOOPBACK, self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("storescp did not start")

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class CuttingProxy:
    """A TCP relay that closes both connections after ``limit`` bytes from the client: an
    association that dies mid-transfer, as a pulled cable or a crashed modality leaves it."""

    def __init__(self, target_port: int, limit: int) -> None:
        self.target_port = target_port
        self.limit = limit
        self.listener = socket.socket()
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(1)
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection((LOOPBACK, self.target_port))
        sent = 0

        def back() -> None:
            try:
                while data := server.recv(65536):
                    client.sendall(data)
            except OSError:
                pass

        threading.Thread(target=back, daemon=True).start()
        try:
            while sent < self.limit and (data := client.recv(min(65536, self.limit - sent))):
                server.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.listener.close()


class Orthanc:
    """Debian's Orthanc in a subprocess on free loopback ports, with a fresh storage folder,
    knowing radpacs (``RADPACS`` at ``radpacs_port``) as a DICOM modality."""

    def __init__(self, folder: Path, radpacs_port: int, ae_title: str = "ORTHANC") -> None:
        import json

        import httpx

        binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        if not Path(binary).exists():
            need("Orthanc")
        self.ae_title = ae_title
        self.http_port = free_port()
        self.dicom_port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "radpacs-test",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": ae_title,
            "DicomPort": self.dicom_port,
            "DicomModalities": {"radpacs": ["RADPACS", LOOPBACK, radpacs_port]},
            "DicomCheckModalityHost": False,
            "Plugins": [],
            "SaveJobs": False,
            "StableAge": 1,
        }
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.log = (folder / "orthanc.log").open("wb")
        self.process = subprocess.Popen(
            [binary, str(folder / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT
        )
        self.http = httpx.Client(base_url=f"http://{LOOPBACK}:{self.http_port}", timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {(folder / 'orthanc.log').read_text()}")
            try:
                if self.http.get("/system").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Orthanc did not start in 30 s")

    @property
    def node(self) -> dict[str, Any]:
        """Orthanc as an entry of radpacs's ``dimse_nodes``."""
        return {"ae_title": self.ae_title, "host": LOOPBACK, "port": self.dicom_port}

    def sop_uids(self) -> set[str]:
        uids = set()
        for orthanc_id in self.http.get("/instances").json():
            tags = self.http.get(f"/instances/{orthanc_id}/simplified-tags").json()
            uids.add(tags["SOPInstanceUID"])
        return uids

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
