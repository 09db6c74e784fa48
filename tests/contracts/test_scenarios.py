"""Whole jobs with honest, lying and silent workers, on the embedded chain and on anvil (JSON-RPC)."""

from __future__ import annotations

from contracts import JobStatus
from contracts.harness import HONEST, LIAR, NO_REVEAL, SILENT, MarketHarness

TRUTH = "0x" + "5a" * 32
FEE = 10**17 + 2  # not divisible by 3: leaves dust
MIN_STAKE = 10**18


def _market(chain, workers: int, **params) -> MarketHarness:
    market = MarketHarness(chain, params=params or None)
    market.add_workers(chain.accounts[2:2 + workers])
    return market


def _first_of_round_one(act: str):
    """The first worker drawn in round 1 acts `act`, everyone else is honest."""
    chosen: list[str] = []

    def behaviour(address, assigned):
        if not chosen:
            chosen.append(assigned[0])
        return act if address == chosen[0] else HONEST

    return behaviour, chosen


def _rewards(market, job_id):
    return {e.args["worker"]: e.args["amount"] for e in market.requester.events(job_id, names=["Rewarded"])}


def _slashes(market, job_id):
    return {e.args["worker"]: (e.args["amount"], e.args["reason"])
            for e in market.requester.events(job_id, names=["Slashed"])}


def test_all_honest_job_is_finalized_and_pays_everyone_with_dust_to_the_sink(any_chain):
    market = _market(any_chain, 3)
    sink = market.requester.dust_sink()
    sink_before = market.requester.pending_withdrawal(sink)
    job_id = market.submit(3, FEE)
    market.play(job_id, TRUTH)

    assert market.requester.result_of(job_id) == TRUTH
    rewards = _rewards(market, job_id)
    assert sorted(rewards) == sorted(market.workers)
    assert set(rewards.values()) == {FEE // 3}
    assert market.requester.pending_withdrawal(sink) - sink_before == FEE % 3
    assert _slashes(market, job_id) == {}
    assert market.balance() == market.owed()


def test_one_liar_among_three_escalates_and_is_slashed_while_honest_of_both_rounds_are_paid(any_chain):
    market = _market(any_chain, 16)
    job_id = market.submit(3, FEE)
    behaviour, chosen = _first_of_round_one(LIAR)

    run = market.play(job_id, TRUTH, behaviour)
    liar = chosen[0]
    assert run.rounds == 2
    job = market.requester.get_job(job_id)
    assert job.status == JobStatus.FINALIZED and job.result_hash == TRUTH and job.round == 2

    slashes = _slashes(market, job_id)
    assert slashes == {liar: (MIN_STAKE * market.params["slash_bps"] // 10_000, 1)}
    rewards = _rewards(market, job_id)
    assert sorted(rewards) == sorted(a for a in market.workers if a != liar)  # 2 + 13 honest workers
    assert set(rewards.values()) == {(FEE + slashes[liar][0]) // 15}
    assert market.balance() == market.owed()


def test_silent_worker_escalates_and_loses_at_least_as_much_as_a_liar(any_chain):
    market = _market(any_chain, 16)
    job_id = market.submit(3, FEE)
    behaviour, chosen = _first_of_round_one(SILENT)

    market.play(job_id, TRUTH, behaviour)
    assert market.requester.result_of(job_id) == TRUTH
    amount, reason = _slashes(market, job_id)[chosen[0]]
    assert reason == 2
    assert amount == MIN_STAKE * market.params["silent_slash_bps"] // 10_000
    assert amount >= MIN_STAKE * market.params["slash_bps"] // 10_000
    assert market.balance() == market.owed()


def test_worker_that_commits_but_never_reveals_is_slashed_as_silent(any_chain):
    market = _market(any_chain, 16)
    job_id = market.submit(3, FEE)
    behaviour, chosen = _first_of_round_one(NO_REVEAL)

    market.play(job_id, TRUTH, behaviour)
    assert market.requester.result_of(job_id) == TRUTH
    assert _slashes(market, job_id)[chosen[0]][1] == 2


def test_liars_holding_the_first_round_lose_to_the_wide_round(any_chain):
    market = _market(any_chain, 16)
    job_id = market.submit(3, FEE)
    first_round: list[str] = []

    def behaviour(address, assigned):
        if not first_round:
            first_round.extend(assigned)
        return LIAR if address in first_round[:2] else HONEST

    run = market.play(job_id, TRUTH, behaviour)
    assert run.rounds == 2
    assert market.requester.result_of(job_id) == TRUTH
    assert sorted(_slashes(market, job_id)) == sorted(first_round[:2])
    assert first_round[2] in _rewards(market, job_id)
    assert market.balance() == market.owed()


def test_wide_rounds_without_supermajority_end_unresolved_with_refund_and_no_honest_slash(any_chain):
    # growth 2: rounds of 3, 7 and 15 workers use all 25 registered ones
    market = _market(any_chain, 25, growth=2, max_rounds=3)
    requester = market.requester.account.address
    refund_before = market.requester.pending_withdrawal(requester)
    job_id = market.submit(3, FEE)

    def behaviour(address, assigned):
        liars = {3: 1, 7: 3, 15: 6}[len(assigned)]  # round 1: split; later rounds: neither side has 2/3
        return LIAR if address in assigned[:liars] else HONEST

    run = market.play(job_id, TRUTH, behaviour)
    assert run.rounds == 3
    assert market.requester.job_status(job_id) == JobStatus.UNRESOLVED
    assert market.requester.pending_withdrawal(requester) - refund_before == FEE
    assert _slashes(market, job_id) == {}  # nobody was silent, nobody can be called wrong
    assert all(market.requester.stake_of(a) == MIN_STAKE for a in market.workers)
    assert market.balance() == market.owed()


def test_escalation_without_enough_workers_ends_unresolved_and_refunds(any_chain):
    market = _market(any_chain, 5)  # a second round needs 9 of 13 and only 2 are left
    requester = market.requester.account.address
    refund_before = market.requester.pending_withdrawal(requester)
    job_id = market.submit(3, FEE)
    behaviour, _ = _first_of_round_one(LIAR)

    run = market.play(job_id, TRUTH, behaviour)
    assert run.rounds == 1
    assert market.requester.job_status(job_id) == JobStatus.UNRESOLVED
    assert market.requester.pending_withdrawal(requester) - refund_before == FEE
    assert _slashes(market, job_id) == {}
    assert market.balance() == market.owed()


def test_a_smaller_wide_round_still_decides_when_it_can_reach_the_quorum(any_chain):
    market = _market(any_chain, 13)  # second round asks 13, only 10 are left, quorum 9 is reachable
    job_id = market.submit(3, FEE)
    behaviour, _ = _first_of_round_one(LIAR)

    market.play(job_id, TRUTH, behaviour)
    job = market.requester.get_job(job_id)
    assert job.status == JobStatus.FINALIZED and job.round_size == 10
    assert market.requester.result_of(job_id) == TRUTH


def test_consecutive_jobs_keep_ether_conservation_through_withdrawals(any_chain):
    market = _market(any_chain, 6)
    for _ in range(3):
        job_id = market.submit(3, FEE)
        market.play(job_id, TRUTH)
        assert market.balance() == market.owed()
    for address, worker in market.workers.items():
        if market.requester.pending_withdrawal(address):
            worker.withdraw()
    assert market.balance() == market.owed()
