"""How a worker finds its key, chain, market and gateway.

The key never comes from a command-line flag (flags end up in shell history and `ps`): it is read
from an encrypted keystore file (`--keystore`, password from VINFER_KEYSTORE_PASSWORD or a prompt)
or from the environment variable VINFER_WORKER_KEY.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

KEY_ENV = "VINFER_WORKER_KEY"
PASSWORD_ENV = "VINFER_KEYSTORE_PASSWORD"
UNITS = {"wei": 0, "gwei": 9, "ether": 18, "eth": 18}


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which and how to provide it."""


def load_account(keystore: Path | None = None, ask_password: Callable[[], str] | None = None):
    """The worker's LocalAccount, from a keystore file or $VINFER_WORKER_KEY."""
    from eth_account import Account

    if keystore is not None:
        try:
            encrypted = json.loads(Path(keystore).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read keystore {keystore}: {exc}") from exc
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            if ask_password is None:
                raise ConfigError(f"keystore {keystore} needs a password: set {PASSWORD_ENV}")
            password = ask_password()
        try:
            return Account.from_key(Account.decrypt(encrypted, password))
        except ValueError as exc:
            raise ConfigError(f"cannot decrypt keystore {keystore}: {exc}") from exc
    key = os.environ.get(KEY_ENV)
    if not key:
        raise ConfigError(f"no worker key: pass --keystore FILE or set {KEY_ENV}")
    try:
        return Account.from_key(key.strip())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{KEY_ENV} is not a valid private key") from exc


def write_keystore(account, path: Path, password: str) -> Path:
    """Encrypt `account` into a keystore file readable only by its owner."""
    from eth_account import Account

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(Account.encrypt(account.key, password), handle)
    return path


def parse_amount(text: str) -> int:
    """Wei from '1ether', '0.5 ether', '250gwei' or a plain integer of wei."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not match:
        raise ConfigError(f"cannot read amount {text!r}: use e.g. 1ether, 0.5ether, 250gwei or wei")
    number, unit = match.groups()
    unit = unit.lower() or "wei"
    if unit not in UNITS:
        raise ConfigError(f"unknown unit {unit!r} in {text!r}: use one of {', '.join(UNITS)}")
    try:
        wei = Decimal(number) * (Decimal(10) ** UNITS[unit])
    except InvalidOperation as exc:
        raise ConfigError(f"cannot read amount {text!r}") from exc
    if wei != wei.to_integral_value():
        raise ConfigError(f"{text!r} is not a whole number of wei")
    return int(wei)


def default_state_path(address: str) -> Path:
    base = Path(os.environ.get("VINFER_HOME", Path.home() / ".vinfer"))
    return base / f"worker-{address.lower()}.db"


def require(value: str | None, flag: str, env: str) -> str:
    if not value:
        raise ConfigError(f"missing {flag} (or set {env})")
    return value
