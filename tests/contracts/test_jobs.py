"""Submission, assignment, commit, reveal and finalize, one behaviour per test (embedded chain)."""

from __future__ import annotations

import os

import pytest

from contracts import DEFAULT_PARAMS, JobStatus, MarketError, make_commitment

TRUTH = "0x" + "5a" * 32
FEE = 10**17


def _raises(name: str):
    return pytest.raises(MarketError, match=rf"^{name}: ")


@pytest.fixture
def chain(staffed):
    """The chain the staffed market lives on (restored from a snapshot for every test)."""
    return staffed.chain


@pytest.fixture
def assigned(staffed):
    """A job with its first round drawn: (market, job_id, [worker clients in draw order])."""
    job_id = staffed.submit(3, FEE)
    staffed.assign(job_id)
    workers = [staffed.workers[a] for a in staffed.requester.assigned_workers(job_id)]
    return staffed, job_id, workers


def _commit(worker, job_id, result=TRUTH, salt=None):
    salt = salt or os.urandom(32)
    worker.commit(job_id, make_commitment(job_id, result, salt, worker.account.address))
    return salt


def _commit_all(market, job_id, workers):
    return [_commit(w, job_id) for w in workers]


# ---- submitJob
def test_submit_job_records_the_request_and_ids_start_at_one(staffed):
    job_id = staffed.requester.submit_job("0x" + "01" * 32, "0x" + "02" * 32, 3, FEE)
    assert job_id == 1
    job = staffed.requester.get_job(job_id)
    assert (job.requester, job.program_hash, job.input_hash, job.redundancy, job.fee, job.status, job.round) == (
        staffed.requester.account.address, "0x" + "01" * 32, "0x" + "02" * 32, 3, FEE, JobStatus.SUBMITTED, 1)
    assert staffed.balance() == staffed.owed()


def test_submit_job_without_fee_reverts(staffed):
    with _raises("ZeroValue"):
        staffed.requester.submit_job(os.urandom(32), os.urandom(32), 3, 0)


def test_submit_job_with_zero_redundancy_reverts(staffed):
    with _raises("InvalidRedundancy"):
        staffed.requester.submit_job(os.urandom(32), os.urandom(32), 0, FEE)


def test_submit_job_asking_more_workers_than_are_active_reverts(staffed):
    with _raises("NotEnoughWorkers") as info:
        staffed.requester.submit_job(os.urandom(32), os.urandom(32), 7, FEE)
    assert info.value.named_args == {"needed": 7, "available": 6}


def test_malformed_hash_is_refused_before_sending(staffed):
    with pytest.raises(ValueError, match="32 bytes"):
        staffed.requester.submit_job("0x1234", os.urandom(32), 3, FEE)


# ---- assign
def test_assign_in_the_submission_block_range_reverts_until_the_seed_block_is_mined(staffed):
    job_id = staffed.submit(3, FEE)
    assert not staffed.requester.can_assign(job_id)
    with _raises("SeedNotReady"):
        staffed.requester.assign(job_id)


def test_assign_draws_distinct_active_workers_and_opens_the_commit_window(assigned):
    market, job_id, workers = assigned
    addresses = [w.account.address for w in workers]
    assert len(set(addresses)) == 3 and set(addresses) <= set(market.workers)
    job = market.requester.get_job(job_id)
    assert job.status == JobStatus.COMMITTING and job.round_size == 3
    assert job.reveal_deadline - job.commit_deadline == DEFAULT_PARAMS["reveal_window"]
    events = market.requester.events(job_id, names=["WorkerAssigned"])
    assert [e.args["worker"] for e in events] == addresses


def test_assign_twice_reverts(assigned):
    market, job_id, _ = assigned
    with _raises("WrongStatus"):
        market.requester.assign(job_id)


def test_assign_unknown_job_reverts(staffed):
    with _raises("UnknownJob"):
        staffed.requester.assign(42)


def test_assign_after_256_blocks_reseeds_from_a_later_block(staffed, chain):
    job_id = staffed.submit(3, FEE)
    chain.mine(300)
    staffed.requester.assign(job_id)
    (event,) = staffed.requester.events(job_id, names=["Reseeded"])
    job = staffed.requester.get_job(job_id)
    assert job.status == JobStatus.SUBMITTED and job.seed_block == event.args["seedBlock"] > chain.block_number - 2
    staffed.assign(job_id)
    assert staffed.requester.job_status(job_id) == JobStatus.COMMITTING


def test_unbonding_worker_is_never_drawn(staffed, chain):
    leaving = list(staffed.workers.values())[:3]
    for worker in leaving:
        worker.request_unbond()
    job_id = staffed.submit(3, FEE)
    staffed.assign(job_id)
    assert not {w.account.address for w in leaving} & set(staffed.requester.assigned_workers(job_id))


# ---- commit
def test_commit_by_an_unassigned_address_reverts(assigned, chain):
    market, job_id, _ = assigned
    stranger = market.client(chain.accounts[30])
    with _raises("NotAssigned"):
        stranger.commit(job_id, os.urandom(32))


def test_commit_twice_reverts(assigned):
    market, job_id, workers = assigned
    _commit(workers[0], job_id)
    with _raises("AlreadyCommitted"):
        _commit(workers[0], job_id)


def test_commit_after_the_commit_window_reverts(assigned, chain):
    market, job_id, workers = assigned
    chain.time_travel(DEFAULT_PARAMS["commit_window"] + 1)
    with _raises("CommitTooLate"):
        _commit(workers[0], job_id)


def test_last_commit_opens_the_reveal_phase(assigned):
    market, job_id, workers = assigned
    _commit_all(market, job_id, workers)
    assert market.requester.job_status(job_id) == JobStatus.REVEALING


# ---- reveal
def test_reveal_before_all_committed_and_before_the_deadline_reverts(assigned):
    market, job_id, workers = assigned
    salt = _commit(workers[0], job_id)
    with _raises("RevealTooEarly"):
        workers[0].reveal(job_id, TRUTH, salt)


def test_reveal_after_the_commit_deadline_is_allowed_for_those_who_committed(assigned, chain):
    market, job_id, workers = assigned
    salt = _commit(workers[0], job_id)
    chain.time_travel(DEFAULT_PARAMS["commit_window"] + 1)
    assert market.requester.job_status(job_id) == JobStatus.REVEALING
    workers[0].reveal(job_id, TRUTH, salt)
    with _raises("NotCommitted"):
        workers[1].reveal(job_id, TRUTH, os.urandom(32))


def test_reveal_that_does_not_match_commit_reverts(assigned):
    market, job_id, workers = assigned
    salts = _commit_all(market, job_id, workers)
    with _raises("RevealMismatch"):
        workers[0].reveal(job_id, "0x" + "66" * 32, salts[0])
    with _raises("RevealMismatch"):
        workers[0].reveal(job_id, TRUTH, os.urandom(32))


def test_copied_commitment_cannot_be_revealed_by_the_copier(assigned):
    market, job_id, workers = assigned
    honest, copier = workers[0], workers[1]
    salt = os.urandom(32)
    stolen = make_commitment(job_id, TRUTH, salt, honest.account.address)
    honest.commit(job_id, stolen)
    copier.commit(job_id, stolen)  # copied from the honest worker's transaction
    _commit(workers[2], job_id)
    honest.reveal(job_id, TRUTH, salt)
    with _raises("RevealMismatch"):
        copier.reveal(job_id, TRUTH, salt)  # even with the honest reveal copied too


def test_reveal_twice_reverts(assigned):
    market, job_id, workers = assigned
    salts = _commit_all(market, job_id, workers)
    workers[0].reveal(job_id, TRUTH, salts[0])
    with _raises("AlreadyRevealed"):
        workers[0].reveal(job_id, TRUTH, salts[0])


def test_reveal_by_an_unassigned_address_reverts(assigned, chain):
    market, job_id, workers = assigned
    _commit_all(market, job_id, workers)
    with _raises("NotAssigned"):
        market.client(chain.accounts[30]).reveal(job_id, TRUTH, os.urandom(32))


def test_reveal_on_a_closed_job_reverts_with_its_status(assigned, chain):
    market, job_id, workers = assigned
    salts = _commit_all(market, job_id, workers)
    for worker, salt in zip(workers, salts):
        worker.reveal(job_id, TRUTH, salt)
    market.requester.finalize(job_id)
    with _raises("WrongStatus"):
        workers[0].reveal(job_id, TRUTH, salts[0])
    with _raises("UnknownJob"):
        workers[0].reveal(job_id + 1, TRUTH, salts[0])


def test_reveal_after_the_reveal_window_reverts(assigned, chain):
    market, job_id, workers = assigned
    salts = _commit_all(market, job_id, workers)
    chain.time_travel(DEFAULT_PARAMS["commit_window"] + DEFAULT_PARAMS["reveal_window"] + 1)
    with _raises("RevealTooLate"):
        workers[0].reveal(job_id, TRUTH, salts[0])


def test_commit_matches_between_python_and_solidity(assigned):
    market, job_id, workers = assigned
    salt = os.urandom(32)
    assert workers[0].make_commitment(job_id, TRUTH, salt) == make_commitment(
        job_id, TRUTH, salt, workers[0].account.address)


# ---- finalize and results
def test_finalize_before_everyone_revealed_and_before_the_deadline_reverts(assigned):
    market, job_id, workers = assigned
    salts = _commit_all(market, job_id, workers)
    workers[0].reveal(job_id, TRUTH, salts[0])
    assert not market.requester.can_finalize(job_id)
    with _raises("FinalizeTooEarly"):
        market.requester.finalize(job_id)


def test_finalize_twice_reverts(assigned):
    market, job_id, workers = assigned
    for worker, salt in zip(workers, _commit_all(market, job_id, workers)):
        worker.reveal(job_id, TRUTH, salt)
    assert market.requester.can_finalize(job_id)
    market.requester.finalize(job_id)
    with _raises("WrongStatus") as info:
        market.requester.finalize(job_id)
    assert "Finalized" in str(info.value)


def test_finalize_unknown_job_reverts(staffed):
    with _raises("UnknownJob"):
        staffed.requester.finalize(7)


def test_result_of_an_open_job_reverts(assigned):
    market, job_id, _ = assigned
    with _raises("NotFinalized"):
        market.requester.result_of(job_id)
    assert market.requester.get_job(job_id).result_hash is None


def test_round_with_nobody_committing_escalates_after_the_deadline(assigned, chain):
    market, job_id, _ = assigned
    chain.time_travel(DEFAULT_PARAMS["commit_window"] + DEFAULT_PARAMS["reveal_window"] + 1)
    market.requester.finalize(job_id)
    job = market.requester.get_job(job_id)
    assert (job.status, job.round) == (JobStatus.SUBMITTED, 2)


# ---- stake locking
def test_withdraw_stake_is_blocked_while_assigned_and_slash_applies_during_unbonding(assigned, chain):
    market, job_id, workers = assigned
    leaving = workers[0]
    leaving.request_unbond()
    chain.time_travel(DEFAULT_PARAMS["unbonding_period"] + 1)  # also closes the silent round
    with _raises("StakeLocked"):
        leaving.withdraw_stake()
    market.requester.finalize(job_id)  # round 1 silent: escalates, but not enough workers -> unresolved
    market.assign(job_id)
    assert market.requester.job_status(job_id) == JobStatus.UNRESOLVED
    silent_slash = DEFAULT_PARAMS["min_stake"] * DEFAULT_PARAMS["silent_slash_bps"] // 10_000
    assert market.requester.stake_of(leaving.account.address) == DEFAULT_PARAMS["min_stake"] - silent_slash
    leaving.withdraw_stake()
    assert market.balance() == market.owed()


def test_worker_slashed_below_the_minimum_stake_leaves_the_active_set(assigned, chain):
    market, job_id, workers = assigned
    chain.time_travel(DEFAULT_PARAMS["commit_window"] + DEFAULT_PARAMS["reveal_window"] + 1)
    market.requester.finalize(job_id)
    market.assign(job_id)  # round 2 cannot be staffed: unresolved, silent workers slashed
    for worker in workers:
        assert not market.requester.is_active(worker.account.address)
    assert market.requester.active_worker_count() == 3


# ---- withdraw
def test_withdraw_with_nothing_pending_reverts(staffed, chain):
    with _raises("NothingToWithdraw"):
        staffed.client(chain.accounts[30]).withdraw()


def test_withdraw_pays_the_pending_amount_once(assigned, chain):
    market, job_id, workers = assigned
    for worker, salt in zip(workers, _commit_all(market, job_id, workers)):
        worker.reveal(job_id, TRUTH, salt)
    market.requester.finalize(job_id)
    address = workers[0].account.address
    owed = market.requester.pending_withdrawal(address)
    assert owed == FEE // 3
    before = chain.w3.eth.get_balance(address)
    receipt = workers[0].withdraw()
    gas_cost = receipt.gas_used * chain.w3.eth.get_transaction(receipt.tx_hash)["gasPrice"]
    assert chain.w3.eth.get_balance(address) == before + owed - gas_cost
    assert market.requester.pending_withdrawal(address) == 0
    with _raises("NothingToWithdraw"):
        workers[0].withdraw()
