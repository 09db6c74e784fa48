"""Contract participants that misbehave on receiving ether: they cannot block others, nor get paid twice."""

from __future__ import annotations

import json
import os

import pytest

from contracts import MarketError, make_commitment
from contracts.artifact import TEST_ACTORS
from contracts.binding import _Sender, market_contract
from contracts.errors import decode_revert

TRUTH = "0x" + "5a" * 32
FEE = 3 * 10**17
ACCEPT, REJECT, REENTER = 0, 1, 2


class ProxyWorker:
    """A worker that is a contract (tests/contracts/sol/TestActors.sol), driven by an EOA through exec()."""

    def __init__(self, w3, market_address, owner):
        artifact = json.loads(TEST_ACTORS.artifact.read_text())
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        self.sender = _Sender(w3, owner)
        receipt = self.sender.send({"data": factory.constructor().data_in_transaction, "value": 0})
        self.address = w3.eth.get_transaction_receipt(receipt.tx_hash)["contractAddress"]
        self.proxy = w3.eth.contract(address=self.address, abi=artifact["abi"])
        self.market = market_contract(w3, market_address)

    def call(self, fn_name, *args, value=0):
        inner = self.market.encode_abi(fn_name, args=list(args))
        data = self.proxy.encode_abi("exec", args=[self.market.address, inner])
        return self.sender.send({"to": self.address, "value": value, "data": data})

    def set_mode(self, mode):
        self.sender.send({"to": self.address, "value": 0, "data": self.proxy.encode_abi("setMode", args=[mode])})


@pytest.fixture
def job_with_proxy(market, chain):
    """A finalized job whose three workers are two EOAs and one contract."""
    proxy = ProxyWorker(chain.w3, market.address, chain.accounts[5])
    proxy.call("register", value=market.params["min_stake"])
    market.add_workers(chain.accounts[2:4])
    market.known_accounts.add(proxy.address)
    job_id = market.submit(3, FEE)
    market.assign(job_id)
    salts = {a: os.urandom(32) for a in market.requester.assigned_workers(job_id)}
    assert proxy.address in salts
    for address, salt in salts.items():
        commitment = make_commitment(job_id, TRUTH, salt, address)
        if address == proxy.address:
            proxy.call("commit", job_id, commitment)
        else:
            market.workers[address].commit(job_id, commitment)
    for address, salt in salts.items():
        args = (job_id, bytes.fromhex(TRUTH[2:]), salt)
        proxy.call("reveal", *args) if address == proxy.address else market.workers[address].reveal(*args)
    return market, job_id, proxy


def test_worker_contract_that_refuses_ether_cannot_block_finalize_or_other_withdrawals(job_with_proxy, chain):
    market, job_id, proxy = job_with_proxy
    proxy.set_mode(REJECT)
    market.requester.finalize(job_id)
    assert market.requester.result_of(job_id) == TRUTH
    for worker in market.workers.values():
        worker.withdraw()
        assert market.requester.pending_withdrawal(worker.account.address) == 0
    with pytest.raises(MarketError) as refused:
        proxy.call("withdraw")
    assert refused.value.error_name == "TransferFailed"
    assert market.requester.pending_withdrawal(proxy.address) == FEE // 3  # kept for a later attempt
    assert market.balance() == market.owed()


def test_reentrant_withdraw_pays_once(job_with_proxy, chain):
    market, job_id, proxy = job_with_proxy
    market.requester.finalize(job_id)
    proxy.set_mode(REENTER)
    owed = market.requester.pending_withdrawal(proxy.address)
    before = chain.w3.eth.get_balance(proxy.address)
    proxy.call("withdraw")
    assert proxy.proxy.functions.reentered().call() is True
    assert proxy.proxy.functions.reentryOk().call() is False
    refused = decode_revert(proxy.proxy.functions.reentryError().call())
    assert refused.error_name == "ReentrancyGuardReentrantCall"
    assert chain.w3.eth.get_balance(proxy.address) == before + owed
    assert market.balance() == market.owed()
