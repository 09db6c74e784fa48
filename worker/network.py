"""A whole vinfer network in one process: embedded py-evm chain, the market, the gateway on loopback
and worker nodes as threads. `vinfer demo` and the end-to-end tests drive it; `vinfer devnet` does
the same with anvil and worker processes (worker/devnet.py).

Workers get real keys, real stakes and real state files; nothing in the protocol is simulated.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from worker.blobs import GatewayBlobs
from worker.node import NodeConfig, WorkerNode
from worker.state import WorkerState

ETHER = 10**18


@dataclass
class WorkerHandle:
    """One running worker: its key, node, thread and state file."""

    index: int
    account: Any
    state_path: Path
    byzantine: str | None
    node: WorkerNode | None = None
    thread: threading.Thread | None = None
    events: list[dict] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class LocalNetwork:
    """Chain + market + gateway + workers. Use as a context manager; everything stops on exit."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        market_params: dict | None = None,
        poll_interval_s: float = 0.1,
        stake_wei: int = ETHER,
        block_time_s: float = 0.5,
        on_event: Callable[[dict], None] | None = None,
    ):
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="vinfer-net-")
        self.data_dir = Path(data_dir or self._tmp.name)
        self.market_params = market_params or {}
        self.poll_interval_s = poll_interval_s
        self.stake_wei = stake_wei
        self.block_time_s = block_time_s
        self._stopping = threading.Event()
        self.on_event = on_event
        self.workers: list[WorkerHandle] = []
        self.gas_used: dict[str, int] = {}

    # --- start / stop ---------------------------------------------------------------------------

    def __enter__(self) -> "LocalNetwork":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        from contracts import deploy_market
        from contracts.chain import EmbeddedChain
        from gateway.server import serve_in_thread
        from gateway.settings import GatewaySettings

        self.chain = EmbeddedChain()
        self.w3 = self.chain.w3
        self._spare = list(self.chain.accounts)
        self.deployer = self._spare.pop(0)
        self.requester = self._spare.pop(0)
        self.market = deploy_market(self.w3, self.deployer, **self.market_params)
        self.market_address = self.market.address
        settings = GatewaySettings(host="127.0.0.1", port=0, data_dir=self.data_dir / "gateway", market_address=self.market_address)
        self.gateway = serve_in_thread(settings, w3=self.w3)
        self.gateway_url = self.gateway.url
        threading.Thread(target=self._produce_blocks, name="vinfer-blocks", daemon=True).start()

    def _produce_blocks(self) -> None:
        """Like a real chain, blocks keep coming when nobody transacts: seeds for `assign` need a later block."""
        while not self._stopping.wait(self.block_time_s):
            self.chain.mine(1)

    def close(self) -> None:
        self._stopping.set()
        for handle in self.workers:
            self.stop_worker(handle)
        if getattr(self, "gateway", None) is not None:
            self.gateway.stop()
            self.gateway = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # --- accounts and clients -------------------------------------------------------------------

    def new_account(self):
        """A funded account: one of the chain's, or a fresh key funded by the deployer."""
        if self._spare:
            return self._spare.pop(0)
        from eth_account import Account

        account = Account.create()
        tx = {"to": account.address, "value": 10 * ETHER, "from": self.deployer.address, "nonce": self.w3.eth.get_transaction_count(self.deployer.address),
              "gas": 21000, "gasPrice": self.w3.eth.gas_price, "chainId": self.w3.eth.chain_id}
        self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_raw_transaction(self.deployer.sign_transaction(tx).raw_transaction))
        return account

    def client(self, account) -> Any:
        from contracts import MarketClient

        return MarketClient(self.w3, self.market_address, account)

    # --- workers --------------------------------------------------------------------------------

    def add_worker(self, byzantine: str | None = None, gateway_url: str | None = None, start: bool = True) -> WorkerHandle:
        """Register a new staked worker and (by default) start its node thread."""
        account = self.new_account()
        receipt = self.client(account).register(self.stake_wei)
        self._count_gas("register", receipt)
        handle = WorkerHandle(len(self.workers), account, self.data_dir / "workers" / f"{account.address.lower()}.db", byzantine)
        self.workers.append(handle)
        if start:
            self.start_worker(handle, gateway_url=gateway_url)
        return handle

    def start_worker(self, handle: WorkerHandle, gateway_url: str | None = None) -> None:
        """(Re)start a worker's node from its state file, e.g. after `stop_worker` simulated a crash."""
        from worker.login import gateway_token

        client = self.client(handle.account)
        url = gateway_url or self.gateway_url
        blobs = GatewayBlobs(url, token=gateway_token(self.gateway_url, client), retries=3, backoff_s=0.05)
        config = NodeConfig(poll_interval_s=self.poll_interval_s, executor="thread", byzantine=handle.byzantine,
                            housekeeping_jitter_s=4 * self.poll_interval_s)

        def record(event: dict) -> None:
            handle.events.append(event)
            if "gas" in event:
                self._count_gas(event["phase"], event)
            if self.on_event is not None:
                self.on_event({**event, "index": handle.index})

        handle.node = WorkerNode(client, blobs, WorkerState(handle.state_path), config, on_event=record)
        handle.thread = threading.Thread(target=handle.node.run, name=f"vinfer-worker-{handle.index}", daemon=True)
        handle.thread.start()

    def stop_worker(self, handle: WorkerHandle, timeout: float = 10.0) -> None:
        if handle.node is not None:
            handle.node.stop()
        if handle.thread is not None:
            handle.thread.join(timeout)
        if handle.node is not None:
            handle.node.state.close()
        handle.node = handle.thread = None

    def _count_gas(self, phase: str, receipt: Any) -> None:
        gas = receipt.get("gas") if isinstance(receipt, dict) else getattr(receipt, "gas_used", None)
        if gas:
            self.gas_used[phase] = self.gas_used.get(phase, 0) + int(gas)

    # --- waiting --------------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition",
                 advance_time_s: int = 0) -> None:
        """Poll `predicate`; when `advance_time_s` is set, move chain time forward while waiting
        (deadlines pass quickly on the embedded chain)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            if advance_time_s:
                self.chain.time_travel(advance_time_s)
            time.sleep(self.poll_interval_s)
