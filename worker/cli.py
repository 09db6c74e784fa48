"""Commands this package adds to `vinfer` (see sdk/cli.py)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
