"""Fixtures for the contract tests: a fresh embedded chain and market per test, anvil once per session."""

from __future__ import annotations

import os

import pytest

from contracts.anvil import AnvilChain, anvil_binary
from contracts.chain import EmbeddedChain
from contracts.harness import MarketHarness

ACCOUNTS = 40  # deployer, requester, and room for a 3 -> 13 -> 53 escalation's first two rounds


@pytest.fixture
def chain():
    return EmbeddedChain(num_accounts=ACCOUNTS)


@pytest.fixture
def market(chain):
    """A market with the default parameters and no workers yet."""
    return MarketHarness(chain)


@pytest.fixture(scope="module")
def _staffed_snapshot():
    chain = EmbeddedChain(num_accounts=ACCOUNTS)
    market = MarketHarness(chain)
    market.add_workers(chain.accounts[2:8])
    return chain, market.address, chain.snapshot()


@pytest.fixture
def staffed(_staffed_snapshot):
    """A market with 6 registered workers (accounts 2..7), restored from a snapshot for every test."""
    chain, address, snapshot = _staffed_snapshot
    chain.revert(snapshot)
    market = MarketHarness(chain, market_address=address)
    market.adopt_workers(chain.accounts[2:8])
    return market


@pytest.fixture(scope="session")
def anvil_chain():
    if anvil_binary() is None:
        pytest.skip("anvil is not installed (run `npm ci --prefix contracts`); anvil scenarios skipped")
    chain = AnvilChain(num_accounts=ACCOUNTS)
    yield chain
    chain.stop()


@pytest.fixture(params=["embedded", "anvil"])
def any_chain(request):
    """The scenario suite runs on the in-process chain and on anvil over JSON-RPC."""
    if request.param == "embedded":
        return EmbeddedChain(num_accounts=ACCOUNTS)
    return request.getfixturevalue("anvil_chain")


def slow_enabled() -> bool:
    return os.environ.get("VINFER_SLOW") == "1"
