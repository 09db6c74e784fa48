"""`vinfer demo` and `vinfer devnet` (registered on the root app by worker/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def demo_cmd(
    workers: int = typer.Option(5, "--workers", min=3, help="Worker threads (raised automatically when --byzantine needs more)."),
    byzantine: int = typer.Option(0, "--byzantine", min=0, help="How many workers lie (wrong result hash)."),
    batch: int = typer.Option(16, "--batch", min=1, max=64, help="Digits in the submitted batch."),
    redundancy: int = typer.Option(3, "--redundancy", min=1, help="Workers sampled for the first round."),
) -> None:
    """The whole system in one process: chain, contract, gateway, workers, and a verified job."""
    import logging

    from worker.demo import run_demo

    logging.getLogger("vinfer").setLevel(logging.WARNING)
    try:
        result = run_demo(workers=workers, byzantine=byzantine, batch=batch, redundancy=redundancy)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
    if result.status != "FINALIZED" or not result.verified:
        typer.echo(f"job {result.job_id} ended {result.status}; verified={result.verified}", err=True)
        raise typer.Exit(1)


def devnet_cmd(
    workers: int = typer.Option(5, "--workers", min=1, help="Worker processes."),
    slots: int = typer.Option(1, "--slots", min=1, help="Jobs each worker runs side by side."),
    rpc_port: int = typer.Option(8545, "--rpc-port", help="anvil's port."),
    gateway_port: int = typer.Option(8000, "--gateway-port", help="The gateway's port."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Gateway data, worker state and logs (default: a temp dir)."),
) -> None:
    """anvil + market + gateway + N worker processes on this machine, until Ctrl-C."""
    import signal
    import threading

    from worker.devnet import Devnet, DevnetError

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started in the background, where SIGINT is ignored
        signal.signal(signum, lambda *_: stop.set())
    try:
        with Devnet(workers=workers, slots=slots, rpc_port=rpc_port, gateway_port=gateway_port, data_dir=data_dir) as net:
            requester = net.requester
            typer.echo(f"""
vinfer devnet is up
  chain (anvil)   {net.rpc_url}  chain id {net.w3.eth.chain_id}
  market          {net.market_address}
  gateway         {net.gateway_url}   (wallet login page: {net.gateway_url}/login)
  workers         {', '.join(a.address for a in net.worker_accounts)}
  logs            {net.data_dir / 'logs'}

As a requester (anvil dev account 1: {requester.address}; its key is anvil's public test key):
  export VINFER_RPC_URL={net.rpc_url} VINFER_MARKET={net.market_address} VINFER_GATEWAY_URL={net.gateway_url}
  export VINFER_PRIVATE_KEY=0x{bytes(requester.key).hex()}
  vinfer login
  vinfer submit verifier/examples/digits_cnn.onnx --calibrate verifier/examples/digits_calibration.npz \\
      --input verifier/examples/digits_inputs.npz --redundancy 3 --wait
  vinfer result JOB_ID -o outputs.npz && vinfer verify JOB_ID

Ctrl-C stops everything.""")
            try:
                while not stop.wait(0.5):
                    dead = [name for name, p in net.processes.items() if p.poll() is not None]
                    if dead:
                        typer.echo(f"stopped unexpectedly: {', '.join(dead)} (see {net.data_dir / 'logs'})", err=True)
                        raise typer.Exit(1)
            except KeyboardInterrupt:
                pass
            typer.echo("stopping workers, gateway and anvil ...")
    except DevnetError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
