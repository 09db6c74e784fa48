"""The committed build artifact: where it lives, what it was built from, and how to load it.

`source_hash()` covers everything that decides the bytecode (our .sol sources, the pinned compiler and
OpenZeppelin versions, the compiler settings), so a test can tell a stale artifact without running solc.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ARTIFACT_PATH = PACKAGE_DIR / "build" / "InferenceMarket.json"
CONTRACT_NAME = "InferenceMarket"
SOURCE_FILES = ("IInferenceMarket.sol", "InferenceMarket.sol")
SOLC_SETTINGS = {"optimizer": {"enabled": True, "runs": 1000}, "evmVersion": "cancun", "viaIR": True}


def source_hash() -> str:
    """sha256 over the sources, the pinned npm dependencies and the compiler settings."""
    digest = hashlib.sha256()
    pins = json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"]
    digest.update(json.dumps({"dependencies": pins, "settings": SOLC_SETTINGS}, sort_keys=True).encode())
    for name in SOURCE_FILES:
        digest.update(name.encode() + b"\0" + (PACKAGE_DIR / name).read_bytes() + b"\0")
    return "0x" + digest.hexdigest()


@functools.cache
def load_artifact() -> dict:
    """The committed artifact: abi, bytecode, deployedBytecode, compiler, sourceHash."""
    return json.loads(ARTIFACT_PATH.read_text())
