"""Commands this package adds to `vinfer` (see sdk/cli.py): `vinfer gateway`."""

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    app.command("gateway")(gateway_cmd)


def gateway_cmd(
    rpc: Optional[str] = typer.Option(None, "--rpc", envvar="VINFER_GATEWAY_RPC_URL",
                                      help="JSON-RPC URL of the chain (job view, contract wallets)."),
    market: Optional[str] = typer.Option(None, "--market", envvar="VINFER_GATEWAY_MARKET_ADDRESS",
                                         help="InferenceMarket contract address."),
    host: str = typer.Option("127.0.0.1", "--host", envvar="VINFER_GATEWAY_HOST"),
    port: int = typer.Option(8000, "--port", envvar="VINFER_GATEWAY_PORT"),
    data_dir: Path = typer.Option(Path("vinfer-gateway-data"), "--data-dir", envvar="VINFER_GATEWAY_DATA_DIR",
                                  help="SQLite database, token key and (by default) blobs live here."),
    public_url: Optional[str] = typer.Option(None, "--public-url", envvar="VINFER_GATEWAY_PUBLIC_URL",
                                             help="URL users reach the gateway at (SIWE domain); default http://HOST:PORT."),
) -> None:
    """Run the gateway: Sign-In with Ethereum, content-addressed blobs, and the job view.

    Every other setting is read from VINFER_GATEWAY_* environment variables (gateway/settings.py)."""
    import uvicorn
    from pydantic import ValidationError

    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    overrides = {"host": host, "port": port, "data_dir": data_dir, "rpc_url": rpc, "market_address": market,
                 "public_url": public_url}
    try:
        settings = GatewaySettings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        typer.echo(f"invalid gateway setting: {exc}", err=True)
        raise typer.Exit(1)
    if bool(settings.rpc_url) != bool(settings.market_address):
        typer.echo("--rpc and --market go together (the job view needs both)", err=True)
        raise typer.Exit(1)
    try:
        app = create_app(settings)
    except Exception as exc:  # an unreachable RPC or unwritable data dir: say which, no traceback
        typer.echo(f"cannot start the gateway: {exc}", err=True)
        raise typer.Exit(1)
    typer.echo(f"vinfer gateway on {settings.origin} (SIWE domain {settings.domain}, chain id "
               f"{app.state.gateway.policy.chain_id}); data in {settings.data_dir}; login page {settings.origin}/login")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
