"""The worker node: follow the chain, compute what it was assigned, commit, reveal, get paid.

One driver thread polls the chain; jobs run in a pool of `slots` (one job per slot, each single-
threaded). Each poll:

  1. read the market's events since the last processed block: `WorkerAssigned` for this worker adds
     an assignment; `JobSubmitted` / `Escalated` put the job on the watch list (to assign/finalize);
  2. advance every open assignment one phase at a time:
        assigned  -> fetch program + input by hash (keccak checked), execute in a slot
                  -> seal: salt, result hash and output bytes written to the state file
        sealed    -> commit(keccak(jobId, resultHash, salt, worker))
        committed -> reveal(resultHash, salt) once the round is Revealing
        revealed  -> upload the output bytes; done when the round is decided
  3. call `assign` / `finalize` on watched jobs when they are due and nobody else did.

Everything needed to continue lives in the state file, so a node killed anywhere resumes where it
was: a recomputed result is bit-identical, and a sealed salt is reused, never replaced.
"""

from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import logging
import multiprocessing
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

from contracts import JobStatus, MarketError, make_commitment
from verifier.encoding import keccak_hex
from worker import slot
from worker.blobs import BlobUnavailable, GatewayBlobs
from worker.state import Assignment, WorkerState

log = logging.getLogger("vinfer.worker")

Byzantine = Literal["lie", "silent"]
BYZANTINE_MODES = ("lie", "silent")
FINAL_STATUSES = (JobStatus.FINALIZED, JobStatus.UNRESOLVED)
WATCHED_EVENTS = ("WorkerAssigned", "JobSubmitted", "Escalated")
# A fresh node has no assignment older than its registration; 5,000 blocks (~17 h at 12 s) back is more
# than any job's windows, without scanning a public chain from genesis.
FRESH_LOOKBACK = 5_000
# Reverts that mean "someone (maybe our own earlier attempt) already did it": not worth a retry.
ALREADY_DONE_ERRORS = ("AlreadyCommitted", "AlreadyRevealed")
# assign/finalize are open to anyone: WrongStatus there means another node moved the job on first.
HOUSEKEEPING_RACE_ERRORS = ("WrongStatus",)


@dataclass
class NodeConfig:
    poll_interval_s: float = 1.0
    slots: int = 1
    executor: Literal["process", "thread"] = "process"
    byzantine: Byzantine | None = None
    start_block: int | None = None  # where a fresh state file starts reading events (None: FRESH_LOOKBACK back)
    max_block_range: int = 2000    # events are read in chunks of at most this many blocks
    housekeeping_jitter_s: float = 1.0   # random delay before calling assign/finalize ourselves


class WorkerNode:
    """One worker identity. `market` is a contracts.MarketClient signing with the worker's key."""

    def __init__(
        self,
        market: Any,
        blobs: GatewayBlobs,
        state: WorkerState,
        config: NodeConfig | None = None,
        on_event: Callable[[dict], None] | None = None,
    ):
        self.market = market
        self.w3 = market.w3
        self.address = market.account.address
        self.blobs = blobs
        self.state = state
        self.config = config or NodeConfig()
        if self.config.byzantine not in (None, *BYZANTINE_MODES):
            raise ValueError(f"byzantine mode must be one of {BYZANTINE_MODES}, not {self.config.byzantine!r}")
        self.on_event = on_event
        self.state.bind_address(self.address)
        self._stop = threading.Event()
        self._computing: dict[tuple[int, int], cf.Future] = {}
        self._due_since: dict[tuple[str, int], float] = {}
        self._jitter = random.Random(self.address).uniform(0, self.config.housekeeping_jitter_s)
        self._fetchers = cf.ThreadPoolExecutor(max_workers=self.config.slots, thread_name_prefix="vinfer-slot")
        self._processes: cf.ProcessPoolExecutor | None = None
        if self.config.executor == "process":
            self._processes = self._start_slot_processes()

    def _start_slot_processes(self) -> cf.ProcessPoolExecutor:
        # spawned slots inherit this environment before they import numpy (setting it in the slot's
        # initializer can be too late: the child re-imports the parent's main module first)
        for name in slot.SINGLE_THREAD_ENV:
            os.environ[name] = "1"
        return cf.ProcessPoolExecutor(
            max_workers=self.config.slots, mp_context=multiprocessing.get_context("spawn"), initializer=slot.init_slot_process
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Poll until `stop` (or self.stop()) is set. Errors of one poll are logged and retried next poll."""
        stop = stop or self._stop
        self.emit("start", slots=self.config.slots, byzantine=self.config.byzantine or "no")
        try:
            while not stop.is_set() and not self._stop.is_set():
                try:
                    self.step()
                except Exception as exc:  # noqa: BLE001 - an RPC hiccup must not kill the node
                    self.emit("error", level=logging.WARNING, error=f"{type(exc).__name__}: {exc}")
                stop.wait(self.config.poll_interval_s)
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        self._fetchers.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._processes.shutdown(wait=False, cancel_futures=True)
        self.emit("stop")

    def step(self) -> None:
        """One poll: read new events, advance assignments, then assign/finalize what is due."""
        self._read_events()
        for assignment in self.state.open_assignments():
            if self.stopping:
                return
            self._advance(assignment)
        for job_id in self.state.watched():
            if self.stopping:
                return
            self._housekeep(job_id)

    # --- 1. events ------------------------------------------------------------------------------

    def _read_events(self) -> None:
        latest = self.w3.eth.block_number
        if self.state.last_block >= 0:
            start = self.state.last_block + 1
        elif self.config.start_block is not None:
            start = self.config.start_block
        else:
            start = max(0, latest - FRESH_LOOKBACK)
        while start <= latest:
            end = min(latest, start + self.config.max_block_range - 1)
            for event in self.market.events(from_block=start, to_block=end, names=WATCHED_EVENTS):
                self._on_chain_event(event)
            self.state.last_block = end
            start = end + 1

    def _on_chain_event(self, event: Any) -> None:
        job_id = _arg(event, "jobId")
        if event.name == "WorkerAssigned" and _arg(event, "worker").lower() == self.address.lower():
            round_ = _arg(event, "round")
            if self.state.add_assignment(job_id, round_):
                self.emit("assigned", job=job_id, round=round_, block=event.block_number)
            self.state.watch(job_id)
        elif event.name in ("JobSubmitted", "Escalated"):
            self.state.watch(job_id)

    # --- 2. assignments -------------------------------------------------------------------------

    def _advance(self, a: Assignment) -> None:
        job = self.market.get_job(a.job_id)
        if job.round != a.round or job.status in FINAL_STATUSES:
            self._close_round(a, job)
            return
        if a.phase == "assigned":
            a = self._compute(a, job)
        if a is not None and a.phase == "sealed" and not self.stopping:
            a = self._commit(a, job)
        if a is not None and a.phase == "committed" and not self.stopping and self.market.job_status(a.job_id) == JobStatus.REVEALING:
            a = self._reveal(a)
        if a is not None and a.phase == "revealed" and not a.uploaded and not self.stopping:
            self._upload(a)

    def _compute(self, a: Assignment, job: Any) -> Assignment | None:
        key = (a.job_id, a.round)
        if self.config.byzantine == "silent":
            self.state.mark(a.job_id, a.round, "silent")
            self.emit("silent", job=a.job_id, round=a.round, note="byzantine: will not commit")
            return None
        if job.status != JobStatus.COMMITTING:
            return None
        future = self._computing.get(key)
        if future is None:
            self._computing[key] = self._fetchers.submit(self._fetch_and_execute, job.program_hash, job.input_hash)
            self.emit("fetch", job=a.job_id, round=a.round, program=_hex(job.program_hash), input=_hex(job.input_hash))
            return None
        if not future.done():
            return None
        del self._computing[key]
        try:
            started, (output, result_hash, ok, error) = future.result()
        except BlobUnavailable as exc:  # never commit on unverified bytes; try again next poll
            self.emit("refuse", level=logging.WARNING, job=a.job_id, round=a.round, error=str(exc))
            return None
        except BrokenProcessPool as exc:  # a slot was killed (e.g. by the OOM killer): new slots, retry
            self.emit("slots-restarted", level=logging.WARNING, job=a.job_id, round=a.round, error=str(exc))
            self._processes.shutdown(wait=False, cancel_futures=True)
            self._processes = self._start_slot_processes()
            return None
        self.emit("computed", job=a.job_id, round=a.round, result=result_hash, ok=ok, error=error,
                  seconds=f"{time.monotonic() - started:.3f}")
        if self.config.byzantine == "lie":
            result_hash = keccak_hex(output + b"byzantine")
        self.state.seal(a.job_id, a.round, result_hash, secrets.token_bytes(32), output, ok, error)
        return self.state.get(a.job_id, a.round)

    def _fetch_and_execute(self, program_hash: Any, input_hash: Any) -> tuple[float, tuple]:
        program = self.blobs.fetch(_hex(program_hash), cache=True)
        data = self.blobs.fetch(_hex(input_hash))
        started = time.monotonic()
        if self._processes is not None:
            return started, self._processes.submit(slot.execute, program, data).result()
        return started, slot.execute(program, data)

    def _commit(self, a: Assignment, job: Any) -> Assignment | None:
        if job.status != JobStatus.COMMITTING:
            # too late to commit, unless an earlier attempt got through and only its answer was lost
            if not self._committed_on_chain(a):
                return None
            self.state.mark(a.job_id, a.round, "committed")
            self.emit("commit", job=a.job_id, round=a.round, note="found on chain")
            return self.state.get(a.job_id, a.round)
        commitment = make_commitment(a.job_id, a.result_hash, a.salt, self.address)
        receipt = self._transact("commit", a, self.market.commit, a.job_id, commitment)
        if receipt is None:
            return None
        self.state.mark(a.job_id, a.round, "committed", commit_tx=_tx(receipt))
        return self.state.get(a.job_id, a.round)

    def _committed_on_chain(self, a: Assignment) -> bool:
        events = self.market.events(job_id=a.job_id, names=("Committed",))
        return any(_arg(e, "worker").lower() == self.address.lower() and _arg(e, "round") == a.round for e in events)

    def _reveal(self, a: Assignment) -> Assignment | None:
        receipt = self._transact("reveal", a, self.market.reveal, a.job_id, a.result_hash, a.salt)
        if receipt is None:
            return None
        self.state.mark(a.job_id, a.round, "revealed", reveal_tx=_tx(receipt))
        return self.state.get(a.job_id, a.round)

    def _upload(self, a: Assignment) -> None:
        if self.config.byzantine == "lie" or a.output is None:
            return
        try:
            self.blobs.upload(a.output)
        except BlobUnavailable as exc:
            self.emit("upload-failed", level=logging.WARNING, job=a.job_id, round=a.round, error=str(exc))
            return
        self.state.set_uploaded(a.job_id, a.round)
        self.emit("uploaded", job=a.job_id, round=a.round, result=a.result_hash, bytes=len(a.output))

    def _close_round(self, a: Assignment, job: Any) -> None:
        """The round this assignment belonged to is decided (or the job is over): record how it ended."""
        if a.phase == "revealed" or (a.result_hash is not None and a.result_hash == job.result_hash):
            if not a.uploaded:  # also after a lost reveal answer: the requester needs the bytes
                self._upload(a)
            self.state.mark(a.job_id, a.round, "done")
            self.emit("done", job=a.job_id, round=a.round, status=job.status.name)
        else:
            self.state.mark(a.job_id, a.round, "missed")
            self.emit("missed", level=logging.WARNING, job=a.job_id, round=a.round, phase=a.phase, status=job.status.name)
        self._computing.pop((a.job_id, a.round), None)

    # --- 3. assign / finalize -------------------------------------------------------------------

    def _housekeep(self, job_id: int) -> None:
        """Assign any watched job that waits for its draw; finalize only jobs this worker took part in
        (it is paid on finalize; the requester's SDK finalizes the rest). One status read per job."""
        status = self.market.job_status(job_id)
        if status in FINAL_STATUSES or (status != JobStatus.SUBMITTED and not self.state.has_job(job_id)):
            self.state.unwatch(job_id)  # an Escalated event puts it back
            self._due_since.pop(("assign", job_id), None)
            self._due_since.pop(("finalize", job_id), None)
            return
        if status == JobStatus.SUBMITTED:
            if self._due("assign", job_id, self.market.can_assign(job_id)):
                self._transact("assign", None, self.market.assign, job_id, job_id=job_id)
        elif self._due("finalize", job_id, self.market.can_finalize(job_id)):
            self._transact("finalize", None, self.market.finalize, job_id, job_id=job_id)

    def _due(self, action: str, job_id: int, possible: bool) -> bool:
        """True once an action has been possible for longer than this node's jitter (so nodes rarely race)."""
        key = (action, job_id)
        if not possible:
            self._due_since.pop(key, None)
            return False
        since = self._due_since.setdefault(key, time.monotonic())
        return time.monotonic() - since >= self._jitter

    # --- transactions and logs ------------------------------------------------------------------

    def _transact(self, phase: str, a: Assignment | None, method: Callable, *args: Any, job_id: int | None = None) -> Any:
        """Send one transaction; a revert is logged (and "already done" counts as done), never raised."""
        job = a.job_id if a else job_id
        round_ = a.round if a else None
        try:
            receipt = method(*args)
        except MarketError as exc:
            name = getattr(exc, "error_name", "")
            if name in (ALREADY_DONE_ERRORS if a is not None else HOUSEKEEPING_RACE_ERRORS):
                self.emit(phase, job=job, round=round_, note=f"already done ({name})")
                return _AlreadyDone()
            self.emit(f"{phase}-reverted", level=logging.INFO if a is None else logging.WARNING, job=job, round=round_, error=str(exc))
            return None
        self.emit(phase, job=job, round=round_, tx=_tx(receipt), gas=getattr(receipt, "gas_used", None))
        return receipt

    def emit(self, phase: str, level: int = logging.INFO, **fields: Any) -> None:
        """One structured log line per event: `worker=0x.. phase=commit job=3 round=1 tx=0x.. gas=51234`."""
        record = {"worker": self.address, "phase": phase, **{k: v for k, v in fields.items() if v is not None}}
        log.log(level, " ".join(f"{key}={_fmt(value)}" for key, value in record.items()))
        if self.on_event is not None:
            self.on_event(record)


class _AlreadyDone:
    tx_hash = None
    gas_used = None


def _arg(event: Any, name: str) -> Any:
    args = event.args
    value = args[name] if name in args else args[_snake(name)]
    return value


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value).lower()


def _tx(receipt: Any) -> str | None:
    tx = getattr(receipt, "tx_hash", None)
    return _hex(tx) if tx is not None else None


def _fmt(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return _hex(value)
    text = str(value)
    return repr(text) if (" " in text or not text) else text
