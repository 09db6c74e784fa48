"""Requester commands of `vinfer` (see sdk/cli.py): login, submit, status, result, verify.

Settings come from flags, else environment variables, else the config `vinfer login` saved. The private
key that signs transactions is read from $VINFER_PRIVATE_KEY only (never a flag: flags end up in shell
history and process lists)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

GATEWAY = typer.Option(None, "--gateway", envvar="VINFER_GATEWAY_URL", help="Gateway URL.")
RPC = typer.Option(None, "--rpc", envvar="VINFER_RPC_URL", help="JSON-RPC URL of the chain.")
MARKET = typer.Option(None, "--market", envvar="VINFER_MARKET", help="InferenceMarket contract address.")
KEY_ENV = "VINFER_PRIVATE_KEY"


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    app.command("login")(login_cmd)
    app.command("submit")(submit_cmd)
    app.command("status")(status_cmd)
    app.command("result")(result_cmd)
    app.command("verify")(verify_cmd)


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def _settings(gateway: str | None, rpc: str | None, market: str | None) -> dict:
    from sdk.config import load_config
    from sdk.errors import ConfigError

    try:
        saved = load_config()
    except ConfigError as exc:
        _fail(str(exc))
    return {"gateway_url": gateway or saved.get("gateway_url"), "rpc_url": rpc or saved.get("rpc_url"),
            "market": market or saved.get("market"), "token": saved.get("token") if not gateway or
            gateway == saved.get("gateway_url") else None}


def _require(value, flag: str, env: str) -> str:
    if not value:
        _fail(f"missing {flag}: pass it, set ${env}, or save it with `vinfer login {flag} ...`")
    return value


def _client(gateway, rpc, market, *, need_key: bool = False, need_token: bool = False):
    from sdk import Client
    from sdk.errors import ConfigError

    s = _settings(gateway, rpc, market)
    _require(s["gateway_url"], "--gateway", "VINFER_GATEWAY_URL")
    _require(s["rpc_url"], "--rpc", "VINFER_RPC_URL")
    _require(s["market"], "--market", "VINFER_MARKET")
    key = os.environ.get(KEY_ENV) or None
    if need_key and not key:
        _fail(f"no private key: set ${KEY_ENV} to the requester's key (it signs the submitJob transaction)")
    if need_token and not s["token"]:
        _fail("not logged in to this gateway: run `vinfer login` first")
    try:
        client = Client(s["gateway_url"], token=s["token"], rpc=s["rpc_url"], private_key=key,
                        market_address=s["market"])
    except ConfigError as exc:
        _fail(str(exc))
    if not client.w3.is_connected():
        _fail(f"cannot reach the chain at {s['rpc_url']}")
    return client


def _run(action):
    """Run an SDK action; any SDK error becomes a one-line message and exit code 1."""
    from sdk.errors import VinferError
    from verifier.errors import VerifierError

    try:
        return action()
    except (VinferError, VerifierError) as exc:
        _fail(f"error: {exc}")


def login_cmd(
    gateway: Optional[str] = GATEWAY,
    rpc: Optional[str] = RPC,
    market: Optional[str] = MARKET,
    token: Optional[str] = typer.Option(None, "--token", help="A token from the gateway's /login page, instead of "
                                                             f"signing in with ${KEY_ENV}."),
) -> None:
    """Sign in with Ethereum at the gateway and save the token (and these settings) for later commands."""
    from sdk.config import load_config, save_config
    from sdk.gateway_client import GatewayClient

    saved = _run(load_config)
    gateway = _require(gateway or saved.get("gateway_url"), "--gateway", "VINFER_GATEWAY_URL")
    key = os.environ.get(KEY_ENV)
    if not token and not key:
        _fail(f"nothing to sign in with: set ${KEY_ENV}, or pass --token from {gateway.rstrip('/')}/login")
    client = _run(lambda: GatewayClient(gateway, token))
    if token:
        me = _run(client.me)
    else:
        from eth_account import Account

        try:
            account = Account.from_key(key)
        except (ValueError, TypeError):
            _fail(f"${KEY_ENV} is not a valid private key")
        chain_id = None
        if rpc or saved.get("rpc_url"):
            from web3 import Web3

            w3 = Web3(Web3.HTTPProvider(rpc or saved.get("rpc_url")))
            chain_id = _run(lambda: _chain_id(w3))
        me = _run(lambda: client.login(account, chain_id=chain_id))
    values = {**saved, "gateway_url": gateway, "token": client.token, "address": me["address"],
              "expires_at": me["expires_at"]}
    if rpc:
        values["rpc_url"] = rpc
    if market:
        values["market"] = market
    path = _run(lambda: save_config(values))
    typer.echo(f"logged in as {me['address']} until {_time(me['expires_at'])}; token saved to {path}")


def _chain_id(w3) -> int:
    from sdk.errors import ChainError

    try:
        return int(w3.eth.chain_id)
    except Exception as exc:
        raise ChainError(f"cannot read the chain id: {exc}") from exc


def submit_cmd(
    model: Path = typer.Argument(..., help="An .onnx model (compiled here) or a compiled .vfp program."),
    input: Path = typer.Option(..., "--input", "-i", help=".npz file with one array per model input."),
    calibrate: Optional[Path] = typer.Option(None, "--calibrate", help=".npz calibration data for compiling."),
    matmul_bits: int = typer.Option(16, "--matmul-bits", help="Operand width of Conv/Gemm/MatMul products when "
                                    "compiling: 16, or 8 (faster, 8-bit accuracy)."),
    redundancy: int = typer.Option(3, "--redundancy", min=1, help="Workers in the first round."),
    fee: str = typer.Option("0.01ether", "--fee", help="Fee paid to the agreeing workers, e.g. 0.01ether."),
    wait: bool = typer.Option(False, "--wait", help="Follow the job to its end and print the outputs."),
    gateway: Optional[str] = GATEWAY,
    rpc: Optional[str] = RPC,
    market: Optional[str] = MARKET,
) -> None:
    """Upload MODEL and the inputs, submit the job on chain, and print its id."""
    from worker.config import ConfigError, parse_amount

    try:
        fee_wei = parse_amount(fee)
    except ConfigError as exc:
        _fail(str(exc))
    from verifier.fixedpoint import MATMUL_BITS

    if matmul_bits not in MATMUL_BITS:
        _fail(f"--matmul-bits must be one of {', '.join(map(str, MATMUL_BITS))}, got {matmul_bits}")
    feeds = _load_npz(input, "--input")
    calibration = _load_npz(calibrate, "--calibrate") if calibrate else None
    if not model.exists():
        _fail(f"no such model file: {model}")
    client = _client(gateway, rpc, market, need_key=True, need_token=True)
    uploaded = _run(lambda: client.upload_model(model, calibration=calibration, matmul_bits=matmul_bits))
    job = _run(lambda: client.submit(uploaded, feeds, redundancy=redundancy, fee=fee_wei))
    typer.echo(f"submitted job {job.job_id} (program {uploaded.hash})")
    if wait:
        info = _run(job.track_progress)
        typer.echo(f"job {job.job_id} is {info.status.name}")
        outputs = _run(lambda: job.result(verify=True))
        _print_outputs(job, outputs)


def status_cmd(job_id: int = typer.Argument(..., min=1), gateway: Optional[str] = GATEWAY,
               rpc: Optional[str] = RPC, market: Optional[str] = MARKET) -> None:
    """The job's state on chain and its history."""
    from rich.console import Console
    from rich.table import Table

    from sdk.job import describe

    client = _client(gateway, rpc, market)
    info = _run(lambda: client.job(job_id).info())
    if info.status.name == "NONE":
        _fail(f"no job {job_id} on market {client.market_address}")
    _, text = describe(info)
    console = Console()
    console.print(f"job {job_id}: [bold]{info.status.name}[/bold] ({text})")
    console.print(f"program {info.program_hash}\ninput   {info.input_hash}\nresult  {info.result_hash or '-'}")
    table = Table("block", "event", "details")
    for event in _run(lambda: client.market.events(job_id=job_id)):
        details = ", ".join(f"{k}={v}" for k, v in event.args.items() if k != "jobId")
        table.add_row(str(event.block_number), event.name, details)
    console.print(table)


def result_cmd(
    job_id: int = typer.Argument(..., min=1),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Save the outputs to this .npz file."),
    recompute: bool = typer.Option(False, "--recompute", help="Also re-execute the job locally."),
    gateway: Optional[str] = GATEWAY,
    rpc: Optional[str] = RPC,
    market: Optional[str] = MARKET,
) -> None:
    """Fetch the job's outputs, verified against the chain."""
    import numpy as np

    client = _client(gateway, rpc, market)
    job = client.job(job_id)
    outputs = _run(lambda: job.result(verify=True, recompute=recompute))
    if output is not None:
        names = [o.name for o in job.program.outputs]
        np.savez(output, **dict(zip(names, outputs)))
        typer.echo(f"saved {len(outputs)} output(s) of job {job_id} to {output}")
    else:
        _print_outputs(job, outputs)


def verify_cmd(
    job_id: int = typer.Argument(..., min=1),
    recompute: bool = typer.Option(False, "--recompute", help="Also re-execute the job locally and compare."),
    gateway: Optional[str] = GATEWAY,
    rpc: Optional[str] = RPC,
    market: Optional[str] = MARKET,
) -> None:
    """Check the job against the chain; prints every check, exits 0 only when all pass."""
    from rich.console import Console
    from rich.table import Table

    client = _client(gateway, rpc, market)
    verification = _run(lambda: client.verify(job_id, recompute=recompute, raise_on_failure=False))
    table = Table("check", "result", "detail", title=f"job {job_id}")
    marks = {True: "[green]pass", False: "[red]FAIL", None: "[dim]skipped"}
    for check in verification.checks:
        table.add_row(check.name, marks[check.passed], check.detail)
    Console(width=160).print(table)
    if not verification.ok:
        _fail(f"verification failed: {verification.error}")
    typer.echo("all checks passed")


def _load_npz(path: Path, flag: str) -> dict:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {flag} {path}: {exc}")


def _print_outputs(job, outputs) -> None:
    names = [o.name for o in job.program.outputs]
    for name, value in zip(names, outputs):
        typer.echo(f"{name}: shape {tuple(value.shape)}\n{value}")


def _time(unix: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
