"""WADO-RS series metadata with and without PHI (``?phi=false``), in one run.

    .venv/bin/python bench/phi_view_bench.py [--instances 200] [--rounds 5]

An in-process server (SQLite, auth off) stores ``--instances`` CT instances in one series,
then times GET .../metadata first (body built) and then from the metadata cache, for the
full answer (the peer: what every reader gets) and the no-PHI view (the PS3.15 filter over
the same JSON). The metadata cache is cleared between rounds for the "built" figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import make_ct, multipart, to_bytes
from radpacs.app import create_app
from radpacs.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(data_dir=Path(folder), auth_enabled=False, dimse_enabled=False)
        with TestClient(create_app(settings)) as client:
            first = make_ct()
            datasets = [first] + [
                make_ct(first.StudyInstanceUID, first.SeriesInstanceUID)
                for _ in range(args.instances - 1)
            ]
            body, content_type = multipart([to_bytes(d) for d in datasets])
            assert (
                client.post(
                    "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
                ).status_code
                == 200
            )
            study, series = first.StudyInstanceUID, first.SeriesInstanceUID
            path = f"/dicom-web/studies/{study}/series/{series}/metadata"
            cache = client.app.state.services.metadata_cache  # type: ignore[attr-defined]
            for label, params in (("full (peer)", {}), ("no-PHI view", {"phi": "false"})):
                built, cached = [], []
                for _ in range(args.rounds):
                    cache._items.clear()
                    start = time.perf_counter()
                    response = client.get(
                        path, params=params, headers={"Accept-Encoding": "identity"}
                    )
                    built.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    client.get(path, params=params, headers={"Accept-Encoding": "identity"})
                    cached.append(time.perf_counter() - start)
                print(
                    f"{label:12s} {args.instances} instances, "
                    f"{len(response.content) / 1e6:.2f} MB: "
                    f"built {1000 * min(built):.1f} ms, cached {1000 * min(cached):.1f} ms "
                    f"(best of {args.rounds})"
                )


if __name__ == "__main__":
    main()
