"""Run dicompyler-core's DVH on (RTSTRUCT, RTDOSE, ROI) jobs; runs in its own venv.

Reads a JSON list of jobs from stdin: {"struct", "dose", "roi", "mode", "repeat",
"metrics", "options"}; prints one JSON object per job with the best wall and CPU times (s) and the
statistics in Gy / cm3. dicompyler-core 0.5.6 needs pydicom < 3, hence the separate venv.
"""

import json
import sys
import time

from dicompylercore import dvhcalc


def run(job):
    best = cpu = float("inf")
    dvh = None
    for _ in range(job["repeat"]):
        start, start_cpu = time.perf_counter(), time.process_time()
        dvh = dvhcalc.get_dvh(job["struct"], job["dose"], job["roi"], **job["options"])
        best = min(best, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    stats = {"volume": float(dvh.volume), "min": float(dvh.min), "max": float(dvh.max)}
    stats["mean"] = float(dvh.mean)
    for name in job["metrics"]:
        stats[name] = float(dvh.statistic(name).value)
    return {"time": best, "cpu": cpu, "stats": stats}


if __name__ == "__main__":
    for job in json.load(sys.stdin):
        print(json.dumps(run(job)), flush=True)
