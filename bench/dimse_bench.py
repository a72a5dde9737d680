"""Compare radpacs's DICOM node (DIMSE) with Orthanc's on this machine, in one run.

    python bench/dimse_bench.py                      # 1,000 instances, 1 and 4 associations
    python bench/dimse_bench.py --associations 1 8   # other association counts
    python bench/dimse_bench.py --find-rounds 20     # more C-FIND repetitions

Both servers start here on free loopback ports with fresh temporary data folders: radpacs as
``radpacs dimse`` (one process, SQLite index), Orthanc from Debian's package (SQLite index,
no plugin). The corpus is archive_bench.py's (CT_small.dcm with new UIDs, 20 studies x 5
series x 10 instances = 1,000 files, 39 MB), written to a folder once.

Measured, alternating radpacs and Orthanc within each step:

- C-STORE: DCMTK's storescu sends the whole corpus over N associations at once (N storescu
  processes, each a share of the files); instances/s over the wall time, then the stored
  count is checked (every instance once).
- C-FIND, study level, study root: median latency of one query over one association (a
  pynetdicom SCU, the same for both) for all studies and for one PatientID, with 20 studies
  stored and with 1,000 studies stored (another corpus of 1,000 one-instance studies).

Prints a table with ratios (>1: radpacs better) and writes JSON to --output if given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from archive_bench import build_corpus

LOOPBACK = "127.0.0.1"
BENCH_AE = "BENCH"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"{name} does not listen on {port}")


@dataclass
class Peer:
    name: str
    ae_title: str
    port: int
    process: subprocess.Popen[bytes]
    folder: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_radpacs(folder: Path) -> Peer:
    port = free_port()
    script = Path(sys.executable).parent / "radpacs"
    program = [str(script)] if script.exists() else [sys.executable, "-m", "radpacs"]
    env = {
        **os.environ,
        "RADPACS_DIMSE_NODES": json.dumps(
            {"bench": {"ae_title": BENCH_AE, "host": LOOPBACK, "port": 1}}
        ),
        "RADPACS_AI_EMBEDDED_WORKER": "false",
    }
    with (folder / "radpacs.log").open("wb") as log:
        process = subprocess.Popen(
            [*program, "dimse", "--data-dir", str(folder / "data"), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    wait_for_port(port, process, "radpacs")
    return Peer("radpacs", "RADPACS", port, process, folder)


def start_orthanc(folder: Path, binary: str) -> Peer:
    port = free_port()
    config = {
        "Name": "dimse-bench",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": "ORTHANC",
        "DicomPort": port,
        "DicomModalities": {"bench": [BENCH_AE, LOOPBACK, 1]},
        "Plugins": [],
        "SaveJobs": False,
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    with (folder / "orthanc.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, str(folder / "orthanc.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_port(port, process, "orthanc")
    return Peer("orthanc", "ORTHANC", port, process, folder)


@contextlib.contextmanager
def peers(root: Path, orthanc_binary: str) -> Iterator[list[Peer]]:
    started: list[Peer] = []
    try:
        for name in ("radpacs", "orthanc"):
            folder = root / name
            folder.mkdir(parents=True)
            if name == "radpacs":
                started.append(start_radpacs(folder))
            else:
                started.append(start_orthanc(folder, orthanc_binary))
        yield started
    finally:
        for peer in started:
            peer.stop()


def write_corpus(instances: list[bytes], folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for index, blob in enumerate(instances):
        path = folder / f"{index:05d}.dcm"
        path.write_bytes(blob)
        paths.append(path)
    return paths


def storescu(peer: Peer, paths: list[Path], associations: int) -> float:
    """Send every path over ``associations`` storescu processes at once; wall seconds."""
    shares = [paths[i::associations] for i in range(associations)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            ["storescu", "-aet", BENCH_AE, "-aec", peer.ae_title, LOOPBACK, str(peer.port)]
            + [str(p) for p in share],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for share in shares
    ]
    for process in processes:
        _, error = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"storescu into {peer.name} failed: {error.decode()[-500:]}")
    return time.perf_counter() - started


def find(peer: Peer, keys: dict[str, str], rounds: int) -> tuple[float, int]:
    """Median milliseconds of one study-level C-FIND over one association, and matches."""
    ae = AE(ae_title=BENCH_AE)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(LOOPBACK, peer.port, ae_title=peer.ae_title)
    if not assoc.is_established:
        raise SystemExit(f"{peer.name} refused the C-FIND association")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    for keyword in ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate"):
        setattr(identifier, keyword, "")
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    times, matches = [], 0
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            matches = sum(
                1
                for status, match in assoc.send_c_find(
                    identifier, StudyRootQueryRetrieveInformationModelFind
                )
                if status and status.Status in (0xFF00, 0xFF01)
            )
            times.append((time.perf_counter() - started) * 1000)
    finally:
        assoc.release()
    return statistics.median(times), matches


def count_studies(peer: Peer) -> int:
    return find(peer, {}, 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--associations", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--find-rounds", type=int, default=10)
    parser.add_argument("--orthanc-bin", default=shutil.which("Orthanc") or "/usr/sbin/Orthanc")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if shutil.which("storescu") is None:
        raise SystemExit("storescu not found: apt-get install -y dcmtk")
    results: dict[str, dict[str, float]] = {"radpacs": {}, "orthanc": {}}
    with tempfile.TemporaryDirectory(prefix="dimse-bench-") as tmp:
        root = Path(tmp)
        corpus = build_corpus(20, 5, 10, seed=1)
        paths = write_corpus(corpus.instances, root / "corpus")
        many = build_corpus(1000, 1, 1, seed=2)
        many_paths = write_corpus(many.instances, root / "many")
        print(f"corpus: {len(paths)} instances, {corpus.total_bytes / 1e6:.0f} MB", flush=True)
        order = ("radpacs", "orthanc")
        for step, associations in enumerate(args.associations):
            with peers(root / f"run{step}", args.orthanc_bin) as started:
                by_name = {peer.name: peer for peer in started}
                for name in order:
                    seconds = storescu(by_name[name], paths, associations)
                    rate = len(paths) / seconds
                    results[name][f"store_{associations}_assoc_per_s"] = rate
                    print(f"{name}: C-STORE over {associations} association(s): "
                          f"{rate:.0f} instances/s", flush=True)  # fmt: skip
                for name in order:
                    if count_studies(by_name[name]) != 20:
                        raise SystemExit(f"{name} does not list the 20 studies it stored")
                if step:
                    continue
                for stored in (20, 1020):
                    if stored == 1020:
                        for name in order:
                            storescu(by_name[name], many_paths, 4)
                    for keys, label in (({}, "all"), ({"PatientID": "BENCH00003"}, "one")):
                        for name in order:
                            ms, matches = find(by_name[name], keys, args.find_rounds)
                            results[name][f"find_{stored}_{label}_ms"] = ms
                            print(f"{name}: C-FIND {stored} studies, {label} ({matches} "
                                  f"matches): {ms:.1f} ms", flush=True)  # fmt: skip
    print()
    print(f"{'metric':<32}{'radpacs':>10}{'orthanc':>10}{'ratio (>1 = radpacs better)':>30}")
    for metric, ours in results["radpacs"].items():
        theirs = results["orthanc"][metric]
        ratio = ours / theirs if metric.endswith("_per_s") else theirs / ours
        print(f"{metric:<32}{ours:>10.1f}{theirs:>10.1f}{ratio:>30.2f}")
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
