"""Commands this package adds to `vinfer` (see sdk/cli.py): the `worker` group, `demo` and `devnet`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

worker_app = typer.Typer(help="Run a worker node: stake, compute assigned jobs, commit and reveal, get paid.", no_args_is_help=True)

RPC = typer.Option(None, "--rpc", envvar="VINFER_RPC_URL", help="JSON-RPC URL of the chain.")
MARKET = typer.Option(None, "--market", envvar="VINFER_MARKET", help="InferenceMarket contract address.")
GATEWAY = typer.Option(None, "--gateway", envvar="VINFER_GATEWAY_URL", help="Gateway URL (blobs).")
KEYSTORE = typer.Option(
    None, "--keystore", envvar="VINFER_KEYSTORE", help="Encrypted keystore file; otherwise the key is read from $VINFER_WORKER_KEY."
)


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def _connect(rpc: str | None, market: str | None, keystore: Path | None):
    from worker.config import ConfigError, load_account, require

    try:
        rpc = require(rpc, "--rpc", "VINFER_RPC_URL")
        market = require(market, "--market", "VINFER_MARKET")
        account = load_account(keystore, ask_password=lambda: typer.prompt("keystore password", hide_input=True))
    except ConfigError as exc:
        _fail(str(exc))
    from contracts import MarketClient
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(rpc))
    if not w3.is_connected():
        _fail(f"cannot reach the chain at {rpc}")
    return MarketClient(w3, Web3.to_checksum_address(market), account)


def _market_call(action):
    from contracts import MarketError

    try:
        return action()
    except MarketError as exc:
        _fail(f"transaction reverted: {exc}")


@worker_app.command("new-key")
def new_key_cmd(
    keystore: Path = typer.Option(..., "--keystore", help="Where to write the encrypted key (mode 0600)."),
) -> None:
    """Create a fresh worker key in an encrypted keystore file (password from $VINFER_KEYSTORE_PASSWORD or a prompt)."""
    import os

    from eth_account import Account

    from worker.config import PASSWORD_ENV, write_keystore

    if keystore.exists():
        _fail(f"{keystore} exists; refusing to overwrite a key")
    password = os.environ.get(PASSWORD_ENV) or typer.prompt("new keystore password", hide_input=True, confirmation_prompt=True)
    account = Account.create()
    write_keystore(account, keystore, password)
    typer.echo(f"worker address {account.address}; key encrypted in {keystore}. Fund it, then `vinfer worker register --stake 1ether`.")


@worker_app.command("register")
def register_cmd(
    stake: str = typer.Option(..., "--stake", help="Stake to deposit, e.g. 1ether (tops up when already registered)."),
    rpc: Optional[str] = RPC,
    market: Optional[str] = MARKET,
    keystore: Optional[Path] = KEYSTORE,
) -> None:
    """Register as a worker (or top up) with STAKE."""
    from worker.config import ConfigError, parse_amount

    try:
        wei = parse_amount(stake)
    except ConfigError as exc:
        _fail(str(exc))
    client = _connect(rpc, market, keystore)
    receipt = _market_call(lambda: client.register(wei))
    typer.echo(f"registered {client.account.address} stake={client.stake_of(client.account.address)} wei tx={_tx(receipt)} gas={receipt.gas_used}")


@worker_app.command("run")
def run_cmd(
    slots: int = typer.Option(1, "--slots", min=1, help="Jobs computed side by side (one single-threaded process each)."),
    gateway: Optional[str] = GATEWAY,
    rpc: Optional[str] = RPC,
    market: Optional[str] = MARKET,
    keystore: Optional[Path] = KEYSTORE,
    state: Optional[Path] = typer.Option(None, "--state", help="State file (default ~/.vinfer/worker-<address>.db)."),
    poll: float = typer.Option(1.0, "--poll", min=0.05, help="Seconds between chain polls."),
    from_block: Optional[int] = typer.Option(None, "--from-block", min=0,
                                             help="First block a fresh state file reads (default: 5,000 blocks back)."),
    byzantine: Optional[str] = typer.Option(None, "--byzantine", hidden=True, help="Test mode: lie | silent."),
) -> None:
    """Run the node until Ctrl-C: follow assignments, compute, commit, reveal, finalize."""
    import logging
    import signal
    import threading

    from worker.blobs import GatewayBlobs
    from worker.config import ConfigError, default_state_path, require
    from worker.login import gateway_token
    from worker.node import BYZANTINE_MODES, NodeConfig, WorkerNode
    from worker.state import WorkerState

    if byzantine is not None and byzantine not in BYZANTINE_MODES:
        _fail(f"--byzantine must be one of {', '.join(BYZANTINE_MODES)}")
    try:
        gateway = require(gateway, "--gateway", "VINFER_GATEWAY_URL")
    except ConfigError as exc:
        _fail(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    client = _connect(rpc, market, keystore)
    address = client.account.address
    if not client.is_active(address):
        typer.echo(f"warning: {address} is not an active worker yet (run `vinfer worker register --stake ...`)", err=True)
    try:
        worker_state = WorkerState(state or default_state_path(address))
        blobs = GatewayBlobs(gateway, token=gateway_token(gateway, client))
        node = WorkerNode(client, blobs, worker_state, NodeConfig(poll_interval_s=poll, slots=slots, start_block=from_block, byzantine=byzantine))
    except ValueError as exc:
        _fail(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        node.run(stop)
    except KeyboardInterrupt:
        stop.set()


@worker_app.command("status")
def status_cmd(
    rpc: Optional[str] = RPC,
    market: Optional[str] = MARKET,
    keystore: Optional[Path] = KEYSTORE,
    address: Optional[str] = typer.Option(None, "--address", help="Show another worker (no key needed)."),
) -> None:
    """Stake, activity, open assignments, earnings and slashes of this worker."""
    from worker.report import worker_report

    if address is not None:
        from contracts import MarketClient
        from eth_account import Account
        from web3 import Web3

        if not rpc or not market:
            _fail("--rpc and --market are required")
        client = MarketClient(Web3(Web3.HTTPProvider(rpc)), Web3.to_checksum_address(market), Account.create())
    else:
        client = _connect(rpc, market, keystore)
        address = client.account.address
    for key, value in worker_report(client, address).items():
        typer.echo(f"{key:<18} {value}")


@worker_app.command("unbond")
def unbond_cmd(rpc: Optional[str] = RPC, market: Optional[str] = MARKET, keystore: Optional[Path] = KEYSTORE) -> None:
    """Start the unbonding period (stake stays slashable until withdrawn)."""
    client = _connect(rpc, market, keystore)
    receipt = _market_call(client.request_unbond)
    typer.echo(f"unbonding requested tx={_tx(receipt)} gas={receipt.gas_used}")


@worker_app.command("withdraw")
def withdraw_cmd(
    stake: bool = typer.Option(False, "--stake", help="Withdraw the unbonded stake instead of rewards."),
    rpc: Optional[str] = RPC,
    market: Optional[str] = MARKET,
    keystore: Optional[Path] = KEYSTORE,
) -> None:
    """Withdraw accumulated rewards (or, with --stake, the stake after unbonding)."""
    client = _connect(rpc, market, keystore)
    address = client.account.address
    amount = client.stake_of(address) if stake else client.pending_withdrawal(address)
    if amount == 0:
        _fail("nothing to withdraw")
    receipt = _market_call(client.withdraw_stake if stake else client.withdraw)
    typer.echo(f"withdrew {amount} wei tx={_tx(receipt)} gas={receipt.gas_used}")


def _tx(receipt) -> str:
    tx = receipt.tx_hash
    return "0x" + bytes(tx).hex() if isinstance(tx, (bytes, bytearray)) else str(tx)


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    from worker.demo_cli import demo_cmd, devnet_cmd

    app.add_typer(worker_app, name="worker")
    app.command("demo")(demo_cmd)
    app.command("devnet")(devnet_cmd)
