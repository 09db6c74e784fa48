"""GEMMs and convolutions in one compiled call each, with their epilogue (loops/direct.py).

Through the general kernels a layer of a few thousand multiply-adds - a batch-1 classifier's Dense layers, a small
image's convolutions - spends several microseconds in their Python, buffers and passes for well under one of
arithmetic. Below the work limits here such a product runs as one compiled call instead: the activations' integers
in float64 (a convolution's columns gathered), one BLAS product of them by the weight's, exact under the same bound
as the float path (K |a| |w| < 2**53; in float32, twice as fast, where it is below 2**24: an 8-bit program's
products), then the epilogue's integer form. The same integers as every other path.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from verifier.fixedpoint import ACT_BITS, FLOAT32_EXACT, FLOAT64_EXACT, INT64_SAFE, qmax
from verifier.kernels import loops, window

if TYPE_CHECKING:  # (exact_gemm imports this module)
    from verifier.kernels.exact_gemm import Prepared

# Multiply-adds (M K N for a GEMM; images, positions, K and OC for a convolution) below which the direct call runs
# (scripts/bench_small.py --tables direct: both bound kernels, 16-bit, single-threaded, alternating). GEMMs of 4K to
# 67M took 0.39-0.99 of the general kernel's time, in row blocks and reused scratch (chain_kernel); the largest
# measured is the limit. Convolutions of 4.6K-692K took 0.33-0.87; past 1.2M (0.90-1.05) Winograd's fewer products
# win (1.6M: 1.21-1.25, 29M: 1.88-2.02): a convolution runs directly below CONV_MAX_WORK. An im2col-planned one,
# which the loop takes image by image, below CONV_MAX_WORK an image and CONV_BATCH_MAX_WORK in all: batches of 8x8
# images (16, 64 and 256: 1.2M-18.9M) took 0.90-0.94, and then take a fused MaxPool in the same call.
# The limb path (kernels/limbs.py), where a machine and a product's K take it, is asked first.
GEMM_MAX_WORK = 1 << 26
CONV_MAX_WORK = 1 << 20
CONV_BATCH_MAX_WORK = 1 << 25

# OpenBLAS (scipy's and numpy's) multiplies a product of at most 10**6 multiply-adds (M N K) by its small-matrix
# kernels (on SkylakeX and later x86 cores), which are much faster for narrow operands than its packed path above
# that: one float64 call took 30.8 us for 244 rows by 64 x 64 and 45.0 for 245 rows (scripts/bench_small.py
# --tables blocks). So a GEMM past it, of operands narrow enough that each part still holds a few hundred rows
# (K N <= 4608), is made in row blocks of at most 10**6 (row_block), here and on the general float paths
# (exact_gemm.matmul_rows). In that table the blocks took 0.51-0.85 of one call's time (one 0.93), 1M-17M
# multiply-adds, float64 and float32, np.matmul and the direct loop. Grids of K and N (16-256) at 1M-4M put the width:
# K N <= 4096 took 0.57-0.82, K N = 8192 0.68-1.14, wider up to 1.22.
BLAS_SMALL_WORK = 10**6
BLAS_SMALL_WIDTH = 4608

SCRATCH_BYTES = 1 << 16  # a chain's buffers from this size are the thread's reused scratch (window.scratch): fresh
# ones past malloc's mmap threshold cost a page fault a page on every call


def applies(work: int, limit: int, acc_bound: int, requantize) -> bool:
    """Whether a product of `work` multiply-adds whose sums are bounded by acc_bound runs directly: small enough,
    exact in float64, and an epilogue the loops' integer form computes (a right shift of 0..62 - 0: saturation
    alone - with |acc| + |bias| below 2**62, so adding the bias and the half cannot wrap)."""
    return (requantize is not None and work < limit and acc_bound < FLOAT64_EXACT and 0 <= requantize.shift <= 62
            and acc_bound + requantize.bias_bound < INT64_SAFE)


def gemm_kernel(a_shape: tuple, b: "Prepared", requantize, acc_bound: int) -> Callable:
    """The requantized a @ b for activations a of a_shape (..., K) against a prepared 2-D b, as a function of a
    (applies() holds for it and acc_bound): a chain of one link, which it carries (`link`) for replays to chain
    with its neighbours."""
    lead = tuple(a_shape[:-1])
    N = int(b.values.shape[1])
    dtype = _float_type(acc_bound)
    key = ("direct rows", dtype)
    weights = b.cache.get(key)
    if weights is None:  # (the weight may be a transposed view: its rows made contiguous, once)
        weights = b.cache.setdefault(key, np.ascontiguousarray(b.values, dtype=dtype))
    bias, epilogue = _integer_form(requantize, N)
    link = Link(weights, bias, epilogue, lead)
    kernel = chain_kernel([link])
    kernel.link = link
    return kernel


@dataclass(frozen=True)
class Link:
    """A direct GEMM's part in a chain (chain_kernel): its weight's integers (K, N) in the float type, its int64
    bias, its epilogue's integer form (shift, low, high, correct) and the activations' leading axes; the op that
    binds it adds how its operand enters: `take` (ops/_operands.entering; None: as it is) and the narrowing that
    is, (shift, limit), (0, 0) for none."""

    weights: np.ndarray
    bias: np.ndarray
    epilogue: tuple
    lead: tuple
    take: Callable | None = None
    narrowing: tuple | None = None

    def feeds(self, successor: "Link") -> bool:
        """Whether this link's result can be `successor`'s operand inside a chain: the same rows and float type,
        this link's N its K, results saturated within 16 bits (the range an operand's entering checks, so the
        chain need not), and an operand entering as it is or by a narrowing."""
        low, high = self.epilogue[1:3]
        return (successor.narrowing is not None and successor.lead == self.lead and -qmax(ACT_BITS) <= low
                and high <= qmax(ACT_BITS) and successor.weights.dtype == self.weights.dtype
                and successor.weights.shape[0] == self.weights.shape[1])


def chain_kernel(links: list) -> Callable:
    """GEMMs where each link's result is the next one's operand alone (Link.feeds) as one compiled call
    (loops.gemm_chain): a function of the first link's operand (taken as it enters) giving the last link's result.
    The same integers as the links' kernels one after another, less their int64 results between links and a call
    each. Buffers past SCRATCH_BYTES are the thread's scratch space, reused from call to call."""
    weights = links[0].weights.reshape(-1) if len(links) == 1 else np.concatenate(
        [link.weights.reshape(-1) for link in links])
    biases = np.concatenate([link.bias for link in links])
    table = np.zeros((len(links), 11), dtype=np.int64)
    M = math.prod(links[0].lead)
    at = bias_at = 0
    for row, link in enumerate(links):
        K, N = link.weights.shape
        entering = links[row + 1].narrowing if row + 1 < len(links) else (0, 0)
        table[row] = (K, N, at, bias_at, *link.epilogue, *entering, row_block(M, K, N))
        at, bias_at = at + K * N, bias_at + N
    first, last = links[0], links[-1]
    K = first.weights.shape[0]
    shape = last.lead + (last.weights.shape[1],)
    size = M * max([K] + [link.weights.shape[1] for link in links])
    dtype = weights.dtype
    use_scratch = size * dtype.itemsize >= SCRATCH_BYTES
    none = np.empty((2, 0), dtype=dtype)
    take = first.take

    def kernel(a: np.ndarray) -> np.ndarray:
        operand = a if take is None else take(a)
        out = np.empty(shape, dtype=np.int64)
        scratch = window.scratch("direct products", (2, size), dtype) if use_scratch else none
        loops.gemm_chain(operand.reshape(M, K), weights, biases, table, scratch, out.reshape(M, shape[-1]))
        return out

    return kernel


def conv_kernel(x_shape: tuple, w: "Prepared", group: int, geometry: tuple, requantize, acc_bound: int,
                pool: tuple | None = None) -> Callable:
    """The requantized convolution of inputs of x_shape (N, C, W) or (N, C, H, W) by a prepared weight whose sums
    are bounded by acc_bound, as a function of (x, out=None) (`out`: an int64 or int16 array of the result's shape
    to write into: window.fits_result); geometry: (strides, pads, dilations, out_shape), normalized
    (convolution._planned). `pool`: a 2-D max pool of the result, its geometry (pooling.max_pool_geometry), taken in
    the same call: the result is then the pooled one (and `out` of its shape)."""
    strides, pads, dilations, out_shape = geometry
    OC, kernel = int(w.values.shape[0]), tuple(int(k) for k in w.values.shape[2:])
    result_shape = (int(x_shape[0]), OC) + tuple(out_shape if pool is None else pool[4])
    if len(x_shape) == 3:  # 1-D: a unit height
        kernel, strides, dilations, pads = (1,) + kernel, (1,) + tuple(strides), (1,) + tuple(dilations), (0, pads[0])
        image_shape, out_shape = (x_shape[0], x_shape[1], 1, x_shape[2]), (1,) + tuple(out_shape)
    else:
        image_shape, pads = tuple(x_shape), tuple(pads[:2])
    planes = result_shape[:2] + (1,) * (4 - len(result_shape)) + result_shape[2:]
    weights = _filter_rows(w, group, _float_type(acc_bound))
    bias, (shift, low, high, correct) = _integer_form(requantize, OC)
    windows = NO_POOL if pool is None else window_indices(tuple(out_shape), pool)
    geometry = (kernel, tuple(strides), tuple(dilations), tuple(pads), tuple(out_shape))

    def kernel_call(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty(result_shape, dtype=np.int64)
        loops.conv_requantize(x.reshape(image_shape), weights, *geometry, bias, shift, low, high, correct, windows,
                              out.reshape(planes))
        return out

    return kernel_call


def row_block(M: int, K: int, N: int) -> int:
    """Rows of an (M, K) @ (K, N) product a BLAS call takes: all M, or equal blocks of at most BLAS_SMALL_WORK
    multiply-adds where the operands are narrow (K N <= BLAS_SMALL_WIDTH) and the product is past it."""
    if M * K * N <= BLAS_SMALL_WORK or K * N > BLAS_SMALL_WIDTH:
        return max(M, 1)
    blocks = -(-M * K * N // BLAS_SMALL_WORK)
    return -(-M // blocks)


NO_POOL = np.zeros((0, 0), dtype=np.int64)  # loops.conv_requantize's windows for no pool


def window_indices(plane: tuple, pool: tuple) -> np.ndarray:
    """A 2-D max pool's windows over a plane of shape `plane` (OH, OW) as loops.conv_requantize takes them: int64
    (taps, pooled positions), the flat index of each window's tap; a tap in the padding repeats the window's first
    tap inside (a maximum is unchanged by a repeat; every window holds one: pooling.max_pool_geometry). pool: that
    geometry (kernel, strides, pads, dilations, pooled shape). Worked out once per geometry (read-only): metered
    runs ask for it on every call."""
    return _window_indices(tuple(int(v) for v in plane), tuple(tuple(int(v) for v in part) for part in pool))


@functools.lru_cache(maxsize=256)
def _window_indices(plane: tuple, pool: tuple) -> np.ndarray:
    (KH, KW), (SH, SW), pads, (DH, DW), pooled = pool[0], pool[1], pool[2], pool[3], pool[4]
    rows = np.arange(pooled[0])[:, None] * SH - pads[0]
    columns = np.arange(pooled[1])[None, :] * SW - pads[1]
    taps = []
    for i in range(KH):
        for j in range(KW):
            h, v = rows + i * DH, columns + j * DW
            inside = (0 <= h) & (h < plane[0]) & (0 <= v) & (v < plane[1])
            taps.append(np.where(inside, h * plane[1] + v, -1).reshape(-1))
    windows = np.stack(taps)
    first_inside = windows[np.argmax(windows >= 0, axis=0), np.arange(windows.shape[1])]
    windows = np.ascontiguousarray(np.where(windows >= 0, windows, first_inside), dtype=np.int64)
    windows.flags.writeable = False
    return windows


def _integer_form(requantize, channels: int) -> tuple:
    """(bias, (shift, low, high, correct)): the loops' arguments for the epilogue's integer form (shift 0..62, as
    applies() checked; the sign correction skipped with a fused Relu, which clips at 0)."""
    bias = np.zeros(channels, dtype=np.int64) if requantize.bias is None else requantize.bias
    return bias, (requantize.shift, *requantize.limits(), not requantize.relu)


def _float_type(acc_bound: int) -> type:
    """The float type the loops sum in: float32 where every partial sum is an integer below 2**24, else float64."""
    return np.float32 if acc_bound < FLOAT32_EXACT else np.float64


def _filter_rows(w: "Prepared", group: int, dtype: type) -> np.ndarray:
    """The weight as the loop reads it (made once, kept on w): (group, OC / group, K) in dtype, C-contiguous."""
    key = ("direct filters", group, dtype)
    rows = w.cache.get(key)
    if rows is None:
        rows = w.cache.setdefault(key, np.ascontiguousarray(w.values.reshape(group, w.values.shape[0] // group, -1),
                                                            dtype=dtype))
    return rows
