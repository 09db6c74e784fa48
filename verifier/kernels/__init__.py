"""Exact integer kernels of the verifier: GEMM, convolution, pooling and the requantize epilogue.

Each has a fast path (float BLAS on integers under a proven exactness bound, im2col, vectorized
window loops, and compiled loops for the passes around them: loops/) and a reference path (plain int64),
and the two agree bit for bit; see exact_gemm.py for the argument and tests/verifier/test_kernels*.py and
test_loops.py for the evidence.
"""

import ctypes
import ctypes.util
from contextlib import contextmanager

from verifier.kernels.convolution import conv, plan_conv
from verifier.kernels.epilogue import requantize
from verifier.kernels.exact_gemm import GemmPlan, Prepared, gemm, plan_gemm, prepare
from verifier.kernels.pooling import avg_pool, avg_pool_sum, max_pool
from verifier.kernels.window import release_scratch, scratch_bytes

__all__ = [
    "GemmPlan", "Prepared", "avg_pool", "avg_pool_sum", "conv", "gemm", "max_pool", "plan_conv", "plan_gemm",
    "keep_freed_memory", "prepare", "release_scratch", "requantize", "scratch_bytes", "single_threaded",
    "thread_limit",
]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks below this come from the heap and are reused
TRIM_THRESHOLD = 512 << 20  # free heap kept before it is returned to the system


def keep_freed_memory() -> bool:
    """Process-wide, glibc only: keep freed blocks up to 32 MiB in the heap for reuse. By default glibc maps
    each block of a few hundred KiB afresh and unmaps it when freed, so every numpy temporary of a run
    costs page faults and the kernel's zero-fill (LayerNorm over a (64, 16, 64) tensor: 1.6 ms, 0.44 ms
    with this). Memory reuse only: results are the same bits. True when applied (a no-op elsewhere).
    The worker's job processes call it (worker/slot.py), as does scripts/bench_verifier.py."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        return False
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


@contextmanager
def single_threaded():
    """Limit BLAS and OpenMP pools to one thread inside the block (a worker runs jobs side by side).
    Results are identical at any thread count (the kernels are exact); this is for throughput."""
    with thread_limit(1):
        yield


def thread_limit(threads: int):
    """threadpoolctl's limit of BLAS and OpenMP pools to `threads`, as a context manager, set after loading every BLAS
    the kernels call - numpy's, and scipy's, which the compiled direct products call through numba - since
    threadpoolctl limits the libraries loaded when it is set."""
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)
