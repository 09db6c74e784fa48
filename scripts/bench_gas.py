#!/usr/bin/env python3
"""Gas of the InferenceMarket: per call and per job, and `assign` against the number of registered workers.

    scripts/bench_gas.py            # embedded py-evm chain
    scripts/bench_gas.py --quick    # assign measured with 10 and 100 workers only

Every transaction's gas includes its 21,000 base. "steady" = the workers have been paid before (their
reward slot is already non-zero) and the job counter exists; "first" = brand-new workers on a new market.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.chain import EmbeddedChain  # noqa: E402
from contracts.harness import HONEST, LIAR, MarketHarness  # noqa: E402

TRUTH = "0x" + "5a" * 32
TARGET_HONEST_K3 = 600_000  # issue target, every transaction's base included
STRETCH_HONEST_K3 = 450_000


def _per_call(run) -> dict[str, list[int]]:
    calls = defaultdict(list)
    for name, receipt in run.receipts:
        calls[name].append(receipt.gas_used)
    return calls


def honest_job(market: MarketHarness) -> tuple[int, dict[str, list[int]]]:
    job_id = market.submit(3)
    submit_gas = market.requester.last_receipt.gas_used
    run = market.play(job_id, TRUTH)
    calls = _per_call(run)
    calls["submitJob"] = [submit_gas]
    return submit_gas + run.gas, calls


def liar_job(market: MarketHarness) -> tuple[int, dict[str, list[int]], int]:
    job_id = market.submit(3)
    submit_gas = market.requester.last_receipt.gas_used
    liar: list[str] = []

    def behaviour(address, assigned):
        liar.append(liar[0] if liar else assigned[0])
        return LIAR if address == liar[0] else HONEST

    run = market.play(job_id, TRUTH, behaviour)
    calls = _per_call(run)
    calls["submitJob"] = [submit_gas]
    return submit_gas + run.gas, calls, run.rounds


def assign_gas(counts: list[int]) -> list[tuple[int, int]]:
    chain = EmbeddedChain(num_accounts=2)
    market = MarketHarness(chain)
    rows, registered = [], 0
    for count in counts:
        while registered < count:
            market.add_workers([chain.new_account(10**19)])
            registered += 1
        job_id = market.submit(3)
        rows.append((count, market.assign(job_id).gas_used))
    return rows


def _fmt(values: list[int]) -> str:
    if len(set(values)) == 1:
        return f"{values[0]:,}" + (f" × {len(values)}" if len(values) > 1 else "")
    return f"{min(values):,}–{max(values):,} ({len(values)} calls, Σ {sum(values):,})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1,000-worker assign measurement")
    args = parser.parse_args(argv)
    started = time.monotonic()

    chain = EmbeddedChain(num_accounts=20)
    market = MarketHarness(chain)
    market.add_workers(chain.accounts[2:5])
    first_total, _ = honest_job(market)
    steady_total, steady_calls = honest_job(market)

    wide_chain = EmbeddedChain(num_accounts=20)
    wide = MarketHarness(wide_chain)
    wide.add_workers(wide_chain.accounts[2:18])
    liar_first, _, _ = liar_job(wide)  # 3 + 13 = all 16 workers: afterwards every worker has been paid once
    liar_total, liar_calls, rounds = liar_job(wide)

    print("## Gas per call (embedded py-evm chain, solc settings of contracts/artifact.py)\n")
    print("| call | honest k=3 (steady) | k=3, one liar, escalation (steady) |")
    print("|---|---|---|")
    for name in ("submitJob", "assign", "commit", "reveal", "finalize"):
        print(f"| {name} | {_fmt(steady_calls.get(name, [0]))} | {_fmt(liar_calls.get(name, [0]))} |")
    print(f"| **total per job** | **{steady_total:,}** | **{liar_total:,}** ({rounds} rounds) |")
    print(f"| total, first job of new workers | {first_total:,} | {liar_first:,} |")
    print()
    print(f"honest k=3 vs target {TARGET_HONEST_K3:,}: {steady_total / TARGET_HONEST_K3:.3f} "
          f"(stretch {STRETCH_HONEST_K3:,}: {steady_total / STRETCH_HONEST_K3:.3f})")

    counts = [10, 100] if args.quick else [10, 100, 1000]
    rows = assign_gas(counts)
    print("\n## assign (k = 3) against registered workers\n")
    print("| registered workers | assign gas |")
    print("|---|---|")
    for count, gas in rows:
        print(f"| {count:,} | {gas:,} |")
    print(f"\nassign gas ratio {rows[-1][0]:,} vs {rows[0][0]:,} workers: {rows[-1][1] / rows[0][1]:.3f}")
    print(f"\n(measured in {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
