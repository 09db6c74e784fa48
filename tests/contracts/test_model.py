"""The pure-Python model (contracts/model.py) takes the same decisions as the contract on random traces."""

from __future__ import annotations

import os
import random

import pytest

from contracts import JobStatus, MarketError, make_commitment
from contracts.chain import EmbeddedChain
from contracts.harness import MarketHarness
from contracts.model import MarketModel, ModelError

TRUTH, LIE = b"\x5a" * 32, b"\xde" * 32
WORKERS = 8


class Mirror:
    """Applies each action to the chain and to the model, and checks they agree."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.chain = EmbeddedChain(num_accounts=WORKERS + 2)
        params = {"min_stake": 10**17, "growth": 1}  # rounds of k, k+1, k+2: wide rounds that 8 workers can staff
        self.market = MarketHarness(self.chain, params=params)
        self.model = MarketModel(params, dust_sink=self.market.deployer.address)
        self.clients = [self.market.client(a) for a in self.chain.accounts[2:]]
        self.secrets: dict[tuple[int, str], tuple[bytes, bytes]] = {}

    def context(self, receipt=None):
        block = self.chain.w3.eth.get_block(receipt.block_number if receipt else "pending")
        return block["number"], block["timestamp"]

    def apply(self, chain_call, model_call):
        try:
            receipt = chain_call()
            if isinstance(receipt, int):  # submit_job returns the id; its receipt is kept on the client
                receipt = self.last_client.last_receipt
        except MarketError as exc:
            number, now = self.context()
            with pytest.raises(ModelError) as info:
                model_call(number, now)
            assert info.value.error_name == exc.error_name, f"chain: {exc}; model: {info.value.error_name}"
            return False
        number, now = self.context(receipt)
        model_call(number, now)
        assert self.chain.w3.eth.get_balance(self.market.address) == self.model.balance
        return True

    # ---- actions
    def step(self):
        rng, model = self.rng, self.model
        client = self.last_client = rng.choice(self.clients)
        me = client.account.address
        open_jobs = [j for j, job in model.jobs.items() if job.status.is_open]
        job_id = rng.choice(open_jobs) if open_jobs and rng.random() < 0.9 else rng.randint(1, len(model.jobs) + 1)
        action = rng.choices(
            ["register", "unbond", "withdraw_stake", "submit", "assign", "commit", "reveal", "finalize",
             "travel", "mine", "withdraw"], weights=[2, 0.5, 0.5, 1 if len(open_jobs) < 3 else 0.1, 3, 6, 6, 3, 2, 0.5, 1])[0]
        if not open_jobs and rng.random() < 0.6:
            action = "submit"
        elif job_id in open_jobs and rng.random() < 0.6:  # mostly move a job along its lifecycle, sometimes wrongly
            job = model.jobs[job_id]
            waiting = [w for w in model.assigned_workers(job_id) if (job_id, w) not in model.tickets]
            committed = [w for w in model.assigned_workers(job_id)
                         if model.tickets.get((job_id, w), (0,))[0] == 2]
            if job.status == JobStatus.SUBMITTED:
                action = "assign" if rng.random() < 0.8 else "mine"
            elif waiting and rng.random() < 0.7:
                action = "commit"
            elif committed and rng.random() < 0.8:
                action = "reveal" if job.status == JobStatus.REVEALING or rng.random() < 0.2 else "travel"
            else:
                action = "finalize" if rng.random() < 0.6 else "travel"
        if action == "register":
            amount = rng.choice([10**17, 5 * 10**16, 1])
            self.apply(lambda: client.register(amount), lambda n, t: model.register(me, amount))
        elif action == "unbond":
            self.apply(client.request_unbond, lambda n, t: model.request_unbond(me, t))
        elif action == "withdraw_stake":
            self.apply(client.withdraw_stake, lambda n, t: model.withdraw_stake(me, t))
        elif action == "submit":
            k = rng.randint(1, 4)
            self.apply(lambda: client.submit_job(os.urandom(32), os.urandom(32), k, 10**16 + 1),
                       lambda n, t: model.submit(me, 10**16 + 1, k, n))
        elif action == "assign":
            blockhash = lambda b: bytes(self.chain.w3.eth.get_block(b)["hash"])  # noqa: E731
            self.apply(lambda: client.assign(job_id), lambda n, t: model.assign(job_id, n, t, blockhash))
        elif action == "commit":
            waiting = [w for w in model.assigned_workers(job_id) if (job_id, w) not in model.tickets] \
                if job_id in model.jobs else []
            if waiting and rng.random() < 0.9:
                me = rng.choice(waiting)
                client = next(c for c in self.clients if c.account.address == me)
            answer, salt = rng.choice([TRUTH, TRUTH, LIE]), os.urandom(32)
            commitment = make_commitment(job_id, answer, salt, me)
            if self.apply(lambda: client.commit(job_id, commitment),
                          lambda n, t: model.commit(me, job_id, commitment, t)):
                self.secrets[(job_id, me)] = (answer, salt)
        elif action == "reveal":
            candidates = [w for (j, w) in self.secrets
                          if j == job_id and self.model.tickets.get((j, w), (0,))[0] == 2]
            if candidates and rng.random() < 0.9:
                me = rng.choice(candidates)
                client = next(c for c in self.clients if c.account.address == me)
            answer, salt = self.secrets.get((job_id, me), (TRUTH, os.urandom(32)))
            self.apply(lambda: client.reveal(job_id, answer, salt), lambda n, t: model.reveal(me, job_id, answer, salt, t))
        elif action == "finalize":
            self.apply(lambda: client.finalize(job_id), lambda n, t: model.finalize(job_id, n, t))
        elif action == "travel":
            self.chain.time_travel(rng.choice([100, 700, 700, 1300, 8 * 24 * 3600]))
        elif action == "mine":
            self.chain.mine(rng.choice([1, 2, 300]))
        else:
            self.apply(client.withdraw, lambda n, t: model.withdraw(me))

    def check_everything(self):
        market, model = self.market.requester, self.model
        now = self.chain.timestamp
        for client in self.clients:
            address = client.account.address
            assert market.stake_of(address) == model.stake_of(address)
            assert market.pending_withdrawal(address) == model.pending_withdrawal(address)
        assert market.active_worker_count() == len(model.active)
        for job_id, job in model.jobs.items():
            assert market.job_status(job_id) == model.job_status(job_id, now)
            assert market.assigned_workers(job_id) == model.assigned_workers(job_id)
            if job.result_hash is not None:
                assert market.result_of(job_id) == "0x" + job.result_hash.hex()
        assert self.market.balance() == model.balance == model.owed()


@pytest.mark.parametrize("seed", [1, 2])
def test_model_and_contract_agree_on_a_random_trace(seed):
    mirror = Mirror(seed)
    for client in mirror.clients:
        mirror.apply(lambda: client.register(10**17), lambda n, t, a=client.account.address: mirror.model.register(a, 10**17))
    for _ in range(150):
        mirror.step()
    mirror.check_everything()
    closed = [j for j in mirror.model.jobs.values() if not j.status.is_open]
    assert len(closed) >= 2, "trace closed too few jobs to be informative"
