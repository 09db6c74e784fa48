"""`vinfer chain ...`: deploy and inspect an InferenceMarket over JSON-RPC.

The signing key comes from the VINFER_PRIVATE_KEY environment variable or an encrypted keystore file
(`--keystore`, password from VINFER_KEYSTORE_PASSWORD or a prompt), never from a plain command-line flag.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

chain_app = typer.Typer(help="Deploy and inspect the InferenceMarket contract.", no_args_is_help=True)

RPC_HELP = "JSON-RPC endpoint, e.g. http://127.0.0.1:8545"


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    app.add_typer(chain_app, name="chain")


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def load_account(keystore: Optional[Path]):
    """The LocalAccount from --keystore or VINFER_PRIVATE_KEY; exits with a message when neither works."""
    from eth_account import Account

    if keystore is not None:
        try:
            encrypted = keystore.read_text()
        except OSError as exc:
            _fail(f"cannot read keystore {keystore}: {exc.strerror}")
        password = os.environ.get("VINFER_KEYSTORE_PASSWORD")
        if password is None:
            password = typer.prompt("keystore password", hide_input=True)
        try:
            return Account.from_key(Account.decrypt(encrypted, password))
        except (ValueError, TypeError) as exc:
            _fail(f"cannot decrypt keystore {keystore}: {exc}")
    key = os.environ.get("VINFER_PRIVATE_KEY")
    if not key:
        _fail("no signing key: set VINFER_PRIVATE_KEY or pass --keystore FILE")
    try:
        return Account.from_key(key)
    except (ValueError, TypeError):
        _fail("VINFER_PRIVATE_KEY is not a valid private key (expected 32 bytes of hex)")


def connect(rpc: str):
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    try:
        w3.eth.chain_id
    except Exception as exc:  # noqa: BLE001 - any transport failure is reported the same way
        _fail(f"cannot reach {rpc}: {exc}")
    return w3


@chain_app.command("deploy")
def deploy(
    rpc: str = typer.Option(..., "--rpc", help=RPC_HELP),
    keystore: Optional[Path] = typer.Option(None, "--keystore", help="encrypted JSON keystore of the deployer"),
    param: list[str] = typer.Option(
        [], "--param", help="override a constructor parameter, e.g. --param min_stake=10000000000000000"),
) -> None:
    """Deploy an InferenceMarket and print its address."""
    from contracts import DEFAULT_PARAMS, MarketError, deploy_market

    overrides = {}
    for item in param:
        name, _, value = item.partition("=")
        if name not in DEFAULT_PARAMS or not value.strip().isdigit():
            _fail(f"bad --param {item!r}: expected NAME=INTEGER with NAME one of {', '.join(DEFAULT_PARAMS)}")
        overrides[name] = int(value)
    account = load_account(keystore)
    w3 = connect(rpc)
    try:
        market = deploy_market(w3, account, **overrides)
    except MarketError as exc:
        _fail(f"deploy failed: {exc}")
    typer.echo(market.address)


@chain_app.command("info")
def info(
    rpc: str = typer.Option(..., "--rpc", help=RPC_HELP),
    market: str = typer.Option(..., "--market", help="InferenceMarket address"),
) -> None:
    """Print a market's parameters, active workers and job count."""
    from eth_account import Account
    from web3 import Web3

    from contracts import MarketClient, MarketError

    if not Web3.is_address(market):
        _fail(f"not an address: {market}")
    w3 = connect(rpc)
    if w3.eth.get_code(Web3.to_checksum_address(market)) in (b"", None):
        _fail(f"no contract at {market} on {rpc}")
    client = MarketClient(w3, Web3.to_checksum_address(market), Account.create())
    try:
        for name, value in client.params().items():
            typer.echo(f"{name:18} {value}")
        typer.echo(f"{'active_workers':18} {client.active_worker_count()}")
        typer.echo(f"{'jobs':18} {client.job_count()}")
    except MarketError as exc:
        _fail(str(exc))
