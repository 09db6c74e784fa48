"""End-to-end throughput and latency on anvil with worker processes (the bundled digits CNN).

    .venv/bin/python scripts/bench_e2e.py [--jobs 8] [--quick]

For each configuration (workers x batch) a fresh devnet (anvil + gateway + worker processes) runs
`--jobs` jobs submitted together by one requester; each job is timed from submit to a verified result
(`job.result(verify=True)`). Prints jobs per minute and the median latency, and the ratio of each to
the reference configuration (5 workers, batch 1) measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONFIGS = [(5, 1), (5, 64), (20, 1), (20, 64)]


def run_config(workers: int, batch: int, jobs: int, redundancy: int) -> dict:
    from sdk import Client
    from worker.demo import example_files
    from worker.devnet import Devnet

    files = example_files()
    data = np.load(files["inputs"])
    feeds = {name: np.resize(data[name], (batch, *data[name].shape[1:])) for name in data.files if name != "labels"}
    with Devnet(workers=workers, slots=1, poll_interval_s=0.2) as net:
        client = Client.login(net.gateway_url, net.rpc_url, net.requester.key, net.market_address)
        model = client.upload_model(files["model"], calibration=dict(np.load(files["calibration"])))
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def one_job() -> None:
            started = time.monotonic()
            try:
                job = client.submit(model, feeds, redundancy=redundancy)
                job.wait(timeout=600, poll_interval=0.3)
                job.result(verify=True)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                return
            with lock:
                latencies.append(time.monotonic() - started)

        started = time.monotonic()
        threads = [threading.Thread(target=one_job) for _ in range(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    return {"workers": workers, "batch": batch, "done": len(latencies), "errors": errors,
            "jobs_per_min": 60 * len(latencies) / elapsed, "median_s": statistics.median(latencies) if latencies else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8, help="jobs submitted together per configuration")
    parser.add_argument("--redundancy", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="only 5 workers, batch 1 and 64")
    args = parser.parse_args()
    configs = CONFIGS[:2] if args.quick else CONFIGS
    rows = [run_config(w, b, args.jobs, args.redundancy) for w, b in configs]
    ref = rows[0]
    print(f"\nend-to-end on anvil, worker processes, digits CNN, redundancy {args.redundancy}, {args.jobs} jobs submitted together")
    print(f"{'workers':>7} {'batch':>5} {'done':>6} {'jobs/min':>9} {'x ref':>6} {'median s':>9} {'x ref':>6}")
    for row in rows:
        print(f"{row['workers']:>7} {row['batch']:>5} {row['done']:>3}/{args.jobs:<2} {row['jobs_per_min']:>9.1f} "
              f"{row['jobs_per_min'] / ref['jobs_per_min']:>6.2f} {row['median_s']:>9.2f} {row['median_s'] / ref['median_s']:>6.2f}")
        for error in row["errors"][:3]:
            print(f"        error: {error}")


if __name__ == "__main__":
    main()
