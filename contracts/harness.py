"""Drive a market through whole jobs with honest, lying and silent workers.

Shared by the contract tests, the agent simulation and scripts/bench_gas.py. It works on any chain object
with `w3`, `accounts`, `mine(n)` and `time_travel(seconds)`: the embedded py-evm chain or anvil.

Behaviours: "honest" reveals the true hash, "liar" reveals the hash all liars agreed on, "silent" never
commits, "no-reveal" commits and then never reveals (e.g. it crashed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from eth_account.signers.local import LocalAccount

from contracts.binding import (
    DEFAULT_PARAMS,
    JobStatus,
    MarketClient,
    TxReceipt,
    deploy_market,
    make_commitment,
    market_contract,
)

HONEST, LIAR, SILENT, NO_REVEAL = "honest", "liar", "silent", "no-reveal"
LIE = "0x" + "de" * 32


@dataclass
class JobRun:
    job_id: int
    rounds: int = 0
    receipts: list[tuple[str, TxReceipt]] = field(default_factory=list)

    @property
    def gas(self) -> int:
        return sum(r.gas_used for _, r in self.receipts)


class MarketHarness:
    def __init__(self, chain, params: dict | None = None, deployer: LocalAccount | None = None,
                 requester: LocalAccount | None = None, market_address: str | None = None):
        """Deploy a market with `params`, or drive the one at `market_address` (deployed with `params`)."""
        self.chain = chain
        self.w3 = chain.w3
        self.params = {**DEFAULT_PARAMS, **(params or {})}
        self.deployer = deployer or chain.accounts[0]
        if market_address is None:
            self.market = deploy_market(self.w3, self.deployer, **(params or {}))
        else:
            self.market = market_contract(self.w3, market_address)
        self.address = self.market.address
        self.requester = self.client(requester or chain.accounts[1])
        self.workers: dict[str, MarketClient] = {}
        self.known_accounts: set[str] = {self.deployer.address, self.requester.account.address}

    def client(self, account: LocalAccount) -> MarketClient:
        self.known_accounts = getattr(self, "known_accounts", set()) | {account.address}
        return MarketClient(self.w3, self.address, account)

    def adopt_workers(self, accounts: list[LocalAccount]) -> None:
        """Drive workers that registered earlier (e.g. before a chain snapshot)."""
        for account in accounts:
            self.workers[account.address] = self.client(account)

    def add_workers(self, accounts: list[LocalAccount], stake: int | None = None) -> list[MarketClient]:
        clients = []
        for account in accounts:
            client = self.client(account)
            client.register(stake or self.params["min_stake"])
            self.workers[account.address] = client
            clients.append(client)
        return clients

    def submit(self, redundancy: int = 3, fee: int = 10**17, requester: MarketClient | None = None) -> int:
        return (requester or self.requester).submit_job(os.urandom(32), os.urandom(32), redundancy, fee)

    def assign(self, job_id: int, caller: MarketClient | None = None) -> TxReceipt | None:
        """Mine past the seed block and draw the round; returns None when the job closed instead."""
        caller = caller or self.requester
        while not caller.can_assign(job_id):
            if caller.job_status(job_id) != JobStatus.SUBMITTED:
                raise AssertionError(f"job {job_id} is {caller.job_status(job_id).name}, cannot assign")
            self.chain.mine()
        receipt = caller.assign(job_id)
        return receipt

    def play_round(self, job_id: int, truth: str, behaviour: Callable[[str, list[str]], str],
                   run: JobRun | None = None) -> JobRun:
        """Assign, commit, reveal and finalize one round; each worker acts by `behaviour(address, assigned)`
        (assigned: the workers of this round, in draw order)."""
        run = run or JobRun(job_id)
        receipt = self.assign(job_id)
        run.receipts.append(("assign", receipt))
        if self.requester.job_status(job_id) == JobStatus.UNRESOLVED:
            return run
        run.rounds += 1
        assigned = self.requester.assigned_workers(job_id)
        acts = {address: behaviour(address, assigned) for address in assigned}
        salts = {}
        for address in assigned:
            if acts[address] == SILENT:
                continue
            salts[address] = os.urandom(32)
            answer = LIE if acts[address] == LIAR else truth
            commitment = make_commitment(job_id, answer, salts[address], address)
            run.receipts.append(("commit", self.workers[address].commit(job_id, commitment)))
        job = self.requester.get_job(job_id)
        if job.committed < job.round_size:
            self._pass(job.commit_deadline)
        for address, salt in salts.items():
            if acts[address] == NO_REVEAL:
                continue
            answer = LIE if acts[address] == LIAR else truth
            run.receipts.append(("reveal", self.workers[address].reveal(job_id, answer, salt)))
        job = self.requester.get_job(job_id)
        if job.revealed < job.round_size:
            self._pass(job.reveal_deadline)
        run.receipts.append(("finalize", self.requester.finalize(job_id)))
        return run

    def play(self, job_id: int, truth: str, behaviour: Callable[[str, list[str]], str] = lambda *_: HONEST,
             max_rounds: int = 16) -> JobRun:
        """Play rounds until the job is finalized or unresolved."""
        run = JobRun(job_id)
        for _ in range(max_rounds):
            self.play_round(job_id, truth, behaviour, run)
            if not self.requester.job_status(job_id).is_open:
                return run
        raise AssertionError(f"job {job_id} still open after {max_rounds} rounds")

    def _pass(self, deadline: int) -> None:
        now = self.w3.eth.get_block("latest")["timestamp"]
        if now <= deadline:
            self.chain.time_travel(deadline - now + 1)

    # ---- accounting
    def owed(self) -> int:
        """Σ stakes + Σ pending withdrawals + Σ fees of open jobs, over every account this harness knows."""
        client = self.requester
        total = sum(client.stake_of(a) + client.pending_withdrawal(a) for a in self.known_accounts)
        # jobs are few in tests; a deployment with many jobs would sum JobSubmitted events instead
        for job_id in range(1, client.job_count() + 1):
            job = client.get_job(job_id)
            if job.status.is_open:
                total += job.fee
        return total

    def balance(self) -> int:
        return self.w3.eth.get_balance(self.address)
