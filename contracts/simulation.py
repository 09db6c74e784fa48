"""Agent simulation of many jobs on the market model (contracts/model.py, proven equal to the contract).

Honest workers reveal the true hash. Dishonest workers form one coalition that sees every assignment and plays
the strategy of scripts/security_table.py: capture a round when it holds enough seats (every dishonest seat
reveals the agreed lie), otherwise block it when honest workers cannot reach the quorum without them, otherwise
behave honestly. Each dishonest worker blocks in its own way: a liar reveals the lie, a silent one never commits,
a copier commits a copy of an honest worker's commitment (useless: the commitment binds its author).
Workers slashed below the minimum stake top up, so the pool keeps its composition.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from eth_utils import keccak, to_checksum_address

from contracts.binding import DEFAULT_PARAMS, JobStatus, make_commitment
from contracts.model import MarketModel, ModelError

HONEST, LIAR, SILENT, COPIER = "honest", "liar", "silent", "copier"
TRUTH, LIE = b"\x5a" * 32, b"\xde" * 32


@dataclass
class SimulationResult:
    jobs: int
    wrong: int = 0
    unresolved: int = 0
    net: dict[str, int] = field(default_factory=dict)  # ether gained (rewards - slashes) per worker
    kind: dict[str, str] = field(default_factory=dict)

    def mean_net(self, honest: bool) -> float:
        values = [v for a, v in self.net.items() if (self.kind[a] == HONEST) == honest]
        return sum(values) / len(values)


def _address(i: int) -> str:
    return to_checksum_address(keccak(b"vinfer-sim-%d" % i)[:20])


def simulate(share: float, jobs: int, pool: int = 60, k: int = 3, params: dict | None = None,
             dishonest_kinds: tuple[str, ...] = (LIAR, SILENT, COPIER), fee: int = 10**17,
             seed: int = 0) -> SimulationResult:
    p = {**DEFAULT_PARAMS, **(params or {})}
    rng = random.Random(seed)
    model = MarketModel(p, dust_sink="sink")
    workers = [_address(i) for i in range(pool)]
    dishonest = round(share * pool)
    kind = {a: (dishonest_kinds[i % len(dishonest_kinds)] if i < dishonest else HONEST) for i, a in enumerate(workers)}
    deposited = {a: p["min_stake"] for a in workers}
    for a in workers:
        model.register(a, p["min_stake"])
    requester = _address(10**6)
    block, now = 1, 1_000_000
    hashes: dict[int, bytes] = {}

    def blockhash(number: int) -> bytes:
        return hashes.setdefault(number, rng.randbytes(32))

    result = SimulationResult(jobs, kind=kind)
    for _ in range(jobs):
        job_id = model.submit(requester, fee, k, block)
        while model.jobs[job_id].status.is_open:
            block = model.jobs[job_id].seed_block + 1
            model.assign(job_id, block, now, blockhash)
            if not model.jobs[job_id].status.is_open:
                break
            _play_round(model, job_id, kind, now)
            now += p["commit_window"] + p["reveal_window"] + 1
            block += 1
            model.finalize(job_id, block, now)
        job = model.jobs[job_id]
        result.wrong += job.status == JobStatus.FINALIZED and job.result_hash == LIE
        result.unresolved += job.status == JobStatus.UNRESOLVED
        for a in workers:  # slashed below the minimum: top up to stay in the pool
            missing = p["min_stake"] - model.workers[a].stake
            if missing > 0:
                model.register(a, missing)
                deposited[a] += missing
    result.net = {a: model.workers[a].stake + model.workers[a].reward - deposited[a] for a in workers}
    return result


def _play_round(model: MarketModel, job_id: int, kind: dict[str, str], now: int) -> None:
    job = model.jobs[job_id]
    seats = model.assigned_workers(job_id)
    bad = [a for a in seats if kind[a] != HONEST]
    needed = len(seats) if job.round == 1 else model.quorum(job.target)
    if len(bad) >= needed:
        plan = {a: LIE for a in bad}  # capture: every dishonest seat reveals the lie
    elif bad and (job.round == 1 or len(seats) - len(bad) < needed):
        plan = {a: kind[a] for a in bad}  # block, each in its own way
    else:
        plan = {a: TRUTH for a in bad}  # cannot win: avoid the slash
    secrets: dict[str, tuple[bytes, bytes]] = {}
    honest_commitments = []
    for a in seats:
        action = plan.get(a, TRUTH)
        if action in (SILENT, COPIER) and not (action == COPIER and honest_commitments):
            continue
        if action == COPIER:
            commitment, secrets[a] = honest_commitments[0]  # copied from the mempool, reveal copied too
        else:
            answer = LIE if action in (LIE, LIAR) else TRUTH
            salt = os.urandom(32)
            commitment, secrets[a] = make_commitment(job_id, answer, salt, a), (answer, salt)
            if kind[a] == HONEST:
                honest_commitments.append((commitment, secrets[a]))
        model.commit(a, job_id, commitment, now)
    reveal_time = now if job.status == JobStatus.REVEALING else now + model.p["commit_window"] + 1
    for a, (answer, salt) in secrets.items():
        try:
            model.reveal(a, job_id, answer, salt, reveal_time)
        except ModelError as exc:
            if exc.error_name != "RevealMismatch":  # only a copier's reveal can fail
                raise
