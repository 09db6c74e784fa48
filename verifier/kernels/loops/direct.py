"""Compiled loops for products with their epilogue, each one call: a GEMM, and a 2-D convolution (with a max pool of
its output). Through the general kernels a small layer's run is mostly their Python, their buffers and the passes
between them; here it is one call: the operand converted to float64 (a convolution's columns gathered, as
loops.im2col), one BLAS product (np.dot, which numba hands to scipy's BLAS), and the epilogue (kernels/direct.py
says when they run).

The product is exact: every product of two integers below 2**26 is, and every partial sum is an integer below 2**53
when the caller's bound K |a| |w| < 2**53 holds, so the sum is exact whatever the order, blocking or FMA of the BLAS
(the exact_gemm argument). It is then converted to int64 (exact), the int64 bias added and the epilogue's integer
form applied (_requantized, as loops.depthwise): the integers of the int64 reference product and
epilogue.requantize."""

import numpy as np

from verifier.kernels.loops._compile import compiled, inlined
from verifier.kernels.loops.rows import _requantized, _rounding  # noqa: F401 (inlined when compiled)


@compiled
def gemm_requantize(a, w, bias, shift, low, high, correct, out):  # pragma: no cover - compiled
    """out[m, n] = _requantized(sum_k a[m, k] * w[k, n] + bias[n]) into [low, high], shift 0..62 (the correction
    skipped when not `correct`: a fused Relu, low = 0). a: int64 (M, K), any strides; w: float64 or float32 (K, N),
    the weight's integers, C-contiguous (float32 when K |a| |w| < 2**24: then exact as well); bias: int64 (N,);
    out: int64 (M, N). The sums are one BLAS product (np.dot: exact, as above) of a's integers in w's type."""
    M, K = a.shape
    N = w.shape[1]
    rounding = _rounding(shift, correct)
    rows = np.empty((M, K), dtype=w.dtype)
    for m in range(M):
        for k in range(K):
            rows[m, k] = a[m, k]
    acc = np.empty((M, N), dtype=w.dtype)
    np.dot(rows, w, acc)
    for m in range(M):
        sums, target = acc[m], out[m]
        for n in range(N):
            target[n] = _requantized(np.int64(sums[n]) + bias[n], rounding, low, high)


@compiled
def conv_requantize(x, w, kernel, strides, dilations, pads, out_shape, bias, shift, low, high, correct, pool,
                    out):  # pragma: no cover - compiled
    """A 2-D convolution with its epilogue, then a max pool: y[n, g * OCg + o, oh, ow] = _requantized(acc +
    bias[g * OCg + o]), acc = sum over c < Cg and taps (i, j) of w[g, o, (c * KH + i) * KW + j] *
    x[n, g * Cg + c, h, v] where h = oh * SH + i * DH - PH and v = ow * SW + j * DW - PW (0 where that lies in the
    padding), for (oh, ow) in out_shape; out[n, c] = the maxima of y[n, c] over the windows of pool = (kernel,
    strides, dilations, begin pads: 8 ints; windows lie partly inside y, as pooling._max_geometry checks), or y
    itself for the pool (1, 1, 1, 1, 1, 1, 0, 0). x: int64 (N, C, H, W); w: float64 or float32 (group, OCg,
    Cg * KH * KW), the filters' integers, C-contiguous (as gemm_requantize's); bias: int64 (OC,); out: int64
    (N, OC, pooled height, pooled width), any strides. Each image's columns (as loops.im2col) are multiplied by each
    group's filters in one BLAS product."""
    N, C, H, W = x.shape
    group, _, K = w.shape
    KH, KW = kernel
    OH, OW = out_shape
    OC = out.shape[1]
    Cg, OCg = C // group, OC // group
    pooled = not (pool[0] == pool[1] == pool[2] == pool[3] == 1 and pool[6] == pool[7] == 0)
    rounding = _rounding(shift, correct)
    columns = np.empty((K, OH * OW), dtype=w.dtype)
    acc = np.empty((w.shape[1], OH * OW), dtype=w.dtype)
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
            np.dot(w[g], columns, acc)
            for o in range(OCg):
                channel, sums = g * OCg + o, acc[o]
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
