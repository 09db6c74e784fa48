"""Compiled loops (numba) for the passes numpy would make one at a time: each reads its input once and
writes its output once, where the same arithmetic in numpy costs a pass over memory per step.

Every loop computes exactly what the numpy form it replaces computes, in the same operations:
  - integers: int64 additions, shifts and comparisons, which no compiler may change;
  - floats: additions, comparisons, min / max and power-of-two scalings of exact values, each one IEEE
    operation, compiled without fast-math (numba's default), so LLVM may neither reassociate nor fuse
    them into FMAs; the results are the bits of the proofs in epilogue.py whatever the CPU or its SIMD width.
tests/verifier/test_loops.py checks each against its pure-Python body (`py_func`, no compiler) and
against the numpy form; the kernels' fast == reference tests cover them too.

Arrays arrive in a fixed rank (the callers' wrappers add unit axes) and any strides; compiled code is
cached next to this file (numba's cache), so a process pays the compilation once per machine.
"""

import numpy as np
from numba import njit

_compiled = njit(nogil=True, cache=True)


@_compiled
def finish(y, offset, correct, threshold, lo, hi, magic, unit, out):  # pragma: no cover - compiled
    """out = the epilogue's rounding of v = y + offset, elementwise (float64, exact): v - [v <= threshold]
    when `correct`, clipped to [lo, hi], rounded to a multiple of `unit` by one float addition of `magic`
    (epilogue.py: round-to-nearest, never a tie), then divided by `unit` (a power of two: exact).
    y: float32 or float64 (A, B, D); offset: float64 (A, B, D), usually a broadcast view (a stride of 0
    along D: one offset per row, read once); out: int64 (A, B, D), not y's memory (an aliased output keeps
    LLVM from vectorizing the loop: several times slower)."""
    inverse = 1.0 / unit
    A, B, D = y.shape
    per_row = offset.strides[2] == 0
    for a in range(A):
        for b in range(B):
            row, offsets, target = y[a, b], offset[a, b], out[a, b]
            if per_row:
                shift = offsets[0] if D else 0.0
                for d in range(D):
                    target[d] = _rounded(row[d] + shift, correct, threshold, lo, hi, magic, inverse)
            else:
                for d in range(D):
                    target[d] = _rounded(row[d] + offsets[d], correct, threshold, lo, hi, magic, inverse)


@njit(inline="always")
def _rounded(v, correct, threshold, lo, hi, magic, inverse):  # pragma: no cover - compiled
    if correct and v <= threshold:
        v -= 1.0
    v = min(max(v, lo), hi)
    return np.int64(((v + magic) - magic) * inverse)
