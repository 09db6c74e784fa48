"""The committed artifacts match their sources; the ABI exposes the interface the issue fixes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from contracts.artifact import MARKET, PACKAGE_DIR, REPO_DIR, TARGETS, load_artifact, source_hash

SOLC_MISSING = not (PACKAGE_DIR / "node_modules" / "solc").is_dir()


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.contract)
def test_committed_artifact_was_built_from_the_current_sources(target):
    artifact = json.loads(target.artifact.read_text())
    assert artifact["sourceHash"] == source_hash(target), (
        f"{target.artifact} is stale against {', '.join(target.sources)}: run scripts/compile_contracts")


@pytest.mark.skipif(SOLC_MISSING, reason="solc-js not installed (npm ci --prefix contracts): cannot recompile")
def test_recompiling_reproduces_the_committed_artifacts_byte_for_byte():
    proc = subprocess.run([sys.executable, str(REPO_DIR / "scripts" / "compile_contracts"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_artifact_records_compiler_and_both_bytecodes():
    artifact = load_artifact()
    assert artifact["compiler"]["version"].startswith("0.8.")
    assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 1000
    assert artifact["deployedBytecode"].startswith("0x") and len(artifact["deployedBytecode"]) > 1000
    pinned = json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"]["solc"]
    assert artifact["compiler"]["version"].startswith(pinned + "+")


FUNCTIONS = {
    "register", "requestUnbond", "withdrawStake", "stakeOf", "isActive", "activeWorkerCount", "submitJob",
    "assign", "commit", "reveal", "finalize", "getJob", "assignedWorkers", "resultOf", "jobStatus",
    "withdraw", "pendingWithdrawal", "makeCommitment", "minStake", "commitWindow", "revealWindow",
    "unbondingPeriod", "slashBps", "silentSlashBps", "maxRounds", "quorumBps", "growth",
}
EVENTS = {
    "WorkerRegistered", "UnbondRequested", "StakeWithdrawn", "JobSubmitted", "WorkerAssigned", "Committed",
    "Revealed", "Escalated", "Slashed", "JobFinalized", "JobUnresolved", "Withdrawn",
}


def test_abi_has_the_functions_and_events_of_the_issue():
    abi = load_artifact(MARKET.artifact)["abi"]
    assert FUNCTIONS <= {e["name"] for e in abi if e["type"] == "function"}
    assert EVENTS <= {e["name"] for e in abi if e["type"] == "event"}
    constructor = next(e for e in abi if e["type"] == "constructor")
    assert [i["type"] for i in constructor["inputs"]] == [
        "uint256", "uint64", "uint64", "uint64", "uint16", "uint16", "uint8", "uint16", "uint8"]


def test_every_custom_error_has_a_readable_explanation():
    from contracts.errors import _EXPLAIN

    errors = {e["name"] for e in load_artifact()["abi"] if e["type"] == "error"}
    assert errors <= set(_EXPLAIN), f"no message for {errors - set(_EXPLAIN)}"


def test_every_custom_error_is_exercised_by_some_contract_test():
    tests = "".join(path.read_text() for path in (REPO_DIR / "tests" / "contracts").glob("test_*.py")
                    if path.name != "test_artifact.py")
    errors = {e["name"] for e in load_artifact()["abi"] if e["type"] == "error"}
    assert not {name for name in errors if f'"{name}"' not in tests}
