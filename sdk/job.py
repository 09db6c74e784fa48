"""A submitted job: follow it through its phases, move it along (assign, finalize) when that is due,
and fetch its verified result."""

import time

from sdk.errors import ChainError, JobFailedError, JobNotFinalizedError, JobTimeoutError

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
        from contracts import JobStatus

        if verify:
            verification = self.client.verify(self.job_id, recompute=recompute)
            if self.program is None:
                self.program = _load_program(verification.program_bytes)
            return verification.output_bytes
        info = self.info()
        if info.status == JobStatus.UNRESOLVED:
            raise JobFailedError(self.job_id, f"job {self.job_id} ended UNRESOLVED: no result (the fee was refunded)")
        if info.status != JobStatus.FINALIZED:
            raise JobNotFinalizedError("finalized", f"job {self.job_id} is {info.status.name}, not FINALIZED")
        if self.program is None:
            self.program = _load_program(self.client.gateway.get_blob(info.program_hash, what="program"))
        return self.client.gateway.get_blob(info.result_hash, what="output")

    def result(self, verify: bool = True, *, recompute: bool = False) -> list:
        """The job's outputs as float arrays, like onnxruntime's `run`. verify=True checks the job against the
        chain first (see Client.verify); any disagreement raises a specific VerificationError."""
        from verifier import InferenceSession

        if verify:
            from contracts import JobStatus

            if self.status() == JobStatus.UNRESOLVED:
                raise JobFailedError(self.job_id, f"job {self.job_id} ended UNRESOLVED: no result (fee refunded)")
        data = self.output_bytes(verify=verify, recompute=recompute)
        return InferenceSession(self.program).decode_outputs(data)


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
    from verifier import Program

    return Program.from_bytes(data)
