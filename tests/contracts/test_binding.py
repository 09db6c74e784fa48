"""The Python binding: commitments, error decoding, events, thread-safe sending, the embedded chain."""

from __future__ import annotations

import threading

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import DEFAULT_PARAMS, MarketError, make_commitment
from contracts.binding import to_bytes32
from contracts.errors import decode_revert

hashes = st.binary(min_size=32, max_size=32)


@pytest.fixture(scope="module")
def shared_market():
    from contracts.chain import EmbeddedChain
    from contracts.harness import MarketHarness

    chain = EmbeddedChain(num_accounts=4)
    return MarketHarness(chain)


@settings(max_examples=25, deadline=None)
@given(job_id=st.integers(0, 2**256 - 1), result=hashes, salt=hashes, worker=st.binary(min_size=20, max_size=20))
def test_python_commitment_equals_the_contracts(shared_market, job_id, result, salt, worker):
    address = shared_market.w3.to_checksum_address(worker)
    on_chain = shared_market.requester.make_commitment(job_id, result, salt, address)
    assert make_commitment(job_id, result, salt, address) == on_chain


def test_commitment_binds_every_field():
    base = (1, b"\x01" * 32, b"\x02" * 32, "0x" + "11" * 20)
    variants = [(2,) + base[1:], (1, b"\x03" * 32) + base[2:], base[:2] + (b"\x04" * 32, base[3]),
                base[:3] + ("0x" + "12" * 20,)]
    assert len({make_commitment(*v) for v in [base, *variants]}) == 5


def test_hashes_are_accepted_as_hex_or_bytes_and_anything_else_is_refused():
    assert to_bytes32("0x" + "ab" * 32) == to_bytes32("ab" * 32) == b"\xab" * 32
    for bad in ("0x12", "0x" + "zz" * 32, b"\x00" * 31, 12):
        with pytest.raises(ValueError):
            to_bytes32(bad)


def test_custom_error_is_decoded_into_name_args_and_a_sentence():
    selector = keccak(text="CommitTooLate(uint256,uint256,uint256)")[:4]
    error = decode_revert(selector + encode(["uint256"] * 3, [7, 100, 160]))
    assert error.error_name == "CommitTooLate"
    assert error.args == (7, 100, 160)
    assert error.named_args == {"jobId": 7, "deadline": 100, "now": 160}
    assert str(error) == "CommitTooLate: commit window of job 7 closed at 100, it is 160"


def test_require_string_panic_and_unknown_data_are_decoded_too():
    reason = decode_revert(keccak(text="Error(string)")[:4] + encode(["string"], ["nope"]))
    assert (reason.error_name, str(reason)) == ("Error", "Error: nope")
    panic = decode_revert(keccak(text="Panic(uint256)")[:4] + encode(["uint256"], [0x11]))
    assert panic.error_name == "Panic" and "overflow" in str(panic)
    assert decode_revert(b"\xde\xad\xbe\xef").error_name == "UnknownError"
    assert decode_revert(b"").error_name == "Reverted"


def test_status_arguments_are_named(staffed):
    with pytest.raises(MarketError) as info:
        staffed.requester.finalize(staffed.submit())
    assert info.value.error_name == "WrongStatus"
    assert info.value.named_args["status"] == "Submitted"


def test_events_can_be_filtered_by_job(staffed):
    first, second = staffed.submit(), staffed.submit()
    events = staffed.requester.events(job_id=second)
    assert [e.name for e in events] == ["JobSubmitted"]
    assert events[0].args["jobId"] == second
    assert {e.args["jobId"] for e in staffed.requester.events(names=["JobSubmitted"])} == {first, second}


def test_one_client_can_send_from_many_threads(market, chain):
    worker = market.client(chain.accounts[2])
    worker.register(DEFAULT_PARAMS["min_stake"])
    errors = []

    def top_up():
        try:
            worker.register(1)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=top_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert market.requester.stake_of(worker.account.address) == DEFAULT_PARAMS["min_stake"] + 8


def test_embedded_chain_mines_and_travels_in_time(chain):
    block, now = chain.block_number, chain.timestamp
    chain.mine(3)
    assert chain.block_number == block + 3
    chain.time_travel(1000)
    assert chain.timestamp >= now + 1000


def test_embedded_chain_accounts_are_funded_local_accounts(chain):
    account = chain.accounts[0]
    assert chain.w3.eth.get_balance(account.address) > 10**20
    from eth_account import Account

    assert Account.from_key(account.key).address == account.address
