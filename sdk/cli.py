"""The `vinfer` command line: one typer app that every package adds its commands to."""

import typer

app = typer.Typer(
    name="vinfer",
    help="Verifiable ML inference on Ethereum.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Verifiable ML inference on Ethereum: compile, run, submit, verify."""


def _register_all() -> None:
    from contracts import cli as contracts_cli
    from gateway import cli as gateway_cli
    from sdk import requester_cli
    from verifier import cli as verifier_cli
    from worker import cli as worker_cli

    for module in (verifier_cli, contracts_cli, gateway_cli, worker_cli, requester_cli):
        module.register(app)


_register_all()


def main() -> None:
    app()
