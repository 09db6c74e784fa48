"""MarketError: a contract revert decoded with the ABI into its custom error name, arguments and a sentence.

    MarketError            any failed market call: custom error, panic, require string, or RPC refusal
      .error_name          "RevealMismatch", "Panic", "Error", "TransactionRejected", ...
      .args                the decoded arguments, in ABI order (a tuple, as Exception.args)
      .named_args          the same, by parameter name
"""

from __future__ import annotations

import ast
import functools
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from contracts.artifact import load_artifact

_EXPLAIN = {
    "InvalidParameter": "invalid market parameter {name}",
    "ZeroValue": "the call must send a non-zero amount of ether",
    "ValueTooLarge": "value {value} is above the maximum {max}",
    "StakeBelowMinimum": "stake {stake} wei is below the minimum stake {minStake} wei",
    "NotRegistered": "{worker} is not a registered worker",
    "AlreadyUnbonding": "{worker} is already unbonding",
    "NotUnbonding": "{worker} has not requested to unbond",
    "UnbondingNotFinished": "{worker} can withdraw its stake at {availableAt}, it is {now}",
    "StakeLocked": "stake of {worker} is locked by {openJobs} open job(s)",
    "InvalidRedundancy": "redundancy {redundancy} is invalid (must be at least 1)",
    "NotEnoughWorkers": "needs {needed} workers but only {available} are active",
    "UnknownJob": "job {jobId} does not exist",
    "WrongStatus": "job {jobId} is {status}, which does not allow this call",
    "SeedNotReady": "job {jobId} draws from block {seedBlock}, which is not mined yet (block {blockNumber})",
    "NotAssigned": "{worker} is not assigned to the current round of job {jobId}",
    "CommitTooLate": "commit window of job {jobId} closed at {deadline}, it is {now}",
    "AlreadyCommitted": "{worker} already committed to job {jobId}",
    "RevealTooEarly": "job {jobId} is still in its commit window (until {commitDeadline}, it is {now})",
    "RevealTooLate": "reveal window of job {jobId} closed at {deadline}, it is {now}",
    "NotCommitted": "{worker} has no commitment to reveal for job {jobId}",
    "AlreadyRevealed": "{worker} already revealed for job {jobId}",
    "RevealMismatch": "reveal of {worker} for job {jobId} does not match its commitment",
    "FinalizeTooEarly": "job {jobId} can be finalized after {revealDeadline} or once all revealed (it is {now})",
    "NotFinalized": "job {jobId} has no final result (status {status})",
    "NothingToWithdraw": "{account} has nothing to withdraw",
    "TransferFailed": "sending {amount} wei to {to} failed",
    "ReentrancyGuardReentrantCall": "re-entrant call refused",
}
_STATUS_NAMES = ("None", "Submitted", "Committing", "Revealing", "Finalized", "Unresolved")
_PANICS = {0x01: "assertion failed", 0x11: "arithmetic overflow", 0x12: "division by zero",
           0x32: "array index out of bounds", 0x41: "out of memory"}


class MarketError(Exception):
    """A market call that failed; str() is a readable sentence."""

    def __init__(self, error_name: str, args: tuple = (), message: str | None = None,
                 named_args: dict[str, Any] | None = None):
        super().__init__(*args)
        self.error_name = error_name
        self.named_args = dict(named_args or {})
        self.message = message or error_name

    def __str__(self) -> str:
        return f"{self.error_name}: {self.message}"


@functools.cache
def _error_table() -> dict[bytes, dict]:
    table = {}
    for entry in load_artifact()["abi"]:
        if entry["type"] == "error":
            types = ",".join(_abi_type(i) for i in entry["inputs"])
            table[keccak(text=f"{entry['name']}({types})")[:4]] = entry
    return table


def _abi_type(param: dict) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + param["type"][5:]
    return param["type"]


def _readable(name: str, value: Any, abi_type: str) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if name == "status" and isinstance(value, int) and value < len(_STATUS_NAMES):
        return _STATUS_NAMES[value]
    return value


def decode_revert(data: bytes | str | None, fallback: str = "execution reverted") -> MarketError:
    """Decode revert data (custom error, Error(string) or Panic(uint256)) into a MarketError."""
    if isinstance(data, str):
        data = bytes.fromhex(data[2:] if data.startswith("0x") else data)
    if not data or len(data) < 4:
        return MarketError("Reverted", (), fallback)
    selector, body = data[:4], data[4:]
    if selector == keccak(text="Error(string)")[:4]:
        (reason,) = abi_decode(["string"], body)
        return MarketError("Error", (reason,), reason)
    if selector == keccak(text="Panic(uint256)")[:4]:
        (code,) = abi_decode(["uint256"], body)
        return MarketError("Panic", (code,), f"panic 0x{code:02x}: {_PANICS.get(code, 'unknown panic')}")
    entry = _error_table().get(selector)
    if entry is None:
        return MarketError("UnknownError", (data.hex(),), f"unknown revert data 0x{data.hex()}")
    types = [_abi_type(i) for i in entry["inputs"]]
    values = abi_decode(types, body)
    names = [i["name"] for i in entry["inputs"]]
    named = {n: _readable(n, v, t) for n, v, t in zip(names, values, types)}
    template = _EXPLAIN.get(entry["name"])
    message = template.format(**named) if template else ", ".join(f"{k}={v}" for k, v in named.items())
    return MarketError(entry["name"], tuple(values), message, named)


_TESTER_PREFIX = "execution reverted: "


def revert_data(exc: BaseException) -> bytes | None:
    """Revert data carried by a web3 ContractLogicError or (embedded chain) an eth-tester TransactionFailed."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        data = getattr(exc, "data", None)
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        if exc.args and isinstance(exc.args[0], (bytes, bytearray)):
            return bytes(exc.args[0])
        if exc.args and isinstance(exc.args[0], str) and exc.args[0].startswith(_TESTER_PREFIX):
            # web3's eth-tester provider formats the revert bytes into the message of eth_call errors
            try:
                data = ast.literal_eval(exc.args[0][len(_TESTER_PREFIX):])
            except (ValueError, SyntaxError):
                data = None
            if isinstance(data, bytes):
                return data
        exc = exc.__cause__ or exc.__context__
    return None


def is_revert(exc: BaseException) -> bool:
    from web3.exceptions import ContractLogicError

    if isinstance(exc, ContractLogicError):
        return True
    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:  # pragma: no cover - eth-tester is a dependency
        return False
    return isinstance(exc, TransactionFailed)


def error_from_exception(exc: BaseException) -> MarketError:
    return decode_revert(revert_data(exc), str(exc))
