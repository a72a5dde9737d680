"""Scale-out (issue 20): two `radpacs serve` processes (A, B) and one `radpacs worker`, each with
its own data folder as on separate machines, sharing one PostgreSQL database, one S3 bucket
(moto's server) and one Redis, behind nginx (started by the test, round robin over A and B).

What one process does, the other sees at once: stores, revocations, login failures, deletes
(metadata caches included), UPS-RS events, the AI arrival rules (one leader); and a process
killed with SIGKILL during a STOW load through nginx loses no instance it acknowledged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pydicom.uid import generate_uid
from sqlalchemy import create_engine, text
from websockets.sync.client import connect

from _s3_support import S3Server, s3_server  # noqa: F401 - the fixture
from conftest import POSTGRES_URL, LiveServer, make_ct, multipart, to_bytes
from test_ups_rs import GLOBAL, WORKITEMS, create, events, summary, workitem

pytestmark = [pytest.mark.postgres, pytest.mark.peer, pytest.mark.slow]

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_PORT = 24000  # this test's own port (the scale-out task's port base)
REDIS_URL = os.environ.get("RADPACS_TEST_SCALE_REDIS_URL", "redis://127.0.0.1:6379/11")
ADMIN = ("admin", "scale-out-password")
STOW = "/dicom-web/studies"
ARRIVAL_DESCRIPTION = "scale-out arrival"


@dataclass
class Cluster:
    a: LiveServer
    b: LiveServer
    worker: subprocess.Popen[bytes]
    proxy_url: str
    token: str

    def client(self, base_url: str, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=base_url, headers=headers, timeout=60)


def _nginx_config(prefix: Path, ports: list[int]) -> Path:
    servers = "\n".join(
        f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=30s;" for port in ports
    )
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers may read the temp folders
    config = prefix / "nginx.conf"
    config.write_text(
        f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  client_max_body_size 0;
  upstream radpacs {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{NGINX_PORT};
    location / {{
      proxy_pass http://radpacs;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_read_timeout 120s;
    }}
  }}
}}
"""
    )
    return config


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited: {log.read_text(errors='replace')}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in 60 s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[Cluster]:  # noqa: F811
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (scripts/install-system-deps)")
    shared_redis = redis.Redis.from_url(REDIS_URL)
    try:
        shared_redis.flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    database = f"scale_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {database}"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    root = tmp_path_factory.mktemp("scale")
    env = {
        **s3_server.environment(s3_server.new_bucket()),
        "RADPACS_DATABASE_URL": POSTGRES_URL.rsplit("/", 1)[0] + "/" + database,
        "RADPACS_REDIS_URL": REDIS_URL,
        "RADPACS_AI_QUEUE": "redis",
        "RADPACS_AI_REDIS_URL": REDIS_URL,
        "RADPACS_AI_QUEUE_NAME": f"scale-{database}",
        "RADPACS_AI_EMBEDDED_WORKER": "false",
        "RADPACS_AI_MAX_ATTEMPTS": "1",
        "RADPACS_AI_RULES": json.dumps(
            [
                {
                    "model": "classical-segmenter",
                    "description": ARRIVAL_DESCRIPTION,
                    "stable_seconds": 1,
                }
            ]
        ),
        "RADPACS_AUTH_ENABLED": "true",
        "RADPACS_AUTH_SECRET": "s" * 48,  # shared by every process, as on several machines
        "RADPACS_DEID_SECRET": "d" * 32,
        "RADPACS_ADMIN_USER": ADMIN[0],
        "RADPACS_ADMIN_PASSWORD": ADMIN[1],
        "RADPACS_LOGIN_MAX_FAILURES": "3",
    }
    a = LiveServer(root / "a", ["--workers", "1"], env).start()  # A migrates the database
    b = LiveServer(root / "b", ["--workers", "1"], env).start()
    worker_log = root / "worker.stderr"
    prefix = root / "nginx"
    prefix.mkdir()
    with worker_log.open("wb") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "radpacs", "worker", "--data-dir", str(root / "w")],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, **env},
        )
    with (prefix / "stderr").open("wb") as stderr:
        proxy = subprocess.Popen(
            [
                NGINX,
                "-p",
                str(prefix),
                "-e",
                str(prefix / "error.log"),
                "-c",
                str(_nginx_config(prefix, [a.port, b.port])),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    proxy_url = f"http://127.0.0.1:{NGINX_PORT}"
    try:
        _wait_http(proxy_url + "/api/health", proxy, prefix / "error.log")
        login = httpx.post(
            f"{a.url}/api/auth", data={"username": ADMIN[0], "password": ADMIN[1]}, timeout=30
        )
        assert login.status_code == 200, login.text
        yield Cluster(a, b, worker, proxy_url, login.json()["token"])
    finally:
        for process in (proxy, worker):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        a.stop()
        b.stop()
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        admin.dispose()
        shared_redis.flushdb()


def _stow(client: httpx.Client, study_uid: str, count: int = 2, **attributes: Any) -> list[str]:
    series_uid = generate_uid()
    datasets = [make_ct(study_uid, series_uid, **attributes) for _ in range(count)]
    body, content_type = multipart([to_bytes(dataset) for dataset in datasets])
    stored = client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert stored.status_code == 200, stored.text
    return [str(dataset.SOPInstanceUID) for dataset in datasets]


def test_a_store_on_one_is_found_and_retrieved_on_the_other(cluster: Cluster) -> None:
    study_uid = generate_uid()
    with cluster.client(cluster.a.url) as a, cluster.client(cluster.b.url) as b:
        sops = _stow(a, study_uid, 3)
        found = b.get(f"{STOW}", params={"StudyInstanceUID": study_uid})
        assert found.status_code == 200
        assert found.json()[0]["00201208"]["Value"] == [3]
        metadata = b.get(f"{STOW}/{study_uid}/metadata")
        assert sorted(item["00080018"]["Value"][0] for item in metadata.json()) == sorted(sops)
        retrieved = b.get(f"{STOW}/{study_uid}", headers={"Accept": "multipart/related"})
        assert retrieved.status_code == 200
        assert retrieved.content.count(b"application/dicom") == 3


def test_a_token_revoked_on_one_is_refused_by_the_other(cluster: Cluster) -> None:
    login = httpx.post(
        f"{cluster.b.url}/api/auth", data={"username": ADMIN[0], "password": ADMIN[1]}
    )
    token = login.json()["token"]
    with cluster.client(cluster.a.url, token) as a, cluster.client(cluster.b.url, token) as b:
        assert b.get("/api/auth/me").status_code == 200
        assert a.post("/api/auth/revoke").status_code == 204
        assert b.get("/api/auth/me").status_code == 401
        assert a.get("/api/auth/me").status_code == 401


def test_login_failures_are_counted_across_processes(cluster: Cluster) -> None:
    name = f"guess-{uuid.uuid4().hex[:8]}"
    for url in (cluster.a.url, cluster.b.url, cluster.a.url):  # login_max_failures is 3
        wrong = httpx.post(f"{url}/api/auth", data={"username": name, "password": "nope-nope"})
        assert wrong.status_code == 401
    locked = httpx.post(
        f"{cluster.b.url}/api/auth", data={"username": name, "password": "nope-nope"}
    )
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0


def test_a_study_deleted_on_one_is_gone_on_the_other_caches_included(cluster: Cluster) -> None:
    study_uid = generate_uid()
    with cluster.client(cluster.a.url) as a, cluster.client(cluster.b.url) as b:
        first = _stow(a, study_uid, 2)
        cached = b.get(f"{STOW}/{study_uid}/metadata")  # now in B's metadata cache
        assert len(cached.json()) == len(first)
        assert a.delete(f"{STOW}/{study_uid}").status_code in (200, 204)
        assert b.get(f"{STOW}/{study_uid}/metadata").status_code == 404
        assert b.get(f"{STOW}", params={"StudyInstanceUID": study_uid}).json() == []
        gone = b.get(f"{STOW}/{study_uid}", headers={"Accept": "multipart/related"})
        assert gone.status_code == 404
        # the same study stored again with other instances: B's cache serves the new ones
        again = _stow(a, study_uid, 1)
        metadata = b.get(f"{STOW}/{study_uid}/metadata").json()
        assert [item["00080018"]["Value"][0] for item in metadata] == again


def test_a_ups_event_made_on_one_reaches_a_subscriber_of_the_other(cluster: Cluster) -> None:
    ae_title = "SCALEPERF"
    ws_url = cluster.b.url.replace("http://", "ws://") + f"/dicom-web/subscribers/{ae_title}"
    with (
        cluster.client(cluster.a.url) as a,
        connect(f"{ws_url}?token={cluster.token}") as channel,
    ):
        subscribed = a.post(f"{WORKITEMS}/{GLOBAL}/subscribers/{ae_title}")
        assert subscribed.status_code == 201, subscribed.text
        uid = create(a, workitem())
        heard = [summary(event) for event in events(channel, 1)]
        assert heard == [(uid, 1, "SCHEDULED")]


def test_arrival_rules_run_once_on_the_leader_and_the_worker_takes_the_job(
    cluster: Cluster,
) -> None:
    study_uid = generate_uid()
    series_uid = generate_uid()

    def store_one(client: httpx.Client) -> None:
        dataset = make_ct(study_uid, series_uid, SeriesDescription=ARRIVAL_DESCRIPTION)
        body, content_type = multipart([to_bytes(dataset)])
        stored = client.post(STOW, content=body, headers={"Content-Type": content_type})
        assert stored.status_code == 200, stored.text

    def jobs_when_ended(client: httpx.Client) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 90
        jobs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            jobs = client.get("/api/ai/jobs", params={"study": study_uid}).json()["jobs"]
            if jobs and all(job["state"] not in ("queued", "running") for job in jobs):
                return jobs
            time.sleep(0.5)
        raise AssertionError(f"no arrival job ended in 90 s: {jobs}")

    with cluster.client(cluster.a.url) as a, cluster.client(cluster.b.url) as b:
        for _ in range(3):  # the segmenter needs 3 images or more
            store_one(a)
        first = jobs_when_ended(b)
        assert [(job["trigger"], job["series"]) for job in first] == [("arrival", series_uid)]
        assert first[0]["state"] in ("succeeded", "failed")  # the separate worker ran it
        # the series grows again through B: triggered once per rule, whichever process
        # (a process that kept its own book would trigger it a second time now)
        store_one(b)
        time.sleep(4)  # stable_seconds is 1, the leader polls every 0.5 s
        again = b.get("/api/ai/jobs", params={"study": study_uid}).json()["jobs"]
        assert [job["id"] for job in again] == [first[0]["id"]]


def test_sigkill_during_a_stow_load_loses_no_acknowledged_instance(cluster: Cluster) -> None:
    acknowledged: list[str] = []
    failures: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    study_uid = generate_uid()

    def load() -> None:
        # a client that opens a new connection for each request, as simple clients do
        while not stop.is_set():
            datasets = [make_ct(study_uid) for _ in range(4)]
            body, content_type = multipart([to_bytes(dataset) for dataset in datasets])
            headers = {"Authorization": f"Bearer {cluster.token}", "Content-Type": content_type}
            try:
                answer = httpx.post(
                    cluster.proxy_url + STOW, content=body, headers=headers, timeout=60
                )
            except httpx.HTTPError:
                answer = None
            with lock:
                if answer is not None and answer.status_code == 200:
                    acknowledged.extend(str(dataset.SOPInstanceUID) for dataset in datasets)
                else:
                    failures.append(answer.status_code if answer is not None else 0)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cluster.b.process is not None
        cluster.b.process.send_signal(signal.SIGKILL)  # B dies mid-request
        cluster.b.process.wait()
        before = len(acknowledged)
        while len(acknowledged) < before + 40 and time.monotonic() < deadline + 30:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(90)
    assert len(acknowledged) >= 80
    with cluster.client(cluster.a.url) as a:
        stored = a.get(f"{STOW}/{study_uid}/metadata")
        assert stored.status_code == 200
        held = {item["00080018"]["Value"][0] for item in stored.json()}
        assert set(acknowledged) <= held
        for sop in acknowledged[:: max(1, len(acknowledged) // 10)]:  # and the files are there
            frame = a.get(
                f"{STOW}/{study_uid}/series/{_series_of(stored.json(), sop)}/instances/{sop}",
                headers={"Accept": "multipart/related; type=application/dicom"},
            )
            assert frame.status_code == 200


def _series_of(metadata: list[dict[str, Any]], sop: str) -> str:
    for item in metadata:
        if item["00080018"]["Value"][0] == sop:
            return str(item["0020000E"]["Value"][0])
    raise AssertionError(f"{sop} not in the metadata")
