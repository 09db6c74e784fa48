"""Gateway throughput on a real uvicorn server over loopback: blob upload and (re-hashed) download, and
SIWE logins per second.

    .venv/bin/python scripts/bench_gateway.py [--sizes 1,16,64] [--logins 20]

Each blob row gives MiB/s for PUT (streamed, hashed, fsynced, renamed) and GET (the gateway re-hashes the
file, the client hashes again), and their ratio to keccak256 of the same bytes in this process: the
floor any content-addressed transfer pays.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MiB = 1 << 20


def best_of(runs: int, action) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,16,64", help="blob sizes in MiB")
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args()

    from eth_account import Account

    from gateway.server import serve_in_thread
    from gateway.settings import GatewaySettings
    from sdk import GatewayClient
    from verifier.encoding import keccak_hex

    sizes = [int(s) for s in args.sizes.split(",")]
    settings = GatewaySettings(port=0, data_dir=Path(tempfile.mkdtemp()), chain_id=31337,
                               max_blob_bytes=max(sizes) * MiB, quota_bytes_per_address=10 * sum(sizes) * MiB)
    with serve_in_thread(settings) as server:
        client = GatewayClient(server.url)
        client.login(Account.create())
        print(f"{'size MiB':>9} {'keccak MiB/s':>13} {'PUT MiB/s':>10} {'GET MiB/s':>10} {'PUT/keccak':>11} {'GET/keccak':>11}")
        for size in sizes:
            data = os.urandom(size * MiB)
            reference = best_of(3, lambda: keccak_hex(data))
            blob_hash = keccak_hex(data)
            put = best_of(1, lambda: client.put_blob(data))  # later PUTs of the same bytes skip the rename
            get = best_of(3, lambda: client.get_blob(blob_hash))
            print(f"{size:>9} {size / reference:>13.0f} {size / put:>10.0f} {size / get:>10.0f} "
                  f"{reference / put:>11.2f} {reference / get:>11.2f}")
        start = time.perf_counter()
        for _ in range(args.logins):
            GatewayClient(server.url).login(Account.create())
        elapsed = time.perf_counter() - start
        print(f"\nSIWE logins (nonce + sign + verify + token): {args.logins / elapsed:.1f}/s, "
              f"{1000 * elapsed / args.logins:.1f} ms each")


if __name__ == "__main__":
    main()
