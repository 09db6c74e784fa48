"""A submitted job: follow it through its phases, move it along (assign, finalize) when that is due,
and fetch its verified result."""

import time

from sdk.errors import (ChainError, JobFailedError, JobNotFinalizedError, JobOutcomeError, JobTimeoutError,
                        ResultMismatchError)

PHASES = ("submitted", "assigned", "committed", "revealed", "finalized")


class Job:
    def __init__(self, client, job_id: int, program=None):
        self.client, self.job_id, self.program = client, int(job_id), program

    def __repr__(self) -> str:
        return f"Job({self.job_id})"

    # -- state
    def info(self):
        """The job as the chain stores it (contracts.Job)."""
        from sdk.client import _chain_call

        return _chain_call(self.client.market.get_job, self.job_id)

    def status(self):
        """contracts.JobStatus: SUBMITTED, COMMITTING, REVEALING, FINALIZED or UNRESOLVED."""
        return self.info().status

    def advance(self) -> None:
        """Call assign / finalize when the chain says they are due. Anyone may call them, so losing a race
        to a worker or another client is fine; needs the client's key, and does nothing without one."""
        if self.client.account is None:
            return
        market = self.client.market
        from contracts import MarketError

        for ready, act in ((market.can_assign, market.assign), (market.can_finalize, market.finalize)):
            try:
                if ready(self.job_id):
                    act(self.job_id)
            except MarketError:
                pass  # someone else moved the job first; the next poll sees the new state

    def wait(self, timeout: float | None = None, poll_interval: float = 1.0):
        """Poll (advancing the job when due) until it is FINALIZED or UNRESOLVED; returns the final Job info."""
        return self._follow(timeout, poll_interval, on_update=None)

    def track_progress(self, timeout: float | None = None, poll_interval: float = 1.0, console=None):
        """Like wait(), drawing a progress bar through submitted → assigned → committed → revealed → finalized."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]job {task.fields[job_id]}"), BarColumn(), TextColumn("{task.description}"),
                      TimeElapsedColumn(), console=console, transient=False) as progress:
            task = progress.add_task("submitted", total=len(PHASES) - 1, job_id=self.job_id)

            def show(info) -> None:
                phase, text = describe(info)
                progress.update(task, completed=phase, description=text)

            return self._follow(timeout, poll_interval, on_update=show)

    def _follow(self, timeout, poll_interval, on_update):
        from contracts import JobStatus

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.advance()
            info = self.info()
            if on_update is not None:
                on_update(info)
            if info.status in (JobStatus.FINALIZED, JobStatus.UNRESOLVED):
                return info
            if info.status == JobStatus.NONE:
                raise ChainError(f"job {self.job_id} does not exist on market {self.client.market_address}")
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeoutError(self.job_id, f"job {self.job_id} is still {info.status.name} after {timeout} s")
            time.sleep(poll_interval)

    # -- result
    def output_bytes(self, *, verify: bool = True, recompute: bool = False) -> bytes:
        """Canonical output bytes, checked against the on-chain result hash (and, with verify, everything else)."""
        return self._fetch(verify, recompute)[2]

    def result(self, verify: bool = True, *, recompute: bool = False) -> list:
        """The job's outputs as float arrays, like onnxruntime's `run`. verify=True checks the job against the
        chain first (see Client.verify); any disagreement raises a specific VerificationError. A job whose
        workers agreed on the error outcome raises JobOutcomeError with the reason."""
        from verifier import InferenceSession
        from verifier.encoding import decode_tensors, keccak_hex
        from verifier.job import ERROR_TENSOR

        program_bytes, input_bytes, data = self._fetch(verify, recompute)
        tensors = decode_tensors(data)
        if list(tensors) == [ERROR_TENSOR]:
            from verifier import execute_job  # why it cannot run: it fails the same way here as everywhere

            outcome = execute_job(program_bytes, input_bytes or self._input_bytes())
            if outcome.ok:
                raise ResultMismatchError(keccak_hex(data), outcome.result_hash)
            raise JobOutcomeError(self.job_id, int(tensors[ERROR_TENSOR].reshape(-1)[0]), outcome.error or "")
        return InferenceSession(self.program).decode_outputs(data)

    def _fetch(self, verify: bool, recompute: bool) -> tuple[bytes, bytes | None, bytes]:
        """(program bytes, input bytes or None, output bytes), each checked against its on-chain hash."""
        from contracts import JobStatus

        if self.status() == JobStatus.UNRESOLVED:
            raise JobFailedError(self.job_id, f"job {self.job_id} ended UNRESOLVED: no result (the fee was refunded)")
        if verify:
            verification = self.client.verify(self.job_id, recompute=recompute)
            self.program = self.program or _load_program(verification.program_bytes)
            return verification.program_bytes, verification.input_bytes, verification.output_bytes
        info = self.info()
        if info.status != JobStatus.FINALIZED:
            raise JobNotFinalizedError("finalized", f"job {self.job_id} is {info.status.name}, not FINALIZED")
        program_bytes = self.client.gateway.get_blob(info.program_hash, what="program")
        self.program = self.program or _load_program(program_bytes)
        return program_bytes, None, self.client.gateway.get_blob(info.result_hash, what="output")

    def _input_bytes(self) -> bytes:
        return self.client.gateway.get_blob(self.info().input_hash, what="input")


def describe(info) -> tuple[int, str]:
    """(phase index into PHASES, one-line description) of a contracts.Job."""
    from contracts import JobStatus

    round_note = f", round {info.round}" if info.round > 1 else ""
    if info.status == JobStatus.SUBMITTED:
        return 0, "submitted, waiting for assignment"
    if info.status == JobStatus.COMMITTING:
        return 1, f"assigned: {info.committed}/{info.round_size} committed{round_note}"
    if info.status == JobStatus.REVEALING:
        return 2, f"committed: {info.revealed}/{info.round_size} revealed{round_note}"
    if info.status == JobStatus.FINALIZED:
        return 4, f"finalized: {info.result_hash}"
    if info.status == JobStatus.UNRESOLVED:
        return 4, "unresolved: no supermajority, fee refunded"
    return 0, info.status.name.lower()


def _load_program(data: bytes):
    """The program, or None when the bytes do not load (the job then has the error outcome)."""
    from verifier import Program
    from verifier.errors import VerifierError

    try:
        return Program.from_bytes(data)
    except VerifierError:
        return None

