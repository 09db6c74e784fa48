"""Run anvil (from the npm package pinned in contracts/package.json) as a local JSON-RPC chain.

    with AnvilChain(num_accounts=20) as chain:   # same surface as EmbeddedChain: w3, accounts, mine, time_travel
        ...
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

PACKAGE_DIR = Path(__file__).resolve().parent
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"  # anvil's well-known default


def anvil_binary() -> Path | None:
    """The anvil executable from contracts/node_modules, else one on PATH, else None."""
    candidate = PACKAGE_DIR / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if candidate.is_file():
        return candidate
    found = shutil.which("anvil")
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mnemonic_accounts(count: int, mnemonic: str = ANVIL_MNEMONIC) -> list[LocalAccount]:
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


class AnvilChain:
    """An anvil process on a free loopback port with `num_accounts` funded accounts."""

    def __init__(self, num_accounts: int = 10, balance_ether: int = 1_000_000, block_time: int | None = None):
        binary = anvil_binary()
        if binary is None:
            raise FileNotFoundError("anvil not found: run `npm ci --prefix contracts`")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [str(binary), "--host", "127.0.0.1", "--port", str(self.port), "--accounts", str(num_accounts),
                "--balance", str(balance_ether), "--mnemonic", ANVIL_MNEMONIC, "--silent"]
        if block_time:
            args += ["--block-time", str(block_time)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}))
        self._wait_ready()
        self.accounts = mnemonic_accounts(num_accounts)

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"anvil exited: {self.process.stderr.read().decode(errors='replace')}")
            try:
                self.w3.eth.block_number
                return
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"anvil did not answer on {self.url} within {timeout}s")

    def mine(self, n: int = 1) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(n)])

    def time_travel(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [int(seconds)])
        self.w3.provider.make_request("evm_mine", [])

    @property
    def timestamp(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "AnvilChain":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
