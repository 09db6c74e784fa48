"""A pure-Python model of InferenceMarket's rules, step for step (tests/contracts/test_model.py proves it
equal to the contract on random traces). It lets the agent simulation play thousands of jobs in seconds.

Every method takes the caller, the value sent and the block context (number, timestamp) explicitly, raises
ModelError with the contract's custom error name, and changes nothing when it raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from eth_abi import encode as abi_encode
from eth_utils import keccak

from contracts.binding import DEFAULT_PARAMS, JobStatus, make_commitment, to_bytes32

BPS = 10_000
COMMITTED, REVEALED = 2, 3
WRONG, SILENT = 1, 2


class ModelError(Exception):
    def __init__(self, name: str, *args):
        super().__init__(name, *args)
        self.error_name = name


@dataclass
class WorkerState:
    stake: int = 0
    unbond_at: int = 0
    active_slot: int = 0
    id: int = 0
    reward: int = 0
    open_jobs: int = 0


@dataclass
class JobState:
    requester: str
    fee: int
    redundancy: int
    seed_block: int
    round: int = 1
    status: JobStatus = JobStatus.SUBMITTED
    target: int = 0
    commit_deadline: int = 0
    seats: list[int] = field(default_factory=list)  # worker ids, all rounds
    round_start: int = 0
    committed: int = 0
    revealed: int = 0
    lead_count: int = 0
    candidate: bytes = b"\0" * 32
    result_hash: bytes | None = None


@dataclass
class Slash:
    job_id: int
    worker: str
    amount: int
    reason: int


class MarketModel:
    def __init__(self, params: dict | None = None, dust_sink: str = "sink"):
        self.p = {**DEFAULT_PARAMS, **(params or {})}
        self.dust_sink = dust_sink
        self.workers: dict[str, WorkerState] = {}
        self.address_of: dict[int, str] = {}
        self.active: list[int] = []
        self.jobs: dict[int, JobState] = {}
        self.tickets: dict[tuple[int, str], tuple[int, int, bytes]] = {}  # (state, round, commitment/result)
        self.pending: dict[str, int] = {}
        self.slashes: list[Slash] = []
        self.balance = 0

    # ---- registry
    def register(self, sender: str, value: int) -> None:
        if value == 0:
            raise ModelError("ZeroValue")
        w = self.workers.get(sender, WorkerState())
        if w.stake + value < self.p["min_stake"]:
            raise ModelError("StakeBelowMinimum")
        w.stake += value
        w.unbond_at = 0
        if w.id == 0:
            w.id = len(self.address_of) + 1
            self.address_of[w.id] = sender
        if w.active_slot == 0:
            self.active.append(w.id)
            w.active_slot = len(self.active)
        self.workers[sender] = w
        self.balance += value

    def request_unbond(self, sender: str, now: int) -> None:
        w = self.workers.get(sender)
        if w is None or w.stake == 0:
            raise ModelError("NotRegistered")
        if w.unbond_at:
            raise ModelError("AlreadyUnbonding")
        w.unbond_at = now
        self._deactivate(w)

    def withdraw_stake(self, sender: str, now: int) -> int:
        w = self.workers.get(sender)
        if w is None or w.unbond_at == 0:
            raise ModelError("NotUnbonding")
        if now < w.unbond_at + self.p["unbonding_period"]:
            raise ModelError("UnbondingNotFinished")
        if w.open_jobs:
            raise ModelError("StakeLocked")
        amount, w.stake, w.unbond_at = w.stake, 0, 0
        self.balance -= amount
        return amount

    # ---- jobs
    def submit(self, sender: str, value: int, redundancy: int, block_number: int) -> int:
        if value == 0:
            raise ModelError("ZeroValue")
        if redundancy == 0:
            raise ModelError("InvalidRedundancy")
        if redundancy > len(self.active):
            raise ModelError("NotEnoughWorkers")
        job_id = len(self.jobs) + 1
        self.jobs[job_id] = JobState(sender, value, redundancy, block_number + 1, target=redundancy)
        self.balance += value
        return job_id

    def assign(self, job_id: int, block_number: int, now: int, blockhash: Callable[[int], bytes]) -> None:
        job = self._existing(job_id)
        if job.status != JobStatus.SUBMITTED:
            raise ModelError("WrongStatus")
        if block_number <= job.seed_block:
            raise ModelError("SeedNotReady")
        if block_number - job.seed_block > 256:
            job.seed_block = block_number + 1
            return
        seed_hash = blockhash(job.seed_block)
        prior = list(job.seats)
        excluded = sum(1 for i in prior if self.workers[self.address_of[i]].active_slot)
        available = len(self.active) - excluded
        size = job.target
        if available < job.target:
            if job.round == 1 or available < self.quorum(job.target):
                self._close(job_id, job, finalized=False)
                return
            size = available
        seed = int.from_bytes(keccak(abi_encode(["bytes32", "uint256", "uint8"], [seed_hash, job_id, job.round])))
        drawn = self._draw(seed, size, set(prior))
        for worker_id in drawn:
            self.workers[self.address_of[worker_id]].open_jobs += 1
        job.round_start = len(job.seats)
        job.seats.extend(drawn)
        job.status = JobStatus.COMMITTING
        job.commit_deadline = now + self.p["commit_window"]

    def commit(self, sender: str, job_id: int, commitment: bytes, now: int) -> None:
        job = self._existing(job_id)
        ticket = self.tickets.get((job_id, sender))
        if ticket is not None and ticket[1] != job.round:
            raise ModelError("NotAssigned")
        if ticket is not None:
            raise ModelError("AlreadyCommitted")
        if not self._in_current_round(job, sender):
            raise ModelError("NotAssigned")
        if job.status != JobStatus.COMMITTING:
            raise ModelError("WrongStatus")
        if now > job.commit_deadline:
            raise ModelError("CommitTooLate")
        self.tickets[(job_id, sender)] = (COMMITTED, job.round, bytes(commitment))
        job.committed += 1
        if job.committed == len(job.seats) - job.round_start:
            job.status = JobStatus.REVEALING

    def reveal(self, sender: str, job_id: int, result: bytes, salt: bytes, now: int) -> None:
        job = self._existing(job_id)
        if not job.status.is_open or job.status == JobStatus.SUBMITTED:
            raise ModelError("WrongStatus")
        ticket = self.tickets.get((job_id, sender))
        if ticket is None:
            raise ModelError("NotCommitted" if self._in_current_round(job, sender) else "NotAssigned")
        if ticket[1] != job.round:
            raise ModelError("NotAssigned")
        if ticket[0] == REVEALED:
            raise ModelError("AlreadyRevealed")
        if job.status == JobStatus.COMMITTING and now <= job.commit_deadline:
            raise ModelError("RevealTooEarly")
        if now > job.commit_deadline + self.p["reveal_window"]:
            raise ModelError("RevealTooLate")
        if make_commitment(job_id, result, salt, sender)[4:] != ticket[2][4:]:  # the contract keeps 224 bits
            raise ModelError("RevealMismatch")
        result = to_bytes32(result)
        self.tickets[(job_id, sender)] = (REVEALED, job.round, result)
        job.revealed += 1
        if job.lead_count == 0:
            job.candidate, job.lead_count = result, 1
        elif job.candidate == result:
            job.lead_count += 1
        else:
            job.lead_count -= 1

    def finalize(self, job_id: int, block_number: int, now: int) -> None:
        job = self._existing(job_id)
        if job.status not in (JobStatus.COMMITTING, JobStatus.REVEALING):
            raise ModelError("WrongStatus")
        size = len(job.seats) - job.round_start
        if job.revealed < size and now <= job.commit_deadline + self.p["reveal_window"]:
            raise ModelError("FinalizeTooEarly")
        if job.round == 1:
            decided = job.lead_count == size
        else:
            votes = sum(1 for i in job.seats[job.round_start:]
                        if self.tickets.get((job_id, self.address_of[i]), (0, 0, b""))[0] == REVEALED
                        and self.tickets[(job_id, self.address_of[i])][2] == job.candidate)
            decided = job.revealed > 0 and votes >= self.quorum(job.target)
        if decided:
            self._close(job_id, job, finalized=True)
        elif job.round < self.p["max_rounds"]:
            job.round += 1
            job.target = job.target * self.p["growth"] + 1
            job.status = JobStatus.SUBMITTED
            job.round_start = len(job.seats)
            job.committed = job.revealed = job.lead_count = 0
            job.candidate = b"\0" * 32
            job.seed_block = block_number + 1
        else:
            self._close(job_id, job, finalized=False)

    def withdraw(self, sender: str) -> int:
        amount = self.pending.get(sender, 0) + (self.workers[sender].reward if sender in self.workers else 0)
        if amount == 0:
            raise ModelError("NothingToWithdraw")
        self.pending[sender] = 0
        if sender in self.workers:
            self.workers[sender].reward = 0
        self.balance -= amount
        return amount

    # ---- views
    def pending_withdrawal(self, account: str) -> int:
        return self.pending.get(account, 0) + (self.workers[account].reward if account in self.workers else 0)

    def stake_of(self, account: str) -> int:
        return self.workers[account].stake if account in self.workers else 0

    def assigned_workers(self, job_id: int) -> list[str]:
        job = self.jobs[job_id]
        return [self.address_of[i] for i in job.seats[job.round_start:]]

    def job_status(self, job_id: int, now: int) -> JobStatus:
        job = self.jobs.get(job_id)
        if job is None:
            return JobStatus.NONE
        if job.status == JobStatus.COMMITTING and now > job.commit_deadline:
            return JobStatus.REVEALING
        return job.status

    def owed(self) -> int:
        open_fees = sum(j.fee for j in self.jobs.values() if j.status.is_open)
        return (sum(w.stake + w.reward for w in self.workers.values()) + sum(self.pending.values()) + open_fees)

    # ---- rules shared by the steps above
    def _existing(self, job_id: int) -> JobState:
        if job_id not in self.jobs:
            raise ModelError("UnknownJob")
        return self.jobs[job_id]

    def quorum(self, size: int) -> int:
        return -(-size * self.p["quorum_bps"] // BPS)

    def _in_current_round(self, job: JobState, sender: str) -> bool:
        w = self.workers.get(sender)
        return w is not None and w.id in job.seats[job.round_start:]

    def _draw(self, seed: int, size: int, prior: set[int]) -> list[int]:
        n = len(self.active)
        moved: dict[int, int] = {}
        drawn: list[int] = []
        i = 0
        while len(drawn) < size:
            j = i + int.from_bytes(keccak(abi_encode(["uint256", "uint256"], [seed, i]))) % (n - i)
            position = moved.get(j, j)
            moved[j] = moved.get(i, i)
            i += 1
            worker_id = self.active[position]
            if worker_id not in prior:
                drawn.append(worker_id)
        return drawn

    def _close(self, job_id: int, job: JobState, finalized: bool) -> None:
        winners, slashed = [], 0
        for worker_id in job.seats:
            address = self.address_of[worker_id]
            w = self.workers[address]
            state, _, value = self.tickets.pop((job_id, address), (0, 0, b""))
            w.open_jobs -= 1
            if state != REVEALED:
                bps, reason = self.p["silent_slash_bps"], SILENT
            elif not finalized:
                continue
            elif value == job.candidate:
                winners.append(address)
                continue
            else:
                bps, reason = self.p["slash_bps"], WRONG
            amount = w.stake * bps // BPS
            if amount == 0:
                continue
            w.stake -= amount
            slashed += amount
            self.slashes.append(Slash(job_id, address, amount, reason))
            if w.stake < self.p["min_stake"]:
                self._deactivate(w)
        if finalized:
            job.status = JobStatus.FINALIZED
            job.result_hash = job.candidate
            payout = job.fee + slashed
            share = payout // len(winners)
            for address in winners:
                self.workers[address].reward += share
            self.pending[self.dust_sink] = self.pending.get(self.dust_sink, 0) + payout - share * len(winners)
        else:
            job.status = JobStatus.UNRESOLVED
            self.pending[job.requester] = self.pending.get(job.requester, 0) + job.fee
            self.pending[self.dust_sink] = self.pending.get(self.dust_sink, 0) + slashed

    def _deactivate(self, w: WorkerState) -> None:
        if w.active_slot == 0:
            return
        last = self.active[-1]
        if last != w.id:
            self.active[w.active_slot - 1] = last
            self.workers[self.address_of[last]].active_slot = w.active_slot
        self.active.pop()
        w.active_slot = 0
