"""Compare radpacs's DICOMweb server with Orthanc on this machine, in one run.

Run it with the radpacs venv, from the repository root:

    python bench/archive_bench.py [--studies 20 --series 2 --instances 25 --workers 1]

Other modes:

    python bench/archive_bench.py --rounds 3               # alternate 3 times, report medians
    python bench/archive_bench.py --only orthanc           # measure Orthanc alone
    python bench/archive_bench.py --only radpacs           # measure radpacs alone
    python bench/archive_bench.py --radpacs-url http://127.0.0.1:8000/dicom-web
                                  # measure an already running (empty) server as "radpacs"
    python bench/archive_bench.py --radpacs-cmd 'radpacs serve --host {host} --port {port} \
                                  --data-dir {data_dir} --workers {workers}'

The script builds a corpus in memory from pydicom's CT_small.dcm (new UIDs, varied patients,
dates, accession numbers and modalities, deterministic for a --seed), starts each server in
turn on a free loopback port with a fresh temporary data directory (Orthanc: Debian packages
orthanc + orthanc-dicomweb, SQLite index), and measures on each:

1. STOW-RS throughput (instances/s): batches of --batch instances, --clients concurrent clients;
2. QIDO-RS /studies median latency, without filters and with filters;
3. WADO-RS study metadata median latency;
4. WADO-RS study retrieve throughput (MB/s, 1 MB = 10^6 bytes), streaming the body.

It prints a table with both figures and the ratio (>1 means radpacs is better), checks the
targets of the issue and writes the results as JSON to bench/out/archive-<timestamp>.json.
Only 127.0.0.1 is ever contacted.

Exit status: 0 when every answer was consistent with the corpus, 1 when a server failed or
answered inconsistently (see the WARNING / ERROR lines); with --check-targets, 2 when a
target is missed and 3 when other work shared the CPUs, so the targets were not judged.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fnmatch
import io
import json
import os
import platform
import queue
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
DICOM_JSON = "application/dicom+json"
MULTIPART_DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'
STARTUP_TIMEOUT_S = 60.0  # --startup-timeout
STOP_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 120.0
BUSY_SHARE = 0.2  # CPU share used by other work above which a run is flagged as noisy
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT_DIR = BENCH_DIR / "out"
DEFAULT_ORTHANC_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

FAMILY_NAMES = ["SMITH", "JONES", "SANCHEZ", "BROWN", "SCOTT", "MILLER", "STEWART", "DAVIS"]
GIVEN_NAMES = ["ANNA", "JOHN", "MARIA", "PETER", "SARA", "TOM", "LINA", "OMAR"]
STUDY_MODALITIES = ["CT", "CT", "MR", "PT"]

# Filtered QIDO query: a patient-name wildcard, a study-date range and a modality.
QIDO_FILTERS = {
    "PatientName": "S*",
    "StudyDate": "20170101-20241231",
    "ModalitiesInStudy": "CT",
}

# Targets from the issue, as minimum ratios where >1 means radpacs is better.
TARGETS = {
    "stow_instances_per_s": 2.0,
    "qido_studies_ms": 2.0,
    "qido_studies_filtered_ms": 2.0,
    "retrieve_mb_per_s": 1.0,
}


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Study:
    """What the benchmark needs to know about one study of the corpus."""

    study_uid: str
    patient_name: str
    study_date: str
    modality: str


@dataclass
class Corpus:
    """DICOM Part 10 files kept in memory, grouped by study."""

    studies: list[Study]
    instances: list[bytes]

    @property
    def total_bytes(self) -> int:
        return sum(len(blob) for blob in self.instances)


def deterministic_uid(seed: int, *parts: object) -> str:
    """Return a UID that depends only on the seed and the parts.

    pydicom joins entropy sources without a separator, so the parts are joined here with one:
    (1, 11) and (11, 1) must not give the same UID.
    """
    return str(generate_uid(entropy_srcs=["/".join(str(p) for p in (seed, *parts))]))


def study_attributes(rng: random.Random, index: int, patient_count: int) -> dict[str, str]:
    """Pick the patient, date, accession number and modality of study number `index`."""
    patient = index % patient_count
    family = FAMILY_NAMES[patient % len(FAMILY_NAMES)]
    given = GIVEN_NAMES[(3 * patient + patient // len(FAMILY_NAMES)) % len(GIVEN_NAMES)]
    study_date = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(10 * 365))
    return {
        "PatientName": f"{family}^{given}{patient // 64 or ''}",
        "PatientID": f"BENCH{patient:05d}",
        "PatientBirthDate": f"{1940 + patient % 60:04d}0{1 + patient % 9}15",
        "PatientSex": "FM"[patient % 2],
        "StudyDate": study_date.strftime("%Y%m%d"),
        "StudyTime": f"{8 + index % 10:02d}{index % 60:02d}00",
        "AccessionNumber": f"ACC{index:06d}",
        "StudyID": str(index + 1),
        "StudyDescription": f"Bench study {index + 1}",
        "Modality": STUDY_MODALITIES[index % len(STUDY_MODALITIES)],
    }


def encode_instance(ds: Dataset, attributes: dict[str, Any]) -> bytes:
    """Set the attributes on ds (in place) and return it as DICOM Part 10 bytes."""
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def load_template() -> Dataset:
    """Read CT_small.dcm and drop what would tie new instances to the original patient."""
    path = get_testdata_file("CT_small.dcm")
    if path is None:
        raise SystemExit("pydicom's test file CT_small.dcm is missing")
    ds = pydicom.dcmread(path)
    if "OtherPatientIDsSequence" in ds:
        del ds.OtherPatientIDsSequence
    return ds


def build_corpus(studies: int, series: int, instances: int, seed: int) -> Corpus:
    """Build studies x series x instances DICOM files with new UIDs, deterministic for a seed."""
    rng = random.Random(seed)
    template = load_template()
    patient_count = max(1, studies // 2)
    corpus = Corpus(studies=[], instances=[])
    for s in range(studies):
        study = study_attributes(rng, s, patient_count)
        study_uid = deterministic_uid(seed, "study", s)
        for r in range(series):
            series_uid = deterministic_uid(seed, "series", s, r)
            for i in range(instances):
                attributes: dict[str, Any] = {
                    **study,
                    "StudyInstanceUID": study_uid,
                    "SeriesInstanceUID": series_uid,
                    "SOPInstanceUID": deterministic_uid(seed, "instance", s, r, i),
                    "SeriesNumber": r + 1,
                    "SeriesDescription": f"Series {r + 1}",
                    "InstanceNumber": i + 1,
                    "SeriesDate": study["StudyDate"],
                    "ContentDate": study["StudyDate"],
                }
                corpus.instances.append(encode_instance(template, attributes))
        corpus.studies.append(
            Study(
                study_uid=study_uid,
                patient_name=study["PatientName"],
                study_date=study["StudyDate"],
                modality=study["Modality"],
            )
        )
    return corpus


def expected_filtered_studies(corpus: Corpus) -> int:
    """Count the studies of the corpus that QIDO_FILTERS should match."""
    low, high = QIDO_FILTERS["StudyDate"].split("-")
    return sum(
        1
        for st in corpus.studies
        if fnmatch.fnmatchcase(st.patient_name, QIDO_FILTERS["PatientName"])
        and low <= st.study_date <= high
        and st.modality == QIDO_FILTERS["ModalitiesInStudy"]
    )


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A DICOMweb server under test: its label, DICOMweb root and, if we started it, process."""

    name: str
    dicomweb_root: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None


def free_port() -> int:
    """Ask the kernel for a free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def check_loopback(url: str) -> None:
    """Refuse any URL whose host is not 127.0.0.1 or localhost."""
    host = httpx.URL(url).host
    if host not in (LOOPBACK, "localhost"):
        raise SystemExit(f"refusing non-loopback URL {url!r}: this benchmark only uses {LOOPBACK}")


def log_tail(path: Path | None, lines: int = 30) -> str:
    """Return the last lines of a server log, for error messages."""
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


startup_timeout_s = STARTUP_TIMEOUT_S


def wait_until_ready(server: Server, url: str, accept_status: Callable[[int], bool]) -> None:
    """Poll url until accept_status(status) holds, the process dies or the timeout passes."""
    deadline = time.monotonic() + startup_timeout_s
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if server.process is not None and server.process.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with code {server.process.returncode}\n"
                    + log_tail(server.log_path)
                )
            with contextlib.suppress(httpx.TransportError):
                if accept_status(client.get(url).status_code):
                    return
            time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready at {url} after {startup_timeout_s:.0f} s")


def spawn(name: str, argv: list[str], log_path: Path, dicomweb_root: str) -> Server:
    """Start a server process in its own session, with its output going to log_path."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(name=name, dicomweb_root=dicomweb_root, process=process, log_path=log_path)


def stop(server: Server) -> None:
    """Stop a server that this script started: SIGTERM its process group, then SIGKILL."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


def orthanc_config(
    http_port: int, work_dir: Path, plugin: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Orthanc configuration: loopback only, no auth, SQLite index, DICOMweb plugin."""
    config = {
        "Name": "radpacs-bench",
        "StorageDirectory": str(work_dir / "storage"),
        "IndexDirectory": str(work_dir / "index"),
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "DicomPort": free_port(),
        "Plugins": [plugin],
        "SaveJobs": False,
        "KeepAlive": True,
        "TcpNoDelay": True,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
    }
    return {**config, **overrides}


def foreign_orthanc_pids() -> list[int]:
    """Pids of running Orthanc processes (e.g. the system service), read from /proc."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "Orthanc":
                pids.append(int(comm.parent.name))
    return pids


def start_orthanc(work_dir: Path, binary: str, plugin: str, overrides: dict[str, Any]) -> Server:
    """Start Orthanc with a fresh config and storage in work_dir; wait until /system answers."""
    if shutil.which(binary) is None:
        raise SystemExit(f"{binary} not found: apt-get install -y orthanc orthanc-dicomweb")
    if not Path(plugin).exists():
        raise SystemExit(f"DICOMweb plugin {plugin} not found: apt-get install -y orthanc-dicomweb")
    others = foreign_orthanc_pids()
    if others:
        print(
            f"[orthanc] NOTE other Orthanc processes are running ({others}); they are not measured "
            "but share the CPU: stop them (e.g. `service orthanc stop`) for clean figures",
            flush=True,
        )
    port = free_port()
    config_path = work_dir / "orthanc.json"
    config_path.write_text(json.dumps(orthanc_config(port, work_dir, plugin, overrides), indent=2))
    base = f"http://{LOOPBACK}:{port}"
    argv = [binary, str(config_path)]
    server = spawn("orthanc", argv, work_dir / "orthanc.log", f"{base}/dicom-web")
    try:
        wait_until_ready(server, f"{base}/system", lambda status: status == 200)
        wait_until_ready(server, f"{server.dicomweb_root}/studies", lambda status: status == 200)
    except BaseException:
        stop(server)
        raise
    return server


def default_radpacs_cmd() -> str:
    """The radpacs start command, using the radpacs script next to this Python if present.

    Accounts are off (--no-auth), as Orthanc runs here with AuthenticationEnabled false, and
    so is the DICOM listener (--no-dimse), as Orthanc's is (DicomServerEnabled false).
    """
    script = Path(sys.executable).parent / "radpacs"
    program = str(script) if script.exists() else "radpacs"
    return (
        f"{shlex.quote(program)} serve --host {{host}} --port {{port}} --data-dir {{data_dir}} "
        "--no-auth --no-dimse"
    )


def radpacs_argv(template: str, port: int, data_dir: Path, workers: int) -> list[str]:
    """Fill the radpacs command template; add --workers N unless the template places it."""
    argv = [
        part.format(host=LOOPBACK, port=port, data_dir=data_dir, workers=workers)
        for part in shlex.split(template)
    ]
    if "{workers}" not in template and workers != 1:
        argv += ["--workers", str(workers)]
    return argv


def start_radpacs(work_dir: Path, template: str, workers: int) -> Server:
    """Start radpacs with a fresh data dir in work_dir; wait until /api/health answers 200."""
    port = free_port()
    data_dir = work_dir / "data"
    data_dir.mkdir()
    argv = radpacs_argv(template, port, data_dir, workers)
    base = f"http://{LOOPBACK}:{port}"
    server = spawn("radpacs", argv, work_dir / "radpacs.log", f"{base}/dicom-web")
    try:
        wait_until_ready(server, f"{base}/api/health", lambda status: status == 200)
    except BaseException:
        stop(server)
        raise
    return server


def attach(name: str, dicomweb_root: str) -> Server:
    """Use an already running server; wait until its QIDO /studies answers."""
    root = dicomweb_root.rstrip("/")
    check_loopback(root)
    server = Server(name=name, dicomweb_root=root)
    wait_until_ready(server, f"{root}/studies?limit=1", lambda status: status in (200, 204))
    return server


# --------------------------------------------------------------------------- measurements


@dataclass
class StowResult:
    """Outcome of the STOW-RS phase."""

    instances_per_s: float
    elapsed_s: float
    batches: int
    failed_batches: int
    statuses: dict[str, int]
    stored_instances: int


@dataclass
class LatencyResult:
    """Latencies of a series of identical or similar requests, in milliseconds."""

    median_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    requests: int
    results_returned: int | None = None
    results_expected: int | None = None


@dataclass
class RetrieveResult:
    """Outcome of the WADO-RS study retrieve phase."""

    mb_per_s: float
    bytes_received: int
    elapsed_s: float
    studies: int
    parts_received: int
    parts_expected: int


@dataclass
class ServerResult:
    """All figures measured on one server."""

    name: str
    dicomweb_root: str | None = None
    stow: StowResult | None = None
    qido_studies: LatencyResult | None = None
    qido_studies_filtered: LatencyResult | None = None
    study_metadata: LatencyResult | None = None
    retrieve: RetrieveResult | None = None
    background_cpu_before: float | None = None
    background_cpu_after: float | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def new_client(accept_encoding: str) -> httpx.Client:
    """An HTTP client with the benchmark's timeout and Accept-Encoding."""
    return httpx.Client(timeout=REQUEST_TIMEOUT_S, headers={"Accept-Encoding": accept_encoding})


def query_url(url: str, params: dict[str, str]) -> str:
    """Append a query string, leaving '*' and ',' unescaped (Orthanc does not decode %2A)."""
    return f"{url}?{urllib.parse.urlencode(params, safe='*,')}" if params else url


def multipart_body(instances: list[bytes], boundary: str) -> bytes:
    """Encode DICOM files as a multipart/related body with parts of type application/dicom."""
    out = io.BytesIO()
    for blob in instances:
        out.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        out.write(blob)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def stow_batches(corpus: Corpus, batch_size: int) -> list[tuple[str, bytes]]:
    """Split the corpus into ready-to-send (content type, body) STOW requests."""
    batches = []
    for start in range(0, len(corpus.instances), batch_size):
        boundary = f"bench-{uuid.uuid4().hex}"
        body = multipart_body(corpus.instances[start : start + batch_size], boundary)
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        batches.append((content_type, body))
    return batches


def stow_has_failures(response: httpx.Response) -> bool:
    """True if a STOW answer lists a FailedSOPSequence (0008,1198)."""
    try:
        payload = response.json()
    except ValueError:
        return False
    return isinstance(payload, dict) and bool(payload.get("00081198", {}).get("Value"))


def stow_worker(
    client: httpx.Client,
    root: str,
    work: queue.Queue[tuple[str, bytes]],
    statuses: list[tuple[int, bool]],
    connection_mode: str = "keep-alive",
) -> None:
    """Send STOW batches from the queue until it is empty, recording (status, failed).

    connection_mode `curl`: each batch is one `curl` process (curl 7.x sends `Expect:
    100-continue` first); `new`: every request says `Connection: close`, so each batch opens a new
    TCP connection on the same client; `new-client`: each batch is sent by a new httpx.Client
    (a new connection, and the client's own set-up, as `httpx.post()` or `requests.post()`
    without a session). A transport error (connection reset, timeout) is recorded as status 0.
    """
    connection = {"Connection": "close"} if connection_mode != "keep-alive" else {}
    new_client_per_batch = connection_mode == "new-client"
    with client:
        while True:
            try:
                content_type, body = work.get_nowait()
            except queue.Empty:
                return
            headers = {"Content-Type": content_type, "Accept": DICOM_JSON, **connection}
            try:
                if connection_mode == "curl":
                    statuses.append(curl_stow(f"{root}/studies", content_type, body))
                    continue
                if new_client_per_batch:  # as httpx.post() or requests.post() without a session
                    with httpx.Client(timeout=client.timeout, headers=client.headers) as fresh:
                        response = fresh.post(f"{root}/studies", content=body, headers=headers)
                else:
                    response = client.post(f"{root}/studies", content=body, headers=headers)
            except httpx.TransportError:
                statuses.append((0, True))
                continue
            statuses.append((response.status_code, stow_has_failures(response)))


def curl_stow(url: str, content_type: str, body: bytes) -> tuple[int, bool]:
    """POST one STOW body with a new curl process; (status, answer lists failures)."""
    answer = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            "--data-binary",
            "@-",
            "-H",
            f"Content-Type: {content_type}",
            "-H",
            f"Accept: {DICOM_JSON}",
            "-w",
            "\n%{http_code}",
            url,
        ],
        input=body,
        capture_output=True,
        timeout=REQUEST_TIMEOUT_S,
        check=False,
    )
    text, _, status = answer.stdout.rpartition(b"\n")
    if answer.returncode or not status.isdigit():
        return 0, True
    try:
        payload = json.loads(text) if text else {}
    except ValueError:
        payload = {}
    failed = isinstance(payload, dict) and bool(payload.get("00081198", {}).get("Value"))
    return int(status), failed


def count_stored_instances(client: httpx.Client, root: str, corpus: Corpus) -> int:
    """Count the corpus's instances the server lists through QIDO /studies/{uid}/instances."""
    total = 0
    for study in corpus.studies:
        response = client.get(
            f"{root}/studies/{study.study_uid}/instances", headers={"Accept": DICOM_JSON}
        )
        if response.status_code == 200:
            total += len(response.json())
    return total


def measure_stow(
    root: str,
    corpus: Corpus,
    batch_size: int,
    clients: int,
    accept_encoding: str,
    connection_mode: str = "keep-alive",
) -> StowResult:
    """STOW the corpus in batches with concurrent clients; instances/s over wall time."""
    batches = stow_batches(corpus, batch_size)
    work: queue.Queue[tuple[str, bytes]] = queue.Queue()
    for batch in batches:
        work.put(batch)
    statuses: list[tuple[int, bool]] = []
    threads = [
        threading.Thread(
            target=stow_worker,
            args=(new_client(accept_encoding), root, work, statuses, connection_mode),
            daemon=True,
        )
        for _ in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=len(batches) * REQUEST_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    counts: dict[str, int] = {}
    for status, _ in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    failed = sum(1 for status, has_failures in statuses if status != 200 or has_failures)
    failed += len(batches) - len(statuses)
    with new_client(accept_encoding) as client:
        stored = count_stored_instances(client, root, corpus)
    return StowResult(
        instances_per_s=len(corpus.instances) / elapsed,
        elapsed_s=elapsed,
        batches=len(batches),
        failed_batches=failed,
        statuses=counts,
        stored_instances=stored,
    )


def timed_get(
    client: httpx.Client, url: str, params: dict[str, str], accept: str
) -> tuple[float, httpx.Response]:
    """GET url and read the whole body; return (milliseconds, response)."""
    started = time.perf_counter()
    response = client.get(query_url(url, params), headers={"Accept": accept})
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    response.raise_for_status()
    return elapsed_ms, response


def summarize(latencies_ms: list[float]) -> LatencyResult:
    """Median, 90th percentile, min and max of a list of latencies."""
    ordered = sorted(latencies_ms)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return LatencyResult(
        median_ms=statistics.median(ordered),
        p90_ms=p90,
        min_ms=ordered[0],
        max_ms=ordered[-1],
        requests=len(ordered),
    )


def measure_qido(
    client: httpx.Client, root: str, params: dict[str, str], repeats: int, expected: int
) -> LatencyResult:
    """Median latency of QIDO /studies with the given filters, after one warm-up request."""
    url = f"{root}/studies"
    _, warm = timed_get(client, url, params, DICOM_JSON)
    returned = len(warm.json()) if warm.status_code == 200 else 0
    latencies = [timed_get(client, url, params, DICOM_JSON)[0] for _ in range(repeats)]
    result = summarize(latencies)
    result.results_returned = returned
    result.results_expected = expected
    return result


def measure_metadata(client: httpx.Client, root: str, corpus: Corpus) -> LatencyResult:
    """Median latency of GET /studies/{uid}/metadata over all studies, after one warm-up."""
    urls = [f"{root}/studies/{study.study_uid}/metadata" for study in corpus.studies]
    timed_get(client, urls[0], {}, DICOM_JSON)
    latencies = []
    returned = 0
    for url in urls:
        elapsed_ms, response = timed_get(client, url, {}, DICOM_JSON)
        latencies.append(elapsed_ms)
        returned += len(response.json())
    result = summarize(latencies)
    result.results_returned = returned
    result.results_expected = len(corpus.instances)
    return result


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a multipart content type, as bytes."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            return value.strip('"').encode()
    raise ValueError(f"no boundary in {content_type!r}")


def count_delimiters(chunks: Iterator[bytes], delimiter: bytes) -> tuple[int, int]:
    """Stream chunks; return (bytes seen, occurrences of delimiter, also across chunks)."""
    size = 0
    count = 0
    tail = b""
    keep = len(delimiter) - 1
    for chunk in chunks:
        size += len(chunk)
        window = tail + chunk
        count += window.count(delimiter)
        # The tail is shorter than the delimiter, so no occurrence is counted twice.
        tail = window[-keep:] if keep else b""
    return size, count


def retrieve_study(client: httpx.Client, url: str) -> tuple[int, int]:
    """Stream one study retrieve; return (body bytes, number of parts)."""
    with client.stream("GET", url, headers={"Accept": MULTIPART_DICOM_ANY}) as response:
        response.raise_for_status()
        delimiter = b"--" + boundary_of(response.headers["content-type"])
        size, delimiters = count_delimiters(response.iter_bytes(), delimiter)
    return size, max(0, delimiters - 1)


def measure_retrieve(
    client: httpx.Client, root: str, corpus: Corpus, rounds: int
) -> RetrieveResult:
    """Retrieve every study `rounds` times (after one warm-up); MB/s over the total time."""
    urls = [f"{root}/studies/{study.study_uid}" for study in corpus.studies] * rounds
    retrieve_study(client, urls[0])
    total_bytes = 0
    total_parts = 0
    started = time.perf_counter()
    for url in urls:
        size, parts = retrieve_study(client, url)
        total_bytes += size
        total_parts += parts
    elapsed = time.perf_counter() - started
    return RetrieveResult(
        mb_per_s=total_bytes / elapsed / 1e6,
        bytes_received=total_bytes,
        elapsed_s=elapsed,
        studies=len(urls),
        parts_received=total_parts,
        parts_expected=len(corpus.instances) * rounds,
    )


def consistency_warnings(result: ServerResult, corpus: Corpus) -> list[str]:
    """Describe every way the server's answers differ from what the corpus implies."""
    warnings = []
    stow = result.stow
    if stow is not None and stow.failed_batches:
        warnings.append(f"STOW: {stow.failed_batches} batches failed {stow.statuses}")
    if stow is not None and stow.stored_instances != len(corpus.instances):
        warnings.append(f"STOW: QIDO lists {stow.stored_instances} of {len(corpus.instances)}")
    for label, latency in (
        ("QIDO /studies", result.qido_studies),
        ("QIDO /studies filtered", result.qido_studies_filtered),
        ("study metadata", result.study_metadata),
    ):
        if latency is not None and latency.results_returned != latency.results_expected:
            warnings.append(
                f"{label}: {latency.results_returned} results, expected {latency.results_expected}"
            )
    retrieve = result.retrieve
    if retrieve is not None and retrieve.parts_received != retrieve.parts_expected:
        warnings.append(
            f"retrieve: {retrieve.parts_received} parts, expected {retrieve.parts_expected}"
        )
    return warnings


def attempt(result: ServerResult, label: str, measure: Callable[[], T]) -> T | None:
    """Run one measurement; on an HTTP or decoding error record it and return None."""
    print(f"[{result.name}] {label} ...", flush=True)
    try:
        return measure()
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        message = f"{label}: {type(exc).__name__}: {first_line}"
        print(f"[{result.name}] ERROR {message}", flush=True)
        result.errors.append(message)
        return None


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def background_cpu(name: str, when: str) -> float | None:
    """Share of the CPUs busy during 1 s while the bench and the server are idle.

    Anything above BUSY_SHARE means other work shares the machine; a note is printed.
    """
    try:
        busy0, total0 = cpu_times()
        time.sleep(1.0)
        busy1, total1 = cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    share = (busy1 - busy0) / max(1, total1 - total0)
    if share >= BUSY_SHARE:
        print(
            f"[{name}] NOTE {share:.0%} of the CPUs were busy with other work {when} "
            "the measurements: figures will be noisy",
            flush=True,
        )
    return share


def was_noisy(result: ServerResult) -> bool:
    """True if other work used BUSY_SHARE or more of the CPUs around this server's turn."""
    shares = (result.background_cpu_before, result.background_cpu_after)
    return any(share is not None and share >= BUSY_SHARE for share in shares)


def run_suite(server: Server, corpus: Corpus, args: argparse.Namespace) -> ServerResult:
    """Run every measurement on one server, in order: STOW, QIDO, metadata, retrieve.

    A measurement that fails (e.g. an endpoint the server lacks) is recorded as an error and
    the others still run.
    """
    root = server.dicomweb_root
    result = ServerResult(name=server.name, dicomweb_root=root)
    result.background_cpu_before = background_cpu(server.name, "before")
    result.stow = attempt(
        result,
        f"STOW {len(corpus.instances)} instances",
        lambda: measure_stow(
            root,
            corpus,
            args.batch,
            args.clients,
            args.accept_encoding,
            args.stow_connection,
        ),
    )
    if args.stow_only:
        result.background_cpu_after = background_cpu(server.name, "after")
        result.warnings = consistency_warnings(result, corpus)
        return result
    with new_client(args.accept_encoding) as client:
        result.qido_studies = attempt(
            result,
            "QIDO /studies",
            lambda: measure_qido(client, root, {}, args.qido_repeats, len(corpus.studies)),
        )
        result.qido_studies_filtered = attempt(
            result,
            "QIDO /studies filtered",
            lambda: measure_qido(
                client, root, QIDO_FILTERS, args.qido_repeats, expected_filtered_studies(corpus)
            ),
        )
        result.study_metadata = attempt(
            result, "study metadata", lambda: measure_metadata(client, root, corpus)
        )
        result.retrieve = attempt(
            result,
            "study retrieve",
            lambda: measure_retrieve(client, root, corpus, args.retrieve_rounds),
        )
    result.background_cpu_after = background_cpu(server.name, "after")
    result.warnings = consistency_warnings(result, corpus)
    for warning in result.warnings:
        print(f"[{server.name}] WARNING {warning}", flush=True)
    return result


# --------------------------------------------------------------------------- report


def stow_rate(result: ServerResult) -> float | None:
    """STOW instances/s, or None if any batch failed (a rate of errors means nothing)."""
    stow = result.stow
    return None if stow is None or stow.failed_batches else stow.instances_per_s


@dataclass(frozen=True)
class Metric:
    """One row of the report: how to read it from a ServerResult, and which way is better."""

    key: str
    label: str
    unit: str
    read: Callable[[ServerResult], float | None]
    higher_is_better: bool


METRICS = [
    Metric(
        "stow_instances_per_s",
        "STOW",
        "inst/s",
        stow_rate,
        True,
    ),
    Metric(
        "qido_studies_ms",
        "QIDO /studies median",
        "ms",
        lambda r: None if r.qido_studies is None else r.qido_studies.median_ms,
        False,
    ),
    Metric(
        "qido_studies_filtered_ms",
        "QIDO /studies filtered median",
        "ms",
        lambda r: None if r.qido_studies_filtered is None else r.qido_studies_filtered.median_ms,
        False,
    ),
    Metric(
        "study_metadata_ms",
        "study metadata median",
        "ms",
        lambda r: None if r.study_metadata is None else r.study_metadata.median_ms,
        False,
    ),
    Metric(
        "retrieve_mb_per_s",
        "study retrieve",
        "MB/s",
        lambda r: None if r.retrieve is None else r.retrieve.mb_per_s,
        True,
    ),
]


def aggregate(metric: Metric, rounds: list[ServerResult]) -> float | None:
    """Median of a metric over the rounds that measured it; None if none did."""
    values = [v for v in (metric.read(r) for r in rounds) if v is not None]
    return statistics.median(values) if values else None


def ratio(metric: Metric, ours: float | None, theirs: float | None) -> float | None:
    """radpacs's advantage over Orthanc for a metric: >1 means radpacs is better."""
    if ours is None or theirs is None:
        return None
    if metric.higher_is_better:
        return ours / theirs if theirs else None
    return theirs / ours if ours else None


def format_value(value: float | None) -> str:
    """A figure for the table, or '-' when it was not measured."""
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def print_table(results: dict[str, list[ServerResult]], rounds: int) -> dict[str, Any]:
    """Print metric / radpacs / orthanc / ratio / target, and return the rows."""
    header = f"{'metric':<36}{'radpacs':>10}{'orthanc':>10}{'ratio (>1 = radpacs better)':>30}"
    print()
    if rounds > 1:
        print(f"median of {rounds} rounds per server")
    print(header + f"{'target':>10}")
    print("-" * (len(header) + 10))
    rows: dict[str, Any] = {}
    for metric in METRICS:
        ours = aggregate(metric, results.get("radpacs", []))
        theirs = aggregate(metric, results.get("orthanc", []))
        r = ratio(metric, ours, theirs)
        target = TARGETS.get(metric.key)
        verdict = "" if target is None or r is None else ("ok" if r >= target else "MISS")
        target_text = "" if target is None else f">={target:g}x {verdict}"
        print(
            f"{metric.label + ' (' + metric.unit + ')':<36}{format_value(ours):>10}"
            f"{format_value(theirs):>10}{format_value(r):>30}{target_text:>10}"
        )
        rows[metric.key] = {
            "unit": metric.unit,
            "radpacs": ours,
            "orthanc": theirs,
            "ratio_radpacs_better": r,
            "target_ratio": target,
            "target_met": None if target is None or r is None else r >= target,
        }
    return rows


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write the results file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nresults written to {path}")


def orthanc_version(binary: str) -> str:
    """The first line of `Orthanc --version`."""
    try:
        output = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return output.splitlines()[0] if output else "unknown"


def environment(args: argparse.Namespace, corpus: Corpus) -> dict[str, Any]:
    """Describe the run: machine, versions, corpus and options."""
    return {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "httpx": httpx.__version__,
        "pydicom": pydicom.__version__,
        "orthanc": orthanc_version(args.orthanc_bin) if args.only != "radpacs" else None,
        "corpus": {
            "studies": len(corpus.studies),
            "instances": len(corpus.instances),
            "bytes": corpus.total_bytes,
            "seed": args.seed,
        },
        "qido_filters": QIDO_FILTERS,
        "options": {k: v for k, v in vars(args).items() if k != "out_dir"},
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--studies", type=int, default=20)
    p.add_argument("--series", type=int, default=2, help="series per study")
    p.add_argument("--instances", type=int, default=25, help="instances per series")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=10, help="instances per STOW request")
    p.add_argument("--clients", type=int, default=4, help="concurrent STOW clients")
    p.add_argument(
        "--stow-connection",
        choices=["keep-alive", "new", "new-client", "curl"],
        default="keep-alive",
        help="STOW clients keep their connection, open a new one per batch (new), or use a "
        "new httpx.Client per batch (new-client), or run one curl per batch (curl)",
    )
    p.add_argument("--stow-only", action="store_true", help="measure STOW only")
    p.add_argument("--qido-repeats", type=int, default=50, help="timed QIDO requests per query")
    p.add_argument("--retrieve-rounds", type=int, default=3, help="timed retrieves of every study")
    p.add_argument("--workers", type=int, default=1, help="radpacs server worker processes")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each server this many times, alternating, and report medians",
    )
    p.add_argument("--only", choices=["both", "radpacs", "orthanc"], default="both")
    p.add_argument("--radpacs-url", help="DICOMweb root of an already running, empty server")
    p.add_argument(
        "--radpacs-cmd",
        default=default_radpacs_cmd(),
        help="start command; {host} {port} {data_dir} {workers} are filled in",
    )
    p.add_argument("--orthanc-bin", default="Orthanc")
    p.add_argument("--orthanc-plugin", default=DEFAULT_ORTHANC_PLUGIN)
    p.add_argument(
        "--orthanc-config",
        type=json.loads,
        default={},
        help="JSON object merged over the Orthanc config, e.g. '{\"KeepAlive\": false}'",
    )
    p.add_argument(
        "--accept-encoding",
        default="identity",
        help="Accept-Encoding of every request (e.g. 'gzip'); default identity",
    )
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    p.add_argument(
        "--check-targets",
        action="store_true",
        help="exit 2 if a target of the issue is missed, 3 if the machine was too busy to judge",
    )
    p.add_argument(
        "--startup-timeout",
        type=float,
        default=STARTUP_TIMEOUT_S,
        help="seconds a server may take to answer (several processes on a busy machine: more)",
    )
    p.add_argument("--keep-data", action="store_true", help="keep the servers' temp folders")
    args = p.parse_args(argv)
    if min(args.studies, args.series, args.instances, args.batch, args.clients) < 1:
        p.error("--studies, --series, --instances, --batch and --clients must be >= 1")
    if min(args.qido_repeats, args.retrieve_rounds, args.workers, args.rounds) < 1:
        p.error("--qido-repeats, --retrieve-rounds, --workers and --rounds must be >= 1")
    if args.rounds > 1 and args.radpacs_url and args.only != "orthanc":
        p.error("--rounds > 1 needs a fresh server per round, so not --radpacs-url")
    return args


def start_server(name: str, work_dir: Path, args: argparse.Namespace) -> Server:
    """Start (or attach to) the named server."""
    if name == "orthanc":
        return start_orthanc(work_dir, args.orthanc_bin, args.orthanc_plugin, args.orthanc_config)
    if args.radpacs_url:
        return attach("radpacs", args.radpacs_url)
    return start_radpacs(work_dir, args.radpacs_cmd, args.workers)


def bench_server(name: str, corpus: Corpus, args: argparse.Namespace) -> ServerResult:
    """Start one server on a fresh temp folder, measure it, stop it."""
    work_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    server = None
    try:
        server = start_server(name, work_dir, args)
        print(f"[{name}] ready at {server.dicomweb_root}", flush=True)
        return run_suite(server, corpus, args)
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"[{name}] ERROR could not start: {exc}", flush=True)
        return ServerResult(name=name, errors=[f"start: {exc}"])
    finally:
        if server is not None:
            stop(server)
        if args.keep_data:
            print(f"[{name}] data kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Build the corpus, measure the selected servers one after the other, report."""
    args = parse_args(argv)
    global startup_timeout_s
    startup_timeout_s = args.startup_timeout
    # Turn SIGTERM into SystemExit so that the finally clauses stop the servers we started.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    started = time.perf_counter()
    corpus = build_corpus(args.studies, args.series, args.instances, args.seed)
    print(
        f"corpus: {len(corpus.instances)} instances in {len(corpus.studies)} studies, "
        f"{corpus.total_bytes / 1e6:.1f} MB, built in {time.perf_counter() - started:.1f} s"
    )
    names = ["radpacs", "orthanc"] if args.only == "both" else [args.only]
    results: dict[str, list[ServerResult]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        if args.rounds > 1:
            print(f"round {round_index + 1} of {args.rounds}", flush=True)
        for name in names:
            results[name].append(bench_server(name, corpus, args))
    rows = print_table(results, args.rounds)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    write_json(
        args.out_dir / f"archive-{stamp}.json",
        {
            "environment": environment(args, corpus),
            "summary": rows,
            "servers": {name: [asdict(r) for r in rounds] for name, rounds in results.items()},
        },
    )
    if any(r.warnings or r.errors for rounds in results.values() for r in rounds):
        return 1
    if not args.check_targets:
        return 0
    if any(was_noisy(r) for rounds in results.values() for r in rounds):
        print("targets not judged: other work shared the CPUs (see NOTE lines)")
        return 3
    missed = [key for key, row in rows.items() if row["target_met"] is False]
    return 2 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
