#!/usr/bin/env python3
"""Print the probability that a job finalizes a wrong result, or ends Unresolved, under the market's rules.

Exact, no sampling: binomial tails for an unbounded worker pool, hypergeometric (drawing without replacement,
workers of earlier rounds excluded) for a finite pool. The attacker controls a share f of the active workers,
sees every assignment, and plays the strongest strategy for a wrong result: capture a round when it holds
enough seats (all k in round 1, a quorum later), otherwise block it (lie or stay silent) to force the next round.

    scripts/security_table.py                 # the table of docs/protocol.md
    scripts/security_table.py --pool 100 --k 3 --shares 0.1,0.3333333333333333
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from fractions import Fraction
from math import comb
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_SHARES = (Fraction(1, 20), Fraction(1, 10), Fraction(1, 5), Fraction(1, 3))


@dataclass(frozen=True)
class Outcome:
    wrong: float  # a wrong result finalized
    unresolved: float  # no result, fee refunded
    escalated: float  # at least one wide round
    expected_workers: float  # seats per job, all rounds


def round_sizes(k: int, growth: int, max_rounds: int) -> list[int]:
    sizes = [k]
    while len(sizes) < max_rounds:
        sizes.append(growth * sizes[-1] + 1)
    return sizes


def quorum(size: int, quorum_bps: int) -> int:
    return -(-size * quorum_bps // 10_000)


def _draw_pmf(size: int, share: Fraction, pool: int | None, dishonest_left: int, pool_left: int):
    """P(d dishonest among `size` drawn), binomial when pool is None, else hypergeometric."""
    if pool is None:
        return {d: comb(size, d) * share**d * (1 - share) ** (size - d) for d in range(size + 1)}
    total = comb(pool_left, size)
    return {d: Fraction(comb(dishonest_left, d) * comb(pool_left - dishonest_left, size - d), total)
            for d in range(max(0, size - (pool_left - dishonest_left)), min(size, dishonest_left) + 1)}


def analyse(share: Fraction, k: int, growth: int, quorum_bps: int, max_rounds: int,
            pool: int | None = None) -> Outcome:
    """Exact outcome probabilities; with a finite pool a round too big for the workers left is shrunk to all of
    them when a quorum is still reachable, else the job ends Unresolved (as the contract does)."""
    sizes = round_sizes(k, growth, max_rounds)
    dishonest_total = round(share * pool) if pool is not None else 0
    # state: dishonest drawn so far -> probability of reaching this round with it
    states: dict[int, Fraction] = {0: Fraction(1)}
    drawn = 0
    wrong = unresolved = escalated = Fraction(0)
    expected_workers = Fraction(0)
    for index, target in enumerate(sizes):
        first, last = index == 0, index == len(sizes) - 1
        needed = target if first else quorum(target, quorum_bps)
        next_states: dict[int, Fraction] = {}
        for used, p_state in states.items():
            if index == 1:
                escalated += p_state
            size = target
            if pool is not None and pool - drawn < target:
                if first or pool - drawn < needed:
                    unresolved += p_state
                    continue
                size = pool - drawn
            expected_workers += p_state * size
            pmf = _draw_pmf(size, share, pool, dishonest_total - used, (pool or 0) - drawn)
            for d, p in pmf.items():
                p = p_state * p
                if d >= needed:
                    wrong += p  # captured: all of round 1, or a quorum of a later round
                elif (d == 0) if first else (size - d >= needed):
                    pass  # honest result finalized
                elif last:
                    unresolved += p  # blocked in the last round
                else:
                    key = used + d if pool is not None else 0  # only a finite pool remembers who was drawn
                    next_states[key] = next_states.get(key, Fraction(0)) + p
        states = next_states
        drawn += target
    return Outcome(float(wrong), float(unresolved), float(escalated), float(expected_workers))


def _share_label(share: Fraction) -> str:
    return "1/3" if share == Fraction(1, 3) else f"{float(share):g}"


def table(ks: list[int], shares, growth: int, quorum_bps: int, max_rounds: int, pool: int | None) -> str:
    where = "unbounded pool (binomial)" if pool is None else f"pool of {pool} workers (hypergeometric)"
    lines = [f"growth {growth}, quorum {quorum_bps / 100:g}%, maxRounds {max_rounds}, {where}",
             "| k | rounds | dishonest share | P(wrong result) | P(unresolved) | P(escalated) | E[workers] |",
             "|---|---|---|---|---|---|---|"]
    for k in ks:
        sizes = "→".join(str(s) for s in round_sizes(k, growth, max_rounds))
        for share in shares:
            o = analyse(Fraction(share), k, growth, quorum_bps, max_rounds, pool)
            lines.append(f"| {k} | {sizes} | {_share_label(Fraction(share))} | {o.wrong:.3e} | {o.unresolved:.3e} "
                         f"| {o.escalated:.3f} | {o.expected_workers:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from contracts.binding import DEFAULT_PARAMS, DEFAULT_REDUNDANCY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default=f"3,{DEFAULT_REDUNDANCY}", help="first-round sizes, comma separated")
    parser.add_argument("--shares", default=None, help="dishonest shares, comma separated (default 0.05,0.1,0.2,1/3)")
    parser.add_argument("--growth", type=int, default=DEFAULT_PARAMS["growth"])
    parser.add_argument("--quorum-bps", type=int, default=DEFAULT_PARAMS["quorum_bps"])
    parser.add_argument("--max-rounds", type=int, default=DEFAULT_PARAMS["max_rounds"])
    parser.add_argument("--pool", type=int, default=None, help="number of active workers (default: unbounded)")
    args = parser.parse_args(argv)
    shares = DEFAULT_SHARES if args.shares is None else [Fraction(s) for s in args.shares.split(",")]
    ks = [int(k) for k in args.k.split(",")]
    print(table(ks, shares, args.growth, args.quorum_bps, args.max_rounds, args.pool))
    return 0


if __name__ == "__main__":
    sys.exit(main())
