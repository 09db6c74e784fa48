"""`vinfer devnet` / scripts/devnet: anvil, the market, the gateway and N worker *processes* on this
machine, talking JSON-RPC and HTTP like a real deployment (only the RPC URL and keys would change).

anvil comes from the npm package @foundry-rs/anvil-linux-amd64 (installed into contracts/ when
missing); blocks are mined on every transaction and at least once a second (`--mixed-mining`), so
assignment seeds appear even when nobody transacts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = REPO / "contracts"
ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64"
ANVIL_BIN = CONTRACTS_DIR / "node_modules" / ANVIL_PACKAGE / "bin" / "anvil"
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ETHER = 10**18


class DevnetError(Exception):
    """anvil, the gateway or a worker process could not be started."""


def find_anvil(install: bool = True) -> Path:
    """The anvil binary from contracts/node_modules, running `npm install` there when it is missing."""
    if ANVIL_BIN.exists():
        return ANVIL_BIN
    if install and shutil.which("npm"):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(CONTRACTS_DIR)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        if ANVIL_BIN.exists():
            return ANVIL_BIN
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise DevnetError(f"anvil not found: install node + npm and run `npm install --prefix contracts` ({ANVIL_PACKAGE})")


def anvil_unavailable_reason() -> str | None:
    """Why anvil cannot run here (for test skips), or None."""
    try:
        find_anvil(install=False)
    except DevnetError as exc:
        if not shutil.which("npm"):
            return f"{exc}; node/npm is absent"
        try:
            find_anvil(install=True)
        except DevnetError as again:
            return str(again)
    return None


def dev_account(index: int):
    """anvil's funded dev account `index` (from its well-known test mnemonic)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Devnet:
    """anvil + market + gateway process + worker processes. A context manager; stops everything on exit."""

    workers: int = 3
    slots: int = 1
    byzantine: dict[int, str] = field(default_factory=dict)   # worker index -> "lie" | "silent"
    data_dir: Path | None = None
    rpc_port: int = 0
    gateway_port: int = 0
    poll_interval_s: float = 0.2
    market_params: dict = field(default_factory=dict)
    spare_accounts: int = 10   # funded dev accounts left for workers added later (add_worker)

    def __post_init__(self):
        self._tmp = None
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vinfer-devnet-")
            self.data_dir = Path(self._tmp.name)
        self.data_dir = Path(self.data_dir)
        self.processes: dict[str, subprocess.Popen] = {}
        self.worker_accounts: list[Any] = []

    def __enter__(self) -> "Devnet":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- start ----------------------------------------------------------------------------------

    def start(self) -> None:
        from contracts import deploy_market
        from web3 import Web3

        self.rpc_port = self.rpc_port or free_port()
        self.rpc_url = f"http://127.0.0.1:{self.rpc_port}"
        accounts = self.workers + 3 + self.spare_accounts
        self._spawn("anvil", [str(find_anvil()), "--port", str(self.rpc_port), "--accounts", str(accounts), "--balance", "1000",
                              "--block-time", "1", "--mixed-mining", "--silent"])
        self.w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 30}))
        self._wait(self.w3.is_connected, "anvil", 30)
        self.deployer, self.requester = dev_account(0), dev_account(1)
        self.market_address = deploy_market(self.w3, self.deployer, **self.market_params).address

        self.gateway_port = self.gateway_port or free_port()
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        gateway_env = {**os.environ, "VINFER_GATEWAY_RPC_URL": self.rpc_url, "VINFER_GATEWAY_MARKET_ADDRESS": self.market_address,
                       "VINFER_GATEWAY_HOST": "127.0.0.1", "VINFER_GATEWAY_PORT": str(self.gateway_port),
                       "VINFER_GATEWAY_DATA_DIR": str(self.data_dir / "gateway")}
        self._spawn("gateway", [sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory", "--host", "127.0.0.1",
                                "--port", str(self.gateway_port), "--log-level", "warning"], env=gateway_env)
        self._wait(self._gateway_up, "the gateway", 60)

        for index in range(self.workers):
            self.add_worker(self.byzantine.get(index))

    def add_worker(self, byzantine: str | None = None, start: bool = True) -> int:
        """Register the next funded dev account as a worker (1 ETH stake); start its process unless told not to."""
        from contracts import MarketClient

        index = len(self.worker_accounts)
        account = dev_account(index + 2)
        MarketClient(self.w3, self.market_address, account).register(ETHER)
        self.worker_accounts.append(account)
        if byzantine:
            self.byzantine[index] = byzantine
        if start:
            self.start_worker(index)
        return index

    def start_worker(self, index: int) -> subprocess.Popen:
        account = self.worker_accounts[index]
        env = {**os.environ, "VINFER_WORKER_KEY": account.key.hex(), "VINFER_RPC_URL": self.rpc_url,
               "VINFER_MARKET": self.market_address, "VINFER_GATEWAY_URL": self.gateway_url}
        args = [*_vinfer(), "worker", "run", "--slots", str(self.slots), "--poll", str(self.poll_interval_s),
                "--state", str(self.data_dir / "workers" / f"{account.address.lower()}.db")]
        if index in self.byzantine:
            args += ["--byzantine", self.byzantine[index]]
        return self._spawn(f"worker-{index}", args, env=env)

    def kill_worker(self, index: int) -> None:
        """SIGKILL a worker process (a crash, not a clean stop)."""
        process = self.processes.pop(f"worker-{index}")
        process.kill()
        process.wait(10)

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_dir / f"{name}.log", "ab")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self.processes[name] = process
        return process

    def _gateway_up(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.gateway_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [name for name, p in self.processes.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise DevnetError(f"{what} did not start ({', '.join(dead) or 'timeout'}); logs in {self.data_dir / 'logs'}")
            time.sleep(0.2)

    # --- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM every process this devnet started (workers first, anvil last), then SIGKILL stragglers."""
        names = sorted(self.processes, key=lambda n: (n == "anvil", n == "gateway", n))
        for name in names:
            process = self.processes[name]
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        self.processes.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def log(self, name: str) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _vinfer() -> list[str]:
    """How to run this checkout's `vinfer` in a child process."""
    return [sys.executable, "-c", "from sdk.cli import main; main()"]
