"""An in-process Ethereum chain (py-evm through eth-tester) for tests and the embedded demo.

The provider is serialized with a lock: the gateway, the SDK and N worker threads share one chain and
py-evm is not thread-safe. eth-tester mines one block per transaction; `mine` and `time_travel` move the
chain on when nothing else does (e.g. to pass a commit window or the seed block of a job).
"""

from __future__ import annotations

import threading
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

DEFAULT_BALANCE = 10**6 * 10**18  # wei per funded account


def _single_run_gas_estimate(state, transaction) -> int:
    """Gas used before refunds by one run at the block gas limit (py-evm's default binary search runs the
    transaction ~25 times). The binding adds its own margin; a revert is raised as the default does."""
    from eth.vm.spoof import SpoofTransaction

    spoof = SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0)
    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(spoof)
        if computation.is_error:
            raise computation.error
        return state.gas_limit - computation.get_gas_remaining()
    finally:
        state.revert(snapshot)


class LockedEthereumTesterProvider(EthereumTesterProvider):
    """EthereumTesterProvider whose requests run one at a time."""

    def __init__(self, ethereum_tester: EthereumTester, lock: threading.RLock):
        super().__init__(ethereum_tester)
        self._lock = lock

    def make_request(self, method, params) -> Any:
        with self._lock:
            return super().make_request(method, params)


class EmbeddedChain:
    """py-evm chain with `num_accounts` funded LocalAccounts (their private keys are in `.accounts`)."""

    def __init__(self, num_accounts: int = 10, balance_wei: int = DEFAULT_BALANCE):
        if num_accounts < 1:
            raise ValueError("num_accounts must be at least 1")
        genesis_state = PyEVMBackend.generate_genesis_state(
            num_accounts=num_accounts, overrides={"balance": balance_wei})
        backend = PyEVMBackend(genesis_state=genesis_state)
        # on the chain class eth-tester built for this backend: mining and snapshots replace the instance
        type(backend.chain).gas_estimator = staticmethod(_single_run_gas_estimate)
        backend.chain.gas_estimator = _single_run_gas_estimate
        self.lock = threading.RLock()
        self.tester = EthereumTester(backend)
        self.w3 = Web3(LockedEthereumTesterProvider(self.tester, self.lock))
        self.accounts: list[LocalAccount] = [Account.from_key(key.to_bytes()) for key in backend.account_keys]

    @property
    def block_number(self) -> int:
        return self.w3.eth.block_number

    @property
    def timestamp(self) -> int:
        """Timestamp of the latest block."""
        return self.w3.eth.get_block("latest")["timestamp"]

    def mine(self, n: int = 1) -> None:
        """Mine `n` empty blocks."""
        with self.lock:
            self.tester.mine_blocks(n)

    def time_travel(self, seconds: int) -> None:
        """Mine a block `seconds` after the latest one; later transactions see that time or more."""
        with self.lock:
            self.tester.time_travel(self.timestamp + int(seconds))

    def snapshot(self) -> int:
        """An id to `revert` to: the whole chain state (blocks, balances, time) at this point."""
        with self.lock:
            return self.tester.take_snapshot()

    def revert(self, snapshot_id: int) -> None:
        """Go back to a snapshot. Clients keep nonce caches: make new MarketClients after reverting."""
        with self.lock:
            self.tester.revert_to_snapshot(snapshot_id)

    def new_account(self, balance_wei: int = 10**21) -> LocalAccount:
        """A fresh LocalAccount funded from the first account."""
        account = Account.create()
        self.fund(account.address, balance_wei)
        return account

    def fund(self, address: str, amount_wei: int) -> None:
        payer = self.accounts[0]
        with self.lock:
            tx = {"to": Web3.to_checksum_address(address), "value": amount_wei, "gas": 21_000,
                  "nonce": self.w3.eth.get_transaction_count(payer.address, "pending"),
                  "chainId": self.w3.eth.chain_id, "gasPrice": self.w3.eth.gas_price * 2}
            self.w3.eth.send_raw_transaction(payer.sign_transaction(tx).raw_transaction)
