"""The requester's saved login: one JSON file, readable by its owner only (0600 in a 0700 directory).
Location: $VINFER_CONFIG_DIR/config.json, else ~/.config/vinfer/config.json."""

import json
import os
from pathlib import Path

from sdk.errors import ConfigError

FILE_NAME = "config.json"


def config_dir() -> Path:
    override = os.environ.get("VINFER_CONFIG_DIR")
    return Path(override).expanduser() if override else Path.home() / ".config" / "vinfer"


def config_path() -> Path:
    return config_dir() / FILE_NAME


def load_config() -> dict:
    path = config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; run `vinfer login` again") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; run `vinfer login` again")
    return data


def save_config(values: dict) -> Path:
    """Write the config atomically; the file is created 0600, never briefly readable by others."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / FILE_NAME
    tmp = directory / f".{FILE_NAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(values, out, indent=2, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
