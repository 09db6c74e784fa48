"""The committed build artifacts: where they live, what they are built from, and how to load them.

`source_hash()` covers everything that decides the bytecode (the .sol sources, the pinned compiler and
OpenZeppelin versions, the compiler settings), so a test can tell a stale artifact without running solc.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
SOLC_SETTINGS = {"optimizer": {"enabled": True, "runs": 1000}, "evmVersion": "cancun", "viaIR": True}


@dataclass(frozen=True)
class BuildTarget:
    contract: str  # the contract whose abi and bytecode the artifact holds
    source_dir: Path
    sources: tuple[str, ...]
    artifact: Path


MARKET = BuildTarget("InferenceMarket", PACKAGE_DIR, ("IInferenceMarket.sol", "InferenceMarket.sol"),
                     PACKAGE_DIR / "build" / "InferenceMarket.json")
# contracts used only by the tests (a worker that is a contract: refuses ether, re-enters withdraw)
TEST_ACTORS = BuildTarget("ProxyActor", REPO_DIR / "tests" / "contracts" / "sol", ("TestActors.sol",),
                          REPO_DIR / "tests" / "contracts" / "artifacts" / "TestActors.json")
TARGETS = (MARKET, TEST_ACTORS)

ARTIFACT_PATH = MARKET.artifact
CONTRACT_NAME = MARKET.contract
SOURCE_FILES = MARKET.sources


def source_hash(target: BuildTarget = MARKET) -> str:
    """sha256 over the sources, the pinned npm dependencies and the compiler settings."""
    digest = hashlib.sha256()
    pins = json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"]
    digest.update(json.dumps({"dependencies": pins, "settings": SOLC_SETTINGS}, sort_keys=True).encode())
    for name in target.sources:
        digest.update(name.encode() + b"\0" + (target.source_dir / name).read_bytes() + b"\0")
    return "0x" + digest.hexdigest()


@functools.cache
def load_artifact(path: Path = ARTIFACT_PATH) -> dict:
    """A committed artifact: abi, bytecode, deployedBytecode, compiler, sourceHash."""
    return json.loads(Path(path).read_text())
