"""Hypothesis state machine: random interleavings of the whole protocol keep the market's invariants.

Invariants: the contract holds exactly Σ stakes + Σ pending withdrawals + Σ fees of open jobs; a withdrawal
pays the pending amount once; no stake exceeds what its worker deposited; only workers that revealed another
hash (reason 1) or did not reveal (reason 2) are slashed, and everyone who revealed the result is paid; a
finalized result is the honest hash whenever honest workers are a majority of the deciding round.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from contracts import JobStatus, MarketError, make_commitment
from contracts.chain import EmbeddedChain
from contracts.harness import MarketHarness

TRUTH, LIE = "0x" + "5a" * 32, "0x" + "de" * 32
WORKERS = 7
MIN = 10**17
behaviours = st.lists(st.sampled_from(["honest", "honest", "liar", "silent"]), min_size=WORKERS, max_size=WORKERS)


class MarketMachine(RuleBasedStateMachine):
    @initialize(kinds=behaviours)
    def start(self, kinds):
        self.chain = EmbeddedChain(num_accounts=WORKERS + 2)
        self.market = MarketHarness(self.chain, params={"min_stake": MIN, "growth": 1})
        accounts = self.chain.accounts[2:]
        self.clients = [self.market.client(a) for a in accounts]
        self.by_address = {c.account.address: c for c in self.clients}
        self.deployer_client = self.market.client(self.market.deployer)  # the dust sink
        self.kind = {a.address: k for a, k in zip(accounts, kinds)}
        self.deposited = {a.address: 0 for a in accounts}
        self.revealed: dict[tuple[int, str], str] = {}
        self.salts: dict[tuple[int, str], bytes] = {}
        self.money_moved = True
        for client in self.clients[:5]:
            self._register(client, MIN)

    # ---- helpers
    def _register(self, client, amount):
        client.register(amount)
        self.deposited[client.account.address] += amount

    def _jobs(self):
        return range(1, self.market.requester.job_count() + 1)

    def _answer(self, address):
        return LIE if self.kind[address] == "liar" else TRUTH

    # ---- rules
    @rule(i=st.integers(0, WORKERS - 1), amount=st.sampled_from([MIN, MIN // 2]))
    def register(self, i, amount):
        try:
            self._register(self.clients[i], amount)
        except MarketError as exc:
            assert exc.error_name == "StakeBelowMinimum"

    @rule(i=st.integers(0, WORKERS - 1))
    def unbond_or_withdraw_stake(self, i):
        client = self.clients[i]
        try:
            if self.market.requester.worker_info(client.account.address)["unbond_at"]:
                client.withdraw_stake()
                self.deposited[client.account.address] = 0
                self.money_moved = True
            else:
                client.request_unbond()
        except MarketError as exc:
            assert exc.error_name in {"NotRegistered", "UnbondingNotFinished", "StakeLocked"}

    @rule(k=st.integers(1, 3))
    def submit(self, k):
        try:
            self.market.submit(k, 10**16 + 1)
        except MarketError as exc:
            assert exc.error_name == "NotEnoughWorkers"

    @rule(job=st.integers(1, 3))
    def assign(self, job):
        if job in self._jobs() and self.market.requester.job_status(job) == JobStatus.SUBMITTED:
            self.chain.mine()
            self.market.requester.assign(job)
            self.money_moved = True  # may have closed the job for lack of workers

    def _seat(self, job, seat):
        """The worker in seat `seat` (modulo the round size) of the job's current round, or None."""
        if job not in self._jobs():
            return None
        assigned = self.market.requester.assigned_workers(job)
        return assigned[seat % len(assigned)] if assigned else None

    @rule(job=st.integers(1, 3), seat=st.integers(0, 20))
    def commit(self, job, seat):
        address = self._seat(job, seat)
        if address is None or self.kind[address] == "silent":
            return
        salt = os.urandom(32)
        try:
            self.by_address[address].commit(job, make_commitment(job, self._answer(address), salt, address))
            self.salts[(job, address)] = salt
        except MarketError as exc:
            assert exc.error_name in {"AlreadyCommitted", "CommitTooLate", "WrongStatus", "NotAssigned"}

    @rule(job=st.integers(1, 3), seat=st.integers(0, 20))
    def reveal(self, job, seat):
        address = self._seat(job, seat)
        if address is None:
            return
        salt = self.salts.get((job, address))
        if salt is None:
            return
        try:
            self.by_address[address].reveal(job, self._answer(address), salt)
            self.revealed[(job, address)] = self._answer(address)
        except MarketError as exc:
            assert exc.error_name in {"RevealTooEarly", "RevealTooLate", "AlreadyRevealed", "WrongStatus"}

    @rule(job=st.integers(1, 3))
    def advance(self, job):
        """The next natural step of the oldest open job (or `job`): assign, commit, reveal, finalize."""
        open_jobs = [j for j in self._jobs() if self.market.requester.job_status(j).is_open]
        if not open_jobs:
            return self.submit(3)
        job = job if job in open_jobs else open_jobs[0]
        status = self.market.requester.job_status(job)
        if status == JobStatus.SUBMITTED:
            return self.assign(job)
        for seat in range(len(self.market.requester.assigned_workers(job))):
            (self.commit if status == JobStatus.COMMITTING else self.reveal)(job, seat)
        if status == JobStatus.REVEALING or self.market.requester.job_status(job) == status:
            self.time_passes(1300)
            self.finalize(job)

    @rule(job=st.integers(1, 3))
    def advance_more(self, job):  # a second rule, so that half-random runs still reach the end of jobs
        self.advance(job)

    @rule(job=st.integers(1, 3))
    def advance_again(self, job):
        self.advance(job)

    @rule(seconds=st.sampled_from([300, 700, 1300]))
    def time_passes(self, seconds):
        self.chain.time_travel(seconds)

    @rule(job=st.integers(1, 3))
    def finalize(self, job):
        if job not in self._jobs():
            return
        requester = self.market.requester
        try:
            requester.finalize(job)
        except MarketError as exc:
            assert exc.error_name in {"WrongStatus", "FinalizeTooEarly"}
            return
        self.money_moved = True
        status = requester.job_status(job)
        event(f"finalize -> {status.name}")
        if status == JobStatus.FINALIZED:
            self._check_settlement(job)

    @rule(i=st.integers(0, WORKERS + 1))
    def withdraw(self, i):
        account = self.chain.accounts[i]
        client = self.by_address.get(account.address) or {
            c.account.address: c for c in (self.market.requester, self.deployer_client)}[account.address]
        owed = self.market.requester.pending_withdrawal(account.address)
        before = self.chain.w3.eth.get_balance(account.address)
        try:
            receipt = client.withdraw()
        except MarketError as exc:
            assert exc.error_name == "NothingToWithdraw" and owed == 0
            return
        gas = receipt.gas_used * self.chain.w3.eth.get_transaction(receipt.tx_hash)["gasPrice"]
        assert self.chain.w3.eth.get_balance(account.address) == before + owed - gas  # paid once, in full
        assert self.market.requester.pending_withdrawal(account.address) == 0
        self.money_moved = True

    # ---- checks
    def _check_settlement(self, job):
        requester = self.market.requester
        result = requester.result_of(job)
        deciding = requester.assigned_workers(job)
        honest = sum(1 for a in deciding if self.kind[a] == "honest")
        if honest * 2 > len(deciding):
            assert result == TRUTH
        events = requester.events(job, names=["Slashed", "Rewarded", "WorkerAssigned"])  # one scan: logs are slow
        slashed = {e.args["worker"]: e.args["reason"] for e in events if e.name == "Slashed"}
        rewarded = {e.args["worker"] for e in events if e.name == "Rewarded"}
        everyone = {e.args["worker"] for e in events if e.name == "WorkerAssigned"}
        for worker in everyone:
            revealed = self.revealed.get((job, worker))
            if revealed is None:
                assert slashed.get(worker) == 2, f"silent {worker} not slashed as silent"
            elif revealed == result:
                assert worker not in slashed and worker in rewarded
            else:
                assert slashed.get(worker) == 1 and worker not in rewarded

    @invariant()
    def ether_is_conserved_and_stakes_bounded(self):
        """Checked whenever money may have moved (reading every balance after every step is slow)."""
        if not getattr(self, "money_moved", False):
            return
        assert self.market.balance() == self.market.owed()
        for client in self.clients:
            address = client.account.address
            assert 0 <= self.market.requester.stake_of(address) <= self.deposited[address]
        self.money_moved = False


TestMarketMachine = MarketMachine.TestCase
TestMarketMachine.settings = settings(max_examples=3, stateful_step_count=25, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
def test_market_machine_long_run():
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(MarketMachine, settings=settings(
        max_examples=12, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]))
