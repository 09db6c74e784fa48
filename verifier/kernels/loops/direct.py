"""Compiled loops for small products with their epilogue, each one call: a GEMM of a few rows and a 2-D convolution
of a small image. Through the general kernels such a layer's run is mostly their Python, their BLAS call and the
passes between them; here it is one loop (kernels/direct.py says when they run).

Each product is summed in float64: every product of two integers below 2**26 is exact, and every partial sum is an
integer below 2**53 when the caller's bound K |a| |w| < 2**53 holds, so the sum is exact whatever the order (the
exact_gemm argument). It is then converted to int64 (exact), the int64 bias added and the epilogue's integer form
applied (_requantized, as loops.depthwise): the integers of the int64 reference product and epilogue.requantize."""

import numpy as np

from verifier.kernels.loops._compile import compiled, inlined
from verifier.kernels.loops.rows import _requantized, _rounding  # noqa: F401 (inlined when compiled)


@compiled
def gemm_requantize(a, w, bias, shift, low, high, correct, out):  # pragma: no cover - compiled
    """out[m, n] = _requantized(sum_k a[m, k] * w[k, n] + bias[n]) into [low, high], shift 0..62 (the correction
    skipped when not `correct`: a fused Relu, low = 0). a: int64 (M, K), any strides; w: float64 (K, N), the
    weight's integers, rows contiguous; bias: int64 (N,); out: int64 (M, N)."""
    M, K = a.shape
    N = w.shape[1]
    rounding = _rounding(shift, correct)
    acc = np.empty(N, dtype=np.float64)
    for m in range(M):
        acc[:] = 0.0
        for k in range(K):
            _accumulate(acc, np.float64(a[m, k]), w[k])
        target = out[m]
        for n in range(N):
            target[n] = _requantized(np.int64(acc[n]) + bias[n], rounding, low, high)


@compiled
def conv_requantize(x, w, kernel, strides, dilations, pads, out_shape, bias, shift, low, high, correct, pool,
                    out):  # pragma: no cover - compiled
    """A 2-D convolution with its epilogue, then a max pool: y[n, g * OCg + o, oh, ow] = _requantized(acc +
    bias[g * OCg + o]), acc = sum over c < Cg and taps (i, j) of w[g, o, (c * KH + i) * KW + j] *
    x[n, g * Cg + c, h, v] where h = oh * SH + i * DH - PH and v = ow * SW + j * DW - PW (0 where that lies in the
    padding), for (oh, ow) in out_shape; out[n, c] = the maxima of y[n, c] over the windows of pool = (kernel,
    strides, dilations, begin pads: 8 ints; windows lie partly inside y, as pooling._max_geometry checks), or y
    itself for the pool (1, 1, 1, 1, 1, 1, 0, 0). x: int64 (N, C, H, W); w: float64 (group, OCg rounded up to a
    multiple of 4, Cg * KH * KW), the filters' integers (rows past OCg: zeros); bias: int64 (OC,); out: int64
    (N, OC, pooled height, pooled width), any strides. Each image's columns are gathered first (as loops.im2col),
    then summed along its output positions, contiguous - the loop the compiler vectorizes - for four output
    channels at a time, each column read once for the four."""
    N, C, H, W = x.shape
    group, _, K = w.shape
    KH, KW = kernel
    OH, OW = out_shape
    OC = out.shape[1]
    Cg, OCg = C // group, OC // group
    pooled = not (pool[0] == pool[1] == pool[2] == pool[3] == 1 and pool[6] == pool[7] == 0)
    rounding = _rounding(shift, correct)
    columns = np.empty((K, OH * OW), dtype=np.float64)
    acc = np.empty((4, OH * OW), dtype=np.float64)
    plane = np.empty((OH, OW), dtype=np.int64)
    for n in range(N):
        for g in range(group):
            for c in range(Cg):
                image = x[n, g * Cg + c]
                for i in range(KH):
                    for j in range(KW):
                        row = columns[(c * KH + i) * KW + j]
                        left = j * dilations[1] - pads[1]
                        for oh in range(OH):
                            h = oh * strides[0] + i * dilations[0] - pads[0]
                            for ow in range(OW):
                                v = ow * strides[1] + left
                                inside = 0 <= h < H and 0 <= v < W
                                row[oh * OW + ow] = image[h, v] if inside else 0
            for first in range(0, OCg, 4):
                acc[:] = 0.0
                for k in range(K):
                    _accumulate4(acc, w[g, first, k], w[g, first + 1, k], w[g, first + 2, k], w[g, first + 3, k],
                                 columns[k])
                for o in range(first, min(first + 4, OCg)):
                    channel, sums = g * OCg + o, acc[o - first]
                    target = plane if pooled else out[n, channel]
                    for oh in range(OH):
                        for ow in range(OW):
                            total = np.int64(sums[oh * OW + ow]) + bias[channel]
                            target[oh, ow] = _requantized(total, rounding, low, high)
                    if pooled:
                        _max_pooled(plane, pool, out[n, channel])


@inlined
def _max_pooled(plane, pool, out):  # pragma: no cover - compiled
    """out[ph, pw] = the maximum of plane over the window of (ph, pw): pool = (KH, KW, SH, SW, DH, DW, PH, PW)."""
    H, W = plane.shape
    for ph in range(out.shape[0]):
        for pw in range(out.shape[1]):
            best = np.iinfo(np.int64).min
            for i in range(pool[0]):
                h = ph * pool[2] + i * pool[4] - pool[6]
                if 0 <= h < H:
                    for j in range(pool[1]):
                        v = pw * pool[3] + j * pool[5] - pool[7]
                        if 0 <= v < W and plane[h, v] > best:
                            best = plane[h, v]
            out[ph, pw] = best


@inlined
def _accumulate4(acc, t0, t1, t2, t3, row):  # pragma: no cover - compiled
    """acc[q] += t_q * row for the four rows of acc: one exact float64 multiply and add per entry."""
    first, second, third, fourth = acc[0], acc[1], acc[2], acc[3]
    for index in range(row.shape[0]):
        value = row[index]
        first[index] += t0 * value
        second[index] += t1 * value
        third[index] += t2 * value
        fourth[index] += t3 * value


@inlined
def _accumulate(acc, value, row):  # pragma: no cover - compiled
    """acc += value * row: one exact float64 multiply and add per entry (no FMA: numba compiles without fast-math,
    and the integers are exact either way)."""
    for index in range(acc.shape[0]):
        acc[index] += value * row[index]
