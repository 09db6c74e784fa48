"""What one execution slot runs. Kept free of heavy imports at module level so that a spawned slot
process pins its math libraries to one thread *before* numpy is first imported."""

import os

SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def init_slot_process() -> None:
    """Initializer of a slot process: one thread per job (a worker runs jobs side by side instead), and
    freed memory kept for the next run's temporaries (verifier.kernels.keep_freed_memory)."""
    for name in SINGLE_THREAD_ENV:
        os.environ[name] = "1"
    from verifier.kernels import keep_freed_memory

    keep_freed_memory()


def execute(program_bytes: bytes, input_bytes: bytes) -> tuple[bytes, str, bool, str | None]:
    """verifier.execute_job as plain picklable values: (output_bytes, result_hash, ok, error)."""
    from verifier import execute_job

    outcome = execute_job(program_bytes, input_bytes)
    return outcome.output_bytes, outcome.result_hash, outcome.ok, outcome.error
