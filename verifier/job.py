"""execute_job: what a worker runs. Never raises on a hostile program or input: anything that cannot run
gives the deterministic error outcome (docs/fixed-point.md, "Job outcome"), the same bytes on every
honest machine, so workers still agree on the result hash.

MemoryError is deliberately *not* an outcome: whether an allocation fails depends on the machine, not on
the job (the element limits of verifier/cost.py bound what a job may allocate), so it propagates and the
worker stays silent for that round and retries instead of committing a hash other machines would not."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from verifier.encoding import decode_tensors, encode_tensors, keccak_hex
from verifier.errors import (CompileError, CostLimitError, FeedError, ModelLoadError, OutOfRangeError,
                             ProgramFormatError, UnsupportedOpError, VerifierError)
from verifier.feeds import check_encoded
from verifier.interpreter import MAX_COST, execute
from verifier.kernels import release_scratch, scratch_bytes, single_threaded
from verifier.program import Program

ERROR_TENSOR = "vinfer.error"
# error code per class: part of the protocol (the bytes of the error outcome), never renumber
ERROR_CODES = {ProgramFormatError: 1, UnsupportedOpError: 2, CostLimitError: 3, FeedError: 4,
               OutOfRangeError: 5, ModelLoadError: 6, CompileError: 7}
INTERNAL_ERROR = 99  # an op failed on malformed attributes or constants of a hostile program
KEPT_SCRATCH_BYTES = 256 << 20  # kernel buffers kept for the next job of a slot; more is freed after a job
KEPT_PROGRAMS = 2  # decoded programs a process keeps for its next jobs, with the weights its kernels prepared


@dataclass(frozen=True)
class JobOutcome:
    output_bytes: bytes
    result_hash: str
    ok: bool
    error: str | None = None
    error_code: int = 0


def error_outcome_bytes(code: int) -> bytes:
    return encode_tensors({ERROR_TENSOR: np.array([code], dtype=np.int64)})


def execute_job(program_bytes: bytes, input_bytes: bytes, *, max_cost: int = MAX_COST) -> JobOutcome:
    try:
        program = _program(program_bytes)
        feeds = check_encoded(program, decode_tensors(input_bytes))
        with single_threaded():  # one job, one core: a worker runs jobs side by side (same bits either way)
            try:
                outputs = execute(program, feeds, max_cost=max_cost)
            finally:
                if scratch_bytes() > KEPT_SCRATCH_BYTES:  # a big job's buffers must not pin a slot's memory
                    release_scratch()
        data = encode_tensors(outputs)
        return JobOutcome(data, keccak_hex(data), True)
    except VerifierError as exc:
        code = next((c for cls, c in ERROR_CODES.items() if isinstance(exc, cls)), INTERNAL_ERROR)
        return _failed(code, str(exc))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, ZeroDivisionError, OverflowError,
            RecursionError) as exc:
        return _failed(INTERNAL_ERROR, f"program failed to run: {type(exc).__name__}: {exc}")


_programs: OrderedDict[bytes, Program] = OrderedDict()  # sha256 of the bytes -> the decoded, validated program
_programs_lock = threading.Lock()


def _program(program_bytes: bytes) -> Program:
    """The program of these bytes, decoded and validated once per process for its last KEPT_PROGRAMS programs:
    a worker runs the same model for job after job, and a kept program keeps what its kernels prepared from
    its weights (float copies, limb products' packed weights), which otherwise each job would make again
    (light_resnet50: the next job in 0.16 s instead of 0.35). The same bytes give the same program, so the
    same bits."""
    key = hashlib.sha256(program_bytes).digest()
    with _programs_lock:
        if key in _programs:
            _programs.move_to_end(key)
            return _programs[key]
    program = Program.from_bytes(program_bytes)
    program.validate()
    with _programs_lock:
        _programs[key] = program
        while len(_programs) > KEPT_PROGRAMS:
            _programs.popitem(last=False)
    return program


def _failed(code: int, message: str) -> JobOutcome:
    data = error_outcome_bytes(code)
    return JobOutcome(data, keccak_hex(data), False, message, code)
