"""Exact integer Winograd F(2x2, 3x3) for 3x3, stride-1, undilated, ungrouped 2-D convolutions.

Winograd's minimal filtering computes each 2x2 output tile from a 4x4 input tile with 16
multiplications per channel pair instead of 36, so the BLAS work drops 2.25x. The textbook filter
transform has halves in it; here it is doubled (G2 = 2G) so every transform is an integer matrix:

    4 * Y = A^T [ (G2 g G2^T) (.) (B^T d B) ] A

B^T, G2 and A^T hold only 0, +-1, 2, so the transformed input and filter are exact integers with
|B^T d B| <= 4 max|x| and |G2 g G2^T| <= 9 max|w|. The 16 products summed over the C input
channels are one exact float GEMM each under plan_gemm(C, 4 |x|, 9 |w|); the output transform runs
in int64, and the final division by 4 is exact (the sum is 4 times an integer), so the result is
bit-identical to the direct convolution.
"""

import numpy as np

from verifier.kernels import window
from verifier.kernels.exact_gemm import FLOAT64_EXACT, GemmPlan, Prepared, matmul_chunked, plan_gemm

INPUT_GROWTH = 4  # max |B^T d B| / max |d|
FILTER_GROWTH = 9  # max |G2 g G2^T| / max |g|
# Below these channel counts the transforms cost more than the multiplications they save
# (scripts/bench_kernels.py).
MIN_CHANNELS = 64
BAND_BYTES = 1 << 21  # transformed input + products of one band of tile rows: about an L2 cache
MIN_TILES = 64  # fewer tiles than this and the product is bound by reading the filters, 16/9 larger here
# than im2col's (light_resnet50 / light_squeezenet at 7x7 tiles: im2col is 3% faster; scripts/bench_verifier.py)


def applies(x_shape, w_shape, strides, pads, dilations, group) -> bool:
    if len(x_shape) != 4 or tuple(w_shape[2:]) != (3, 3) or group != 1:
        return False
    if tuple(strides) != (1, 1) or tuple(dilations) != (1, 1) or None in tuple(x_shape[1:]):
        return False
    tiles = -(-(x_shape[2] + pads[0] + pads[2] - 2) // 2) * -(-(x_shape[3] + pads[1] + pads[3] - 2) // 2)
    batch = x_shape[0] or 1  # a symbolic batch: judge by one image
    return min(w_shape[0], w_shape[1]) >= MIN_CHANNELS and batch * tiles >= MIN_TILES


def plan(channels: int, x_bound: int, w_bound: int) -> GemmPlan:
    base = plan_gemm(channels, INPUT_GROWTH * x_bound, FILTER_GROWTH * w_bound)
    return GemmPlan(base.path, base.chunk, f"Winograd F(2x2,3x3) on transformed operands: {base.reason}",
                    algorithm="winograd")


def conv3x3(x, w, plan_: GemmPlan, bounds, pads, out_shape, requantize=None) -> np.ndarray:
    """x int64 (N, C, H, W), w int64 array or Prepared (OC, C, 3, 3) -> int64 (N, OC, *out_shape).
    plan_ = plan(C, *bounds), bounds = (max |x|, max |w|). Large images go in bands of tile rows so
    the transformed tiles and their products stay in cache. With `requantize` (epilogue.Requantize) the
    result is the requantized activations; when `fusable` it is folded into the products (see below)."""
    dtype = np.float64 if plan_.path == "float64" else np.float32
    N, C = x.shape[:2]
    OH, OW = out_shape
    TH, TW = -(-OH // 2), -(-OW // 2)
    phases = _parity_phases(x, pads, TH, TW, dtype)
    fused = requantize is not None and _fusable(requantize, plan_, C, bounds)
    U = _fused_filter(w, requantize) if fused else _filter_transform(w, dtype)  # (4, 4, OC, C [+ 1])
    OC, depth = U.shape[2], U.shape[3]
    # The output transform adds 9 products' sums: exact in float64 while 9 * C * 36 |x| |w| < 2**53.
    out_bound = 9 * C * INPUT_GROWTH * FILTER_GROWTH * bounds[0] * bounds[1]
    transform_dtype = np.float64 if out_bound < FLOAT64_EXACT else np.int64
    out = np.empty((N, OC, OH, OW), dtype=np.int64)
    band = max(1, BAND_BYTES // (16 * (C + OC) * N * TW * np.dtype(dtype).itemsize))
    for top in range(0, TH, band):
        rows = min(band, TH - top)
        V = window.scratch("winograd_input", (4, 4, N, depth, rows, TW), dtype)
        _input_transform(phases, top, rows, TW, V[:, :, :, :C])
        if fused:
            V[:, :, :, C] = 1.0
        Ur, Vr = U.reshape(16, 1, OC, depth), V.reshape(16, N, depth, rows * TW)
        if plan_.chunk >= C:
            M = np.matmul(Ur, Vr, out=window.scratch("winograd_product", (16, N, OC, rows * TW), dtype))
        else:
            M = matmul_chunked(Ur, Vr, C, plan_.chunk, b_k_axis=2)
        M = M.astype(transform_dtype, copy=False)
        Y = _output_transform(M.reshape(4, 4, N, OC, rows, TW))  # 4 times the result (fused: requantizable)
        height = min(2 * (top + rows), OH) - 2 * top
        target = out[:, :, 2 * top:2 * top + height]
        if fused:
            requantize.finish(Y[:, :, :height, :OW], out=target)
        elif transform_dtype == np.int64:
            np.right_shift(Y[:, :, :height, :OW], 2, out=target)  # exact: every entry is a multiple of 4
        else:  # exact: a power-of-two scaling of an integer multiple of 4
            np.multiply(Y[:, :, :height, :OW], 0.25, out=target, casting="unsafe")
    return out if requantize is None or fused else requantize.apply(out, 1)


# The fused epilogue (epilogue.Requantize): the filters are halved, so A^T m A is twice the convolution
# instead of 4 times it, and the 16 products get one more input channel of ones whose filter is
# 2 * bias + 1/2 at tile position (1, 1) and 0 elsewhere. Row and column 1 of A^T are all ones, so that
# entry adds 2 * bias + 1/2 to each of a tile's 4 outputs: the output transform yields
# 2 (acc + bias) + 1/2, which Requantize.finish rounds. Every value is a multiple of 1/2, exact while
# 2 * (9 * 36 C |x| |w| + |bias| + 1) < 2**53.


def _fusable(requantize, plan_: GemmPlan, C: int, bounds) -> bool:
    """The bound above; it implies the float64 one-pass plan and float64 output transform conv3x3 takes."""
    transformed = 9 * C * INPUT_GROWTH * FILTER_GROWTH * bounds[0] * bounds[1]
    return (plan_.path == "float64" and requantize.fusable(9 * C * bounds[0] * bounds[1])
            and 2 * (transformed + requantize.bias_bound + 1) < FLOAT64_EXACT)


def _fused_filter(w, requantize) -> np.ndarray:
    """(4, 4, OC, C + 1) float64: the transformed filters halved, and the bias channel."""
    key = ("winograd-fused", None if requantize.bias is None else requantize.bias.tobytes())
    cache = w.cache if isinstance(w, Prepared) else {}
    if key not in cache:
        U = _filter_transform(w.values if isinstance(w, Prepared) else w, np.float64)
        fused = np.zeros(U.shape[:3] + (U.shape[3] + 1,), dtype=np.float64)
        np.multiply(U, 0.5, out=fused[..., :-1])
        fused[1, 1, :, -1] = requantize.bias_column(U.shape[2])
        cache[key] = fused
    return cache[key]


def _parity_phases(x, pads, TH, TW, dtype):
    """The zero-padded input split into its four (row, column) parity phases (2, 2, N, C, TH+1, TW+1),
    so that row / column k of every 4x4 tile is one contiguous slice: phase[k % 2][k // 2 : k // 2 + T]."""
    N, C = x.shape[:2]
    phases = window.scratch("winograd_phases", (2, 2, N, C, TH + 1, TW + 1), dtype)
    phases.fill(0)
    for pr in range(2):
        for pc in range(2):
            rows = _parity_slices(pr, pads[0], x.shape[2], TH + 1)
            cols = _parity_slices(pc, pads[1], x.shape[3], TW + 1)
            if rows and cols:
                phases[pr, pc, :, :, rows[0], cols[0]] = x[:, :, rows[1], cols[1]]
    return phases


def _input_transform(phases, top, rows, TW, V):
    """V[a, b] = (B^T d B)[a, b] for the 4x4 input tiles d of tile rows top .. top + rows."""
    N, C = phases.shape[2:4]
    mixed = window.scratch("winograd_rows", (4, 2, N, C, rows, TW + 1), V.dtype)
    for pc in range(2):
        d = [phases[k % 2, pc, :, :, top + k // 2:top + k // 2 + rows] for k in range(4)]
        np.subtract(d[0], d[2], out=mixed[0, pc])
        np.add(d[1], d[2], out=mixed[1, pc])
        np.subtract(d[2], d[1], out=mixed[2, pc])
        np.subtract(d[1], d[3], out=mixed[3, pc])
    for a in range(4):
        d = [mixed[a, k % 2, ..., k // 2:k // 2 + TW] for k in range(4)]
        np.subtract(d[0], d[2], out=V[a, 0])
        np.add(d[1], d[2], out=V[a, 1])
        np.subtract(d[2], d[1], out=V[a, 2])
        np.subtract(d[1], d[3], out=V[a, 3])


def _parity_slices(parity, pad, size, length):
    """(target, source) slices moving the input positions whose padded index is `parity` mod 2
    into a phase of `length` entries; None when there are none."""
    first = max(-(-(pad - parity) // 2), 0)
    stop = min(-(-(size + pad - parity) // 2), length)
    if stop <= first:
        return None
    start = first * 2 + parity - pad
    return slice(first, stop), slice(start, start + 2 * (stop - first - 1) + 1, 2)


_G2 = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], dtype=np.int64)


def _filter_transform(w, dtype) -> np.ndarray:
    """(G2 g G2^T) for every (OC, C) filter, as (4, 4, OC, C) in `dtype`; cached on a Prepared weight."""
    if isinstance(w, Prepared):
        key = ("winograd", np.dtype(dtype))
        cached = w.cache.get(key)
        if cached is None:
            cached = w.cache[key] = _filter_transform(w.values, dtype)
        return cached
    transformed = np.einsum("ai,ocij,bj->aboc", _G2, w, _G2)  # int64, exact
    return np.ascontiguousarray(transformed.astype(dtype))


def _output_transform(M: np.ndarray) -> np.ndarray:
    """A^T m A for every tile: (4, 4, N, OC, TH, TW) -> (N, OC, 2 TH, 2 TW), in M's dtype."""
    N, OC, TH, TW = M.shape[2:]
    s0 = window.scratch("winograd_s0", M.shape[1:], M.dtype)  # (4, N, OC, TH, TW): row 0 of A^T m
    s1 = window.scratch("winograd_s1", M.shape[1:], M.dtype)
    np.add(M[0], M[1], out=s0)
    s0 += M[2]
    np.subtract(M[1], M[2], out=s1)
    s1 -= M[3]
    Y = np.empty((N, OC, TH, 2, TW, 2), dtype=M.dtype)
    for row, s in enumerate((s0, s1)):
        Y[:, :, :, row, :, 0] = s[0] + s[1] + s[2]
        Y[:, :, :, row, :, 1] = s[1] - s[2] - s[3]
    return Y.reshape(N, OC, 2 * TH, 2 * TW)
