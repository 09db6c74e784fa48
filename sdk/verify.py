"""Independent verification of a job: anyone holding a job id can check that the chain finalized it and
that the program, input and output bytes the gateway serves are exactly the ones the chain committed to.
Optionally the job is re-executed locally and its result hash compared with the chain's."""

from dataclasses import dataclass, field

from sdk.errors import (BlobNotFoundError, ContentMismatchError, JobNotFinalizedError, ResultMismatchError,
                        VerificationError)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: not run (an earlier check failed, or not asked for)
    detail: str


@dataclass
class Verification:
    """Every check of one job, in order; `ok` only when all that ran passed and the required ones ran."""

    job_id: int
    checks: list[Check] = field(default_factory=list)
    result_hash: str | None = None
    program_bytes: bytes | None = field(default=None, repr=False)
    input_bytes: bytes | None = field(default=None, repr=False)
    output_bytes: bytes | None = field(default=None, repr=False)
    error: VerificationError | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None and all(check.passed is not False for check in self.checks)

    def raise_for_failure(self) -> "Verification":
        if self.error is not None:
            raise self.error
        return self

    def _record(self, name: str, passed: bool | None, detail: str) -> None:
        self.checks.append(Check(name, passed, detail))


CHECK_NAMES = ("finalized", "program", "input", "output", "recompute")


def verify_job(market, gateway, job_id: int, *, recompute: bool = False) -> Verification:
    """Run the checks; failures are recorded (see Verification.error), never raised here."""
    verification = Verification(job_id=int(job_id))
    try:
        _run_checks(verification, market, gateway, int(job_id), recompute)
    except VerificationError as exc:
        exc.verification = verification
        verification.error = exc
        done = {check.name for check in verification.checks}
        for name in CHECK_NAMES:
            if name not in done:
                verification._record(name, None, "not run: an earlier check failed")
    return verification


def _run_checks(verification: Verification, market, gateway, job_id: int, recompute: bool) -> None:
    from contracts import JobStatus

    job = market.get_job(job_id)
    if job.status != JobStatus.FINALIZED:
        state = "does not exist" if job.status == JobStatus.NONE else f"is {job.status.name}"
        verification._record("finalized", False, f"job {job_id} {state} on chain")
        raise JobNotFinalizedError("finalized", f"job {job_id} {state}, not FINALIZED: it has no result")
    verification.result_hash = job.result_hash
    verification._record("finalized", True, f"FINALIZED in round {job.round}, result {job.result_hash}")

    verification.program_bytes = _fetch(verification, gateway, "program", job.program_hash)
    verification.input_bytes = _fetch(verification, gateway, "input", job.input_hash)
    verification.output_bytes = _fetch(verification, gateway, "output", job.result_hash)

    if not recompute:
        verification._record("recompute", None, "not asked for (recompute=True re-executes locally)")
        return
    from verifier import execute_job

    outcome = execute_job(verification.program_bytes, verification.input_bytes)
    if outcome.result_hash != job.result_hash:
        verification._record("recompute", False, f"local result {outcome.result_hash} != chain {job.result_hash}")
        raise ResultMismatchError(job.result_hash, outcome.result_hash)
    verification._record("recompute", True, f"local re-execution gives {outcome.result_hash}")


def _fetch(verification: Verification, gateway, what: str, expected_hash: str) -> bytes:
    try:
        data = gateway.get_blob(expected_hash, what=what)
    except ContentMismatchError as exc:
        verification._record(what, False, f"gateway bytes hash to {exc.actual}, chain says {expected_hash}")
        raise
    except BlobNotFoundError as exc:
        verification._record(what, False, f"the gateway has no {what} bytes for {expected_hash}")
        raise VerificationError(what, f"the gateway has no {what} bytes under {expected_hash}: {exc.detail}") from exc
    verification._record(what, True, f"{len(data)} bytes hash to {expected_hash}")
    return data
