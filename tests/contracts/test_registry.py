"""Worker registry: register, top up, unbond, withdraw stake, and the parameters the constructor accepts."""

from __future__ import annotations

import pytest

from contracts import DEFAULT_PARAMS, MarketError, deploy_market
from contracts.chain import EmbeddedChain
from contracts.harness import MarketHarness

MIN = DEFAULT_PARAMS["min_stake"]


def _raises(name: str):
    return pytest.raises(MarketError, match=rf"^{name}: ")


@pytest.mark.parametrize("overrides, name", [
    ({"min_stake": 0}, "minStake"),
    ({"commit_window": 0}, "commitWindow"),
    ({"reveal_window": 0}, "revealWindow"),
    ({"slash_bps": 10_001, "silent_slash_bps": 10_001}, "slashBps"),
    ({"slash_bps": 5_000, "silent_slash_bps": 4_999}, "silentSlashBps"),
    ({"max_rounds": 0}, "maxRounds"),
    ({"quorum_bps": 5_000}, "quorumBps"),
    ({"quorum_bps": 10_001}, "quorumBps"),
    ({"growth": 0}, "growth"),
    ({"unbonding_period": 3 * 1200}, "unbondingPeriod"),  # not longer than 3 rounds of 600 + 600 s
    ({"max_rounds": 6, "unbonding_period": 10**7}, "maxRounds"),  # seat count would overflow
])
def test_constructor_rejects_unsafe_parameters(chain, overrides, name):
    with _raises("InvalidParameter") as info:
        deploy_market(chain.w3, chain.accounts[0], **overrides)
    assert info.value.named_args == {"name": name}


def test_silence_may_cost_exactly_as_much_as_a_wrong_result(chain):
    market = deploy_market(chain.w3, chain.accounts[0], slash_bps=6_000, silent_slash_bps=6_000)
    assert market.functions.silentSlashBps().call() == 6_000


def test_unknown_parameter_name_is_a_type_error(chain):
    with pytest.raises(TypeError, match="min_stak"):
        deploy_market(chain.w3, chain.accounts[0], min_stak=1)


def test_register_makes_a_worker_active_with_its_stake(market, chain):
    worker = market.client(chain.accounts[2])
    worker.register(MIN)
    assert market.requester.is_active(worker.account.address)
    assert market.requester.stake_of(worker.account.address) == MIN
    assert market.requester.active_worker_count() == 1
    (event,) = market.requester.events(names=["WorkerRegistered"])
    assert event.args == {"worker": worker.account.address, "amount": MIN, "stake": MIN}


def test_register_tops_up_without_counting_the_worker_twice(market, chain):
    worker = market.client(chain.accounts[2])
    worker.register(MIN)
    worker.register(MIN // 2)
    assert market.requester.stake_of(worker.account.address) == MIN + MIN // 2
    assert market.requester.active_worker_count() == 1


def test_register_without_ether_reverts(market, chain):
    with _raises("ZeroValue"):
        market.client(chain.accounts[2]).register(0)


def test_register_below_minimum_stake_reverts_with_both_amounts(market, chain):
    with _raises("StakeBelowMinimum") as info:
        market.client(chain.accounts[2]).register(MIN - 1)
    assert info.value.named_args == {"stake": MIN - 1, "minStake": MIN}
    assert "below the minimum stake" in str(info.value)


def test_stake_above_uint96_reverts():
    chain = EmbeddedChain(num_accounts=3, balance_wei=2**97)
    market = MarketHarness(chain)
    with _raises("ValueTooLarge"):
        market.client(chain.accounts[2]).register(2**96)


def test_request_unbond_deactivates_the_worker(market, chain):
    worker = market.client(chain.accounts[2])
    worker.register(MIN)
    worker.request_unbond()
    assert not market.requester.is_active(worker.account.address)
    assert market.requester.active_worker_count() == 0
    assert market.requester.stake_of(worker.account.address) == MIN


def test_request_unbond_by_a_stranger_reverts(market, chain):
    with _raises("NotRegistered"):
        market.client(chain.accounts[2]).request_unbond()


def test_request_unbond_twice_reverts(market, chain):
    worker = market.client(chain.accounts[2])
    worker.register(MIN)
    worker.request_unbond()
    with _raises("AlreadyUnbonding"):
        worker.request_unbond()


def test_register_again_cancels_an_unbond(market, chain):
    worker = market.client(chain.accounts[2])
    worker.register(MIN)
    worker.request_unbond()
    worker.register(1)
    assert market.requester.is_active(worker.account.address)
    with _raises("NotUnbonding"):
        worker.withdraw_stake()


def test_withdraw_stake_without_unbonding_reverts(market, chain):
    worker = market.client(chain.accounts[2])
    worker.register(MIN)
    with _raises("NotUnbonding"):
        worker.withdraw_stake()


def test_withdraw_stake_before_the_unbonding_period_ends_reverts(market, chain):
    worker = market.client(chain.accounts[2])
    worker.register(MIN)
    worker.request_unbond()
    chain.time_travel(DEFAULT_PARAMS["unbonding_period"] - 100)
    with _raises("UnbondingNotFinished"):
        worker.withdraw_stake()


def test_withdraw_stake_after_the_unbonding_period_returns_everything(market, chain):
    worker = market.client(chain.accounts[2])
    address = worker.account.address
    worker.register(MIN)
    worker.request_unbond()
    chain.time_travel(DEFAULT_PARAMS["unbonding_period"] + 1)
    before = chain.w3.eth.get_balance(address)
    receipt = worker.withdraw_stake()
    gas_cost = receipt.gas_used * chain.w3.eth.get_transaction(receipt.tx_hash)["gasPrice"]
    assert chain.w3.eth.get_balance(address) == before + MIN - gas_cost
    assert market.requester.stake_of(address) == 0
    assert market.balance() == market.owed() == 0
