"""Exact integer kernels of the verifier: GEMM, convolution, pooling and the requantize epilogue.

Each has a fast path (float BLAS on integers under a proven exactness bound, im2col, vectorized
window loops) and a reference path (plain int64), and the two agree bit for bit; see exact_gemm.py for
the argument and tests/verifier/test_kernels*.py for the evidence.
"""

from contextlib import contextmanager

from verifier.kernels.convolution import conv, plan_conv
from verifier.kernels.epilogue import requantize
from verifier.kernels.exact_gemm import GemmPlan, Prepared, gemm, plan_gemm, prepare
from verifier.kernels.pooling import avg_pool_sum, max_pool
from verifier.kernels.window import release_scratch, scratch_bytes

__all__ = [
    "GemmPlan", "Prepared", "avg_pool_sum", "conv", "gemm", "max_pool", "plan_conv", "plan_gemm",
    "prepare", "release_scratch", "requantize", "scratch_bytes", "single_threaded",
]


@contextmanager
def single_threaded():
    """Limit BLAS and OpenMP pools to one thread inside the block (a worker runs jobs side by side).
    Results are identical at any thread count (the kernels are exact); this is for throughput."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
