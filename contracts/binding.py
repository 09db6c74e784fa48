"""The typed client of the InferenceMarket: deploy, transact, read state, query events.

Transactions are signed locally by an eth_account LocalAccount and sent raw, so the same code works on the
embedded py-evm chain, on anvil and on a public chain. A revert raises MarketError with the custom error
decoded from the ABI. One lock per client guards its nonce, so worker threads can share a client.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import Web3RPCError

from contracts.artifact import load_artifact
from contracts.errors import MarketError, error_from_exception, is_revert

# Constructor arguments, in ABI order, with the defaults chosen in docs/protocol.md.
DEFAULT_PARAMS: dict[str, int] = {
    "min_stake": 10**18,  # 1 ether
    "commit_window": 600,  # seconds
    "reveal_window": 600,
    "unbonding_period": 7 * 24 * 3600,
    "slash_bps": 5_000,  # a wrong result costs half the stake
    "silent_slash_bps": 7_500,  # silence costs more than being wrong
    "max_rounds": 3,  # sizes 3 -> 13 -> 53 for k = 3
    "quorum_bps": 6_667,  # a later round needs 2/3 of its size
    "growth": 4,
}
# Redundancy that keeps a wrong finalization below 1e-9 per job at a 0.2 dishonest share (docs/protocol.md).
DEFAULT_REDUNDANCY = 13
GAS_MARGIN = 1.25


class JobStatus(IntEnum):
    NONE = 0
    SUBMITTED = 1
    COMMITTING = 2
    REVEALING = 3
    FINALIZED = 4
    UNRESOLVED = 5

    @property
    def is_open(self) -> bool:
        return self in (JobStatus.SUBMITTED, JobStatus.COMMITTING, JobStatus.REVEALING)


@dataclass(frozen=True)
class TxReceipt:
    tx_hash: str
    gas_used: int
    block_number: int
    status: int


@dataclass(frozen=True)
class Job:
    job_id: int
    requester: str
    program_hash: str
    input_hash: str
    redundancy: int
    fee: int
    status: JobStatus
    round: int
    result_hash: str | None  # None unless finalized
    commit_deadline: int
    reveal_deadline: int
    seed_block: int
    round_size: int
    committed: int
    revealed: int


@dataclass(frozen=True)
class Event:
    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: str
    log_index: int


def to_bytes32(value: str | bytes) -> bytes:
    """Accept a 32-byte hash as bytes or "0x" + 64 hex digits."""
    if isinstance(value, str):
        text = value[2:] if value.startswith(("0x", "0X")) else value
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"not a hex hash: {value!r}") from None
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise ValueError(f"expected 32 bytes, got {value!r}")
    return bytes(value)


def to_hex32(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def make_commitment(job_id: int, result_hash: str | bytes, salt: str | bytes, worker: str) -> bytes:
    """keccak256(abi.encode(jobId, resultHash, salt, worker)): the contract's makeCommitment."""
    encoded = abi_encode(
        ["uint256", "bytes32", "bytes32", "address"],
        [int(job_id), to_bytes32(result_hash), to_bytes32(salt), to_checksum_address(worker)],
    )
    return keccak(encoded)


def market_contract(w3: Web3, address: str | None = None):
    artifact = load_artifact()
    if address is None:
        return w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    return w3.eth.contract(address=to_checksum_address(address), abi=artifact["abi"])


class _Sender:
    """Signs and sends transactions for one account, tracking its nonce under a lock."""

    def __init__(self, w3: Web3, account: LocalAccount):
        self.w3 = w3
        self.account = account
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self._tip: int | None = None  # priority fee, asked once per sender

    def send(self, tx: dict, estimate_from: dict | None = None) -> TxReceipt:
        """Estimate (decoding any revert), sign, send raw, wait, and decode a revert found on chain."""
        w3 = self.w3
        probe = {**tx, "from": self.account.address}
        try:
            gas = w3.eth.estimate_gas(probe)
        except Exception as exc:
            if is_revert(exc):
                raise error_from_exception(exc) from None
            if isinstance(exc, (Web3RPCError, ValueError)):
                raise MarketError("TransactionRejected", (), str(exc)) from None
            raise
        latest = w3.eth.get_block("latest")
        tx = {**tx, "gas": min(int(gas * GAS_MARGIN) + 10_000, latest["gasLimit"])}
        with self._lock:
            if self._chain_id is None:
                self._chain_id = w3.eth.chain_id
            tx.update(self._fees(latest.get("baseFeePerGas")), chainId=self._chain_id)
            tx_hash = self._send_with_nonce(tx)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.02)
        if receipt["status"] != 1:
            raise self._replay_revert(probe, receipt)
        return TxReceipt(to_hex32(receipt["transactionHash"]), receipt["gasUsed"],
                         receipt["blockNumber"], receipt["status"])

    def _send_with_nonce(self, tx: dict) -> bytes:
        for attempt in range(2):
            if self._nonce is None:
                self._nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
            signed = self.account.sign_transaction({**tx, "nonce": self._nonce})
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (Web3RPCError, ValueError) as exc:
                self._nonce = None  # someone else used this account: resynchronise once
                if attempt == 0 and "nonce" in str(exc).lower():
                    continue
                raise MarketError("TransactionRejected", (), str(exc)) from None
            self._nonce += 1
            return tx_hash
        raise AssertionError("unreachable")

    def _fees(self, base_fee: int | None) -> dict:
        if base_fee is None:
            return {"gasPrice": self.w3.eth.gas_price}
        if self._tip is None:
            try:
                self._tip = self.w3.eth.max_priority_fee
            except Exception:  # noqa: BLE001 - not every node implements eth_maxPriorityFeePerGas
                self._tip = 10**9
        return {"maxPriorityFeePerGas": self._tip, "maxFeePerGas": 2 * base_fee + self._tip}

    def _replay_revert(self, probe: dict, receipt) -> MarketError:
        try:
            self.w3.eth.call(probe, receipt["blockNumber"] - 1)
        except Exception as exc:
            if not is_revert(exc):
                raise
            return error_from_exception(exc)
        return MarketError("Reverted", (), f"transaction {to_hex32(receipt['transactionHash'])} reverted "
                           f"(gas used {receipt['gasUsed']} of {probe.get('gas')})")


def deploy_market(w3: Web3, deployer: LocalAccount, **params: int):
    """Deploy an InferenceMarket with DEFAULT_PARAMS overridden by `params`; returns the web3 contract."""
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise TypeError(f"unknown market parameter(s): {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(DEFAULT_PARAMS)}")
    args = [int(params.get(name, default)) for name, default in DEFAULT_PARAMS.items()]
    tx = {"data": market_contract(w3).constructor(*args).data_in_transaction, "value": 0}
    receipt = _Sender(w3, deployer).send(tx)
    address = w3.eth.get_transaction_receipt(receipt.tx_hash)["contractAddress"]
    return market_contract(w3, address)


class MarketClient:
    """One account's view of one market: every transaction signs with `account` and returns a TxReceipt.
    With account=None the client only reads (views and events)."""

    def __init__(self, w3: Web3, market_address: str, account: LocalAccount | None):
        self.w3 = w3
        self.contract = market_contract(w3, market_address)
        self.address = self.contract.address
        self.account = account
        self._sender = _Sender(w3, account)
        self.last_receipt: TxReceipt | None = None
        self._event_abis = {e["name"]: e for e in self.contract.abi if e["type"] == "event"}
        self._topic_to_event = {
            keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})"): e["name"]
            for e in self._event_abis.values()
        }

    # ---- transactions, in lifecycle order
    def register(self, stake_wei: int) -> TxReceipt:
        return self._transact("register", value=stake_wei)

    def request_unbond(self) -> TxReceipt:
        return self._transact("requestUnbond")

    def withdraw_stake(self) -> TxReceipt:
        return self._transact("withdrawStake")

    def submit_job(self, program_hash: str | bytes, input_hash: str | bytes, redundancy: int, fee_wei: int) -> int:
        """Submit a job and return its id (the receipt is in `last_receipt`)."""
        receipt = self._transact("submitJob", to_bytes32(program_hash), to_bytes32(input_hash),
                                 int(redundancy), value=fee_wei)
        for event in self._receipt_events(receipt.tx_hash):
            if event.name == "JobSubmitted":
                return event.args["jobId"]
        raise MarketError("MissingEvent", (), f"no JobSubmitted event in {receipt.tx_hash}")

    def assign(self, job_id: int) -> TxReceipt:
        return self._transact("assign", int(job_id))

    def commit(self, job_id: int, commitment: str | bytes) -> TxReceipt:
        return self._transact("commit", int(job_id), to_bytes32(commitment))

    def reveal(self, job_id: int, result_hash: str | bytes, salt: str | bytes) -> TxReceipt:
        return self._transact("reveal", int(job_id), to_bytes32(result_hash), to_bytes32(salt))

    def finalize(self, job_id: int) -> TxReceipt:
        return self._transact("finalize", int(job_id))

    def withdraw(self) -> TxReceipt:
        return self._transact("withdraw")

    # ---- reads
    def get_job(self, job_id: int) -> Job:
        v = self._call("getJob", int(job_id))
        status = JobStatus(v[5])
        return Job(
            job_id=int(job_id), requester=v[0], program_hash=to_hex32(v[1]), input_hash=to_hex32(v[2]),
            redundancy=v[3], fee=v[4], status=status, round=v[6],
            result_hash=to_hex32(v[7]) if status == JobStatus.FINALIZED else None,
            commit_deadline=v[8], reveal_deadline=v[9], seed_block=v[10], round_size=v[11],
            committed=v[12], revealed=v[13],
        )

    def job_status(self, job_id: int) -> JobStatus:
        return JobStatus(self._call("jobStatus", int(job_id)))

    def assigned_workers(self, job_id: int) -> list[str]:
        return list(self._call("assignedWorkers", int(job_id)))

    def result_of(self, job_id: int) -> str:
        return to_hex32(self._call("resultOf", int(job_id)))

    def stake_of(self, address: str) -> int:
        return self._call("stakeOf", to_checksum_address(address))

    def is_active(self, address: str) -> bool:
        return self._call("isActive", to_checksum_address(address))

    def pending_withdrawal(self, address: str) -> int:
        return self._call("pendingWithdrawal", to_checksum_address(address))

    def active_worker_count(self) -> int:
        return self._call("activeWorkerCount")

    def worker_info(self, address: str) -> dict[str, Any]:
        stake, unbond_at, open_jobs, active = self._call("workerInfo", to_checksum_address(address))
        return {"stake": stake, "unbond_at": unbond_at, "open_jobs": open_jobs, "active": active}

    def job_count(self) -> int:
        return self._call("jobCount")

    def can_assign(self, job_id: int) -> bool:
        return self._call("canAssign", int(job_id))

    def can_finalize(self, job_id: int) -> bool:
        return self._call("canFinalize", int(job_id))

    def params(self) -> dict[str, int]:
        """The market's constructor parameters, by their DEFAULT_PARAMS names."""
        names = ("minStake", "commitWindow", "revealWindow", "unbondingPeriod", "slashBps", "silentSlashBps",
                 "maxRounds", "quorumBps", "growth")
        return {key: self._call(name) for key, name in zip(DEFAULT_PARAMS, names)}

    def dust_sink(self) -> str:
        return self._call("dustSink")

    def make_commitment(self, job_id: int, result_hash: str | bytes, salt: str | bytes,
                        worker: str | None = None) -> bytes:
        """The commitment as the contract computes it (see also the pure `make_commitment`)."""
        return bytes(self._call("makeCommitment", int(job_id), to_bytes32(result_hash), to_bytes32(salt),
                                to_checksum_address(worker or self.account.address)))

    def events(self, job_id: int | None = None, from_block: int = 0, to_block: int | str = "latest",
               names: tuple[str, ...] | list[str] | None = None) -> list[Event]:
        """Decoded market events, oldest first; `job_id` keeps the events of one job."""
        wanted = list(names) if names else list(self._event_abis)
        if job_id is not None:
            wanted = [n for n in wanted if self._event_abis[n]["inputs"][0]["name"] == "jobId"
                      and self._event_abis[n]["inputs"][0]["indexed"]]
        topic0 = [Web3.to_hex(t) for t, n in self._topic_to_event.items() if n in wanted]
        topics: list[Any] = [topic0]
        if job_id is not None:
            topics.append(Web3.to_hex(int(job_id).to_bytes(32, "big")))
        logs = self.w3.eth.get_logs({"address": self.address, "fromBlock": from_block, "toBlock": to_block,
                                     "topics": topics})
        return [self._decode_log(log) for log in logs]

    # ---- plumbing
    def _transact(self, fn_name: str, *args: Any, value: int = 0) -> TxReceipt:
        if self.account is None:
            raise MarketError("NoAccount", (), f"{fn_name}: this client has no account, it can only read")
        tx = {"to": self.address, "value": int(value),
              "data": self.contract.encode_abi(fn_name, args=list(args))}
        receipt = self._sender.send(tx)
        self.last_receipt = receipt
        return receipt

    def _call(self, fn_name: str, *args: Any) -> Any:
        try:
            return getattr(self.contract.functions, fn_name)(*args).call()
        except Exception as exc:
            if is_revert(exc):
                raise error_from_exception(exc) from None
            raise

    def _receipt_events(self, tx_hash: str) -> list[Event]:
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        return [self._decode_log(log) for log in receipt["logs"]
                if log["address"] == self.address and log["topics"]
                and bytes(log["topics"][0]) in self._topic_to_event]

    def _decode_log(self, log) -> Event:
        name = self._topic_to_event[bytes(log["topics"][0])]
        decoded = self.contract.events[name]().process_log(log)
        args = {k: (to_hex32(v) if isinstance(v, bytes) else v) for k, v in decoded["args"].items()}
        return Event(name, args, log["blockNumber"], to_hex32(log["transactionHash"]), log["logIndex"])
