"""Exact integer Winograd F(2x2, 3x3) and F(4x4, 3x3) for 3x3, stride-1, undilated, ungrouped 2-D convolutions.

Winograd's minimal filtering computes each 2x2 output tile from a 4x4 input tile with 16
multiplications per channel pair instead of 36, so the BLAS work drops 2.25x. The textbook filter
transform has halves in it; here it is doubled (G2 = 2G) so every transform is an integer matrix:

    4 * Y = A^T [ (G2 g G2^T) (.) (B^T d B) ] A

B^T, G2 and A^T hold only 0, +-1, 2, so the transformed input and filter are exact integers with
|B^T d B| <= 4 max|x| and |G2 g G2^T| <= 9 max|w|. The 16 products summed over the C input
channels are one exact float GEMM each under plan_gemm(C, 4 |x|, 9 |w|); the output transform's sums
are exact too (in float64 below 2**53, else in int64), and the final division by 4 is exact (the sum is
4 times an integer), so the result is bit-identical to the direct convolution. Both transforms run as
compiled loops (loops.winograd_input, loops.winograd_output; the latter also finishes a fused epilogue).

F(4x4, 3x3) computes a 4x4 output tile from a 6x6 input tile with 36 multiplications per channel pair (4x
fewer than direct, 1.78x fewer than F(2x2, 3x3)), from 64 input channels on images large enough that its tiles
waste little (`plan_large`). Its filter transform has sixths and twenty-fourths in it; G's rows scaled by
(4, 6, 6, 24, 24, 1) and A^T's columns by 24 over the same make every matrix an integer one (loops.winograd4_input
/ _output hold them):

    576 * Y = A [ (G g G^T) (.) (B^T d B) ] A^T

with |B^T d B| <= 100 max|x| and |G g G^T| <= 49 max|w|. The 36 products over the C channels are exact float64
GEMMs while C * 4900 |x| |w| < 2**53; A's rows sum to at most 48 in magnitude, so the output transform runs in
int64, exact while 2304 times that bound is below 2**63, and its result, 576 times the convolution, is divided by
576 in float64 (exact while 576 * 9 C |x| |w| < 2**53: loops.winograd's _over_576) before the epilogue's integer
rounding (epilogue.integer_epilogue).
"""

import numpy as np

from verifier.kernels import loops, window
from verifier.kernels.epilogue import integer_epilogue
from verifier.kernels.exact_gemm import FLOAT64_EXACT, GemmPlan, Prepared, matmul_chunked, plan_gemm

INPUT_GROWTH = 4  # max |B^T d B| / max |d|
FILTER_GROWTH = 9  # max |G2 g G2^T| / max |g|
# Below this channel count the transforms cost as much as the multiplications they save; with fewer tiles
# than C / TILES_PER_CHANNEL the product is bound by reading the filters, 16/9 larger than im2col's
# (512 channels at 4x4 tiles: im2col 2.9 ms, Winograd 4.2; 256 channels there: 0.76 / 0.59).
MIN_CHANNELS = 16
TILES_PER_CHANNEL = 16
# A batch of small images (fewer tiles each than this) takes im2col, whose banded product runs the whole batch in
# a few large GEMMs: 256 8x8 images of 16 channels took 6.3 ms by Winograd against 3.6-4.1 by im2col; from
# 16x16 images (64 tiles) on the two are even, and a single image of any size keeps Winograd (13x13: 0.83-0.9)
MIN_TILES_PER_IMAGE = 64
BAND_BYTES = 1 << 21  # transformed input + products of one band of tile rows: about an L2 cache
LARGE_INPUT_GROWTH = 100  # max |B^T d B| / max |d| for F(4x4, 3x3)
LARGE_FILTER_GROWTH = 49  # max |G g G^T| / max |g|
LARGE_OUTPUT_GROWTH = 48 * 48  # max |A m A^T| / max |m|
LARGE_SCALE = 576  # A m A^T / the convolution
# F(4x4, 3x3) where its 36 products per tile come to at most this share of F(2x2, 3x3)'s 16 per smaller tile (9/16
# when both tile the output exactly; 27x27 and up come close, 13x13 and 14x14 crop too much of the larger tiles)
LARGE_TILE_WORK = 0.6
# and from this many input channels: below it the transforms outweigh the products, and F(4x4)'s output transform
# (int64) costs more than F(2x2)'s (float64, fused). With a Relu (scripts/bench_kernels.py --winograd): 0.92-0.98 of
# F(2x2)'s time at 16 channels on 55x55, 1.02-1.11 at 32 on 27x27, 0.85 at 64 on 56x56, 0.68-0.95 from 96
LARGE_MIN_CHANNELS = 64
INT64_EXACT = 1 << 63


def applies(x_shape, w_shape, strides, pads, dilations, group) -> bool:
    if len(x_shape) != 4 or tuple(w_shape[2:]) != (3, 3) or group != 1:
        return False
    if tuple(strides) != (1, 1) or tuple(dilations) != (1, 1) or None in tuple(x_shape[1:]):
        return False
    tiles = -(-(x_shape[2] + pads[0] + pads[2] - 2) // 2) * -(-(x_shape[3] + pads[1] + pads[3] - 2) // 2)
    batch = x_shape[0] or 1  # a symbolic batch: judge by one image
    return (min(w_shape[0], w_shape[1]) >= MIN_CHANNELS and batch * tiles * TILES_PER_CHANNEL >= w_shape[1]
            and (batch == 1 or tiles >= MIN_TILES_PER_IMAGE))


def plan_large(x_shape, pads, x_bound: int, w_bound: int) -> GemmPlan | None:
    """F(4x4, 3x3)'s plan for a convolution `applies` accepts, where it saves work over F(2x2, 3x3) and its sums
    are exact (module docstring), else None."""
    N, C, H, W = (d or 1 for d in x_shape)  # (a symbolic batch: judged by one image)
    if C < LARGE_MIN_CHANNELS:
        return None
    OH, OW = H + pads[0] + pads[2] - 2, W + pads[1] + pads[3] - 2
    small_tiles, large_tiles = -(-OH // 2) * -(-OW // 2), -(-OH // 4) * -(-OW // 4)
    if 36 * large_tiles > LARGE_TILE_WORK * 16 * small_tiles:
        return None
    products = C * LARGE_FILTER_GROWTH * w_bound * LARGE_INPUT_GROWTH * x_bound
    if LARGE_OUTPUT_GROWTH * products >= INT64_EXACT or LARGE_SCALE * 9 * C * x_bound * w_bound >= FLOAT64_EXACT:
        return None
    return GemmPlan("float64", C, f"Winograd F(4x4,3x3): {C} channels x 4900 x {x_bound} x {w_bound} < 2**53 in each "
                    "of 36 float64 products, their transform in int64", algorithm="winograd4x4")


def plan(channels: int, x_bound: int, w_bound: int) -> GemmPlan:
    base = plan_gemm(channels, INPUT_GROWTH * x_bound, FILTER_GROWTH * w_bound)
    return GemmPlan(base.path, base.chunk, f"Winograd F(2x2,3x3) on transformed operands: {base.reason}",
                    algorithm="winograd")


def conv3x3(x, w, plan_: GemmPlan, bounds, pads, out_shape, requantize=None, out=None) -> np.ndarray:
    """x int64 or int16 (N, C, H, W), w int64 array or Prepared (OC, C, 3, 3) -> int64 (N, OC, *out_shape).
    plan_: plan(C, *bounds), or plan_large(x.shape, pads, *bounds) for F(4x4, 3x3); bounds = (max |x|, max |w|).
    Large images go in bands of tile rows so the transformed tiles and their products stay in cache. With
    `requantize` (epilogue.Requantize) the result is the requantized activations; when `fusable` it is folded into
    the products (see below). `out`: the caller's array for the result (window.fits_result), else a new one."""
    if plan_.algorithm == "winograd4x4":
        return _conv3x3_large(x, w, bounds, pads, out_shape, requantize, out)
    dtype = np.float64 if plan_.path == "float64" else np.float32
    N, C = x.shape[:2]
    OH, OW = out_shape
    TH, TW = -(-OH // 2), -(-OW // 2)
    fused = requantize is not None and _fusable(requantize, plan_, C, bounds)
    U = _fused_filter(w, requantize) if fused else _filter_transform(w, dtype)  # (4, 4, OC, C [+ 1])
    OC, depth = U.shape[2], U.shape[3]
    # The output transform adds 9 products' sums: exact in float64 while 9 * C * 36 |x| |w| < 2**53.
    out_bound = 9 * C * INPUT_GROWTH * FILTER_GROWTH * bounds[0] * bounds[1]
    transform_dtype = np.float64 if out_bound < FLOAT64_EXACT else np.int64
    rounding = requantize.rounding() if fused else (False, 0.0, 0.0, 0.0, 0.0, 1.0)  # (unused unless fused)
    out = window.result_array(out if fused else None, (N, OC, OH, OW))  # (`out` takes finished values only)
    band = _tile_rows_per_band(U, C, N, TW, TH)
    x = window.loop_operand(x)
    for top in range(0, TH, band):
        rows = min(band, TH - top)
        V = window.scratch("winograd_input", (4, 4, N, depth, rows, TW), dtype)
        loops.winograd_input(x, pads[0], pads[1], top, V)  # (its first C channels)
        if fused:
            V[:, :, :, C] = 1.0
        Ur, Vr = U.reshape(16, 1, OC, depth), V.reshape(16, N, depth, rows * TW)
        if plan_.chunk >= C:
            M = np.matmul(Ur, Vr, out=window.scratch("winograd_product", (16, N, OC, rows * TW), dtype))
        else:
            M = matmul_chunked(Ur, Vr, C, plan_.chunk, b_k_axis=2)
        M = M.astype(transform_dtype, copy=False).reshape(4, 4, N, OC, rows, TW)
        loops.winograd_output(M, fused, *rounding, top, out)  # A^T m A, then finished (fused) or divided by 4
    return out if requantize is None or fused else requantize.apply(out, 1)


def _conv3x3_large(x, w, bounds, pads, out_shape, requantize=None, out=None) -> np.ndarray:
    """conv3x3 by F(4x4, 3x3) (plan_large), in bands of tile rows as there; the epilogue is the output transform's
    integer rounding when its integer form applies (Requantize.fits_int64), else applied after."""
    N, C = x.shape[:2]
    OH, OW = out_shape
    TH, TW = -(-OH // 4), -(-OW // 4)
    U = _filter_transform(w, np.float64, _G_LARGE)  # (6, 6, OC, C)
    OC = U.shape[2]
    fits = requantize is not None and requantize.fits_int64(9 * C * bounds[0] * bounds[1])
    bias, rounding = integer_epilogue(requantize if fits else None, np.zeros(OC, dtype=np.int64))
    out = window.result_array(out if fits else None, (N, OC, OH, OW))  # (`out` takes finished values only)
    band = _tile_rows_per_band(U, C, N, TW, TH)
    x = window.loop_operand(x)
    line = window.scratch("winograd_line", (4 * TW + 2,), np.float64)
    for top in range(0, TH, band):
        rows = min(band, TH - top)
        V = window.scratch("winograd_input", (6, 6, N, C, rows, TW), np.float64)
        loops.winograd4_input(x, pads[0], pads[1], top, line, V)
        M = np.matmul(U.reshape(36, 1, OC, C), V.reshape(36, N, C, rows * TW),
                      out=window.scratch("winograd_product", (36, N, OC, rows * TW), np.float64))
        loops.winograd4_output(M.reshape(6, 6, N, OC, rows * TW), TW, bias, *rounding, top, out)
    return out if requantize is None or fits else requantize.apply(out, 1)


def _tile_rows_per_band(U, C: int, N: int, TW: int, TH: int) -> int:
    """Tile rows a band holds: its transformed input and products, tile positions x N x (C + OC) x TW values a tile
    row in U's type, within BAND_BYTES. Every band reads all the filters U (positions..., OC, C [+ 1]): with filters
    past the cache, one band."""
    if U.nbytes > BAND_BYTES:
        return TH
    positions, OC = U.shape[0] * U.shape[1], U.shape[2]
    return max(1, BAND_BYTES // (positions * (C + OC) * N * TW * U.itemsize))


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


_G2 = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], dtype=np.int64)  # F(2x2, 3x3)'s G, doubled
_G_LARGE = np.array([[1, 0, 0], [-1, -1, -1], [-1, 1, -1], [1, 2, 4], [1, -2, 4], [0, 0, 1]],
                    dtype=np.int64)  # F(4x4, 3x3)'s G, its rows scaled by (4, 6, 6, 24, 24, 1)


def _filter_transform(w, dtype, G=_G2) -> np.ndarray:
    """(G g G^T) for every (OC, C) filter, as (n, n, OC, C) in `dtype` (exact integers); cached on a Prepared weight."""
    if isinstance(w, Prepared):
        key = ("winograd", len(G), np.dtype(dtype))
        cached = w.cache.get(key)
        if cached is None:
            cached = w.cache[key] = _filter_transform(w.values, dtype, G)
        return cached
    transformed = np.einsum("ai,ocij,bj->aboc", G, w, G)  # int64, exact
    return np.ascontiguousarray(transformed.astype(dtype))
