"""Exact integer matrix products, fast and reference.

Integer arithmetic is exact, so the order of a sum does not change its value as long as no partial
sum leaves the exactly representable range. A float64 BLAS product of integer operands is therefore
exact while every partial sum stays below 2**53 (float32: below 2**24): the product of two values
is exact, and so is every addition of exact integers in range, in whatever order and with whatever
FMA or blocking the BLAS chooses, on any number of threads. (This assumes the BLAS sums
products - OpenBLAS, MKL, BLIS and Accelerate all do - not a Strassen-like scheme whose
intermediate sums could exceed the bound.) `plan_gemm` proves that bound from the
operands' magnitude bounds and picks the cheapest exact path; when K is too long for one pass it is
split into chunks that each satisfy the bound, and the chunk results are summed in int64.

The reference path is numpy's int64 matmul (no BLAS, plain integer loops): the definition the
fast path is tested against, bit for bit.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from verifier.errors import OutOfRangeError
from verifier.fixedpoint import FLOAT32_EXACT, FLOAT64_EXACT, INT64_SAFE  # noqa: F401 (re-exported)
from verifier.kernels import direct, epilogue, limbs, loops, window  # (epilogue by module: it imports this one)

# A chunked float path pays one int64 conversion and addition of the M x N result per chunk. float32
# BLAS runs about 2x float64 here: measured, float32 in chunks of 64 still beats one float64 pass and
# chunks of 32 break even. float64 in chunks of 16 (only for operands wider than 16 bits) still does
# 16 multiply-adds per conversion, far ahead of numpy's int64 matmul (~25x slower than BLAS).
MIN_FLOAT64_CHUNK = 16
MIN_FLOAT32_CHUNK = 64

PATHS = ("float32", "float64", "int64")


@dataclass(frozen=True)
class GemmPlan:
    """How a product with inner dimension K is computed, and why that is exact.

    path: "float32" / "float64" (BLAS on exact integers) or "int64" (the reference loops);
    chunk: the K-chunk length summed in one float pass (K when no chunking);
    reason: a human-readable proof, shown by `vinfer inspect`;
    algorithm: "gemm", or for a convolution "im2col", "depthwise", "winograd" or "winograd4x4" (plan_conv).
    """

    path: str
    chunk: int
    reason: str
    algorithm: str = "gemm"


def plan_gemm(K: int, a_bound: int, b_bound: int) -> GemmPlan:
    """The fastest exact path for sum_k a[k] * b[k] with |a| <= a_bound, |b| <= b_bound, k < K.

    Raises OutOfRangeError when the sum itself may not fit int64 (no path is exact then)."""
    return _plan_gemm(int(K), int(a_bound), int(b_bound))


@functools.lru_cache(maxsize=1024)  # (a layer asks again on every run; Python ints, so any K and bound is a key)
def _plan_gemm(K: int, a_bound: int, b_bound: int) -> GemmPlan:
    if K < 0 or a_bound < 0 or b_bound < 0:
        raise ValueError(f"plan_gemm needs K, a_bound, b_bound >= 0, got {K}, {a_bound}, {b_bound}")
    product = a_bound * b_bound
    total = K * product
    if total > INT64_SAFE:
        raise OutOfRangeError(
            f"a dot product of length {K} with |a| <= {a_bound}, |b| <= {b_bound} may reach {total}, "
            f"beyond the int64 accumulator (2**62)"
        )
    given = f"K={K}, |a|<={a_bound}, |b|<={b_bound}"
    if product == 0 or K == 0:
        return GemmPlan("float64", max(K, 1), f"{given}: all products are 0, trivially exact")
    if total < FLOAT32_EXACT:
        return GemmPlan("float32", K, f"{given}: K*|a|*|b| = {total} < 2**24, float32 BLAS exact in one pass")
    chunk32 = (FLOAT32_EXACT - 1) // product
    if chunk32 >= MIN_FLOAT32_CHUNK:
        chunk = _balanced(K, chunk32)
        return GemmPlan(
            "float32", chunk,
            f"{given}: chunks of {chunk} keep partial sums < 2**24, float32 BLAS summed in int64",
        )
    if total < FLOAT64_EXACT:
        return GemmPlan("float64", K, f"{given}: K*|a|*|b| = {total} < 2**53, float64 BLAS exact in one pass")
    chunk64 = (FLOAT64_EXACT - 1) // product
    if chunk64 >= MIN_FLOAT64_CHUNK:
        chunk = _balanced(K, chunk64)
        return GemmPlan(
            "float64", chunk,
            f"{given}: chunks of {chunk} keep partial sums < 2**53, float64 BLAS summed in int64",
        )
    return GemmPlan("int64", K, f"{given}: |a|*|b| = {product} too large for an exact float chunk, int64 loops")


def _balanced(K: int, longest: int) -> int:
    """Equal chunks no longer than `longest` (no short tail chunk)."""
    count = -(-K // longest)
    return -(-K // count)


class Prepared:
    """An integer operand converted once (e.g. a weight at program load) for repeated products.

    Holds the int64 values, their proven bound and lazily cached exact float copies, so a layer
    does not re-convert its weights on every run."""

    __slots__ = ("values", "bound", "_floats", "cache")

    def __init__(self, values: np.ndarray, bound: int | None = None):
        self.values = _as_int64(values)
        self.bound = _max_abs(self.values) if bound is None else int(bound)
        self._floats: dict = {}
        self.cache: dict = {}  # other derived forms (e.g. Winograd-transformed filters), by kernel

    @property
    def shape(self):
        return self.values.shape

    def as_float(self, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        if dtype not in self._floats:
            self._floats[dtype] = self.values.astype(dtype)
        return self._floats[dtype]


def prepare(values: np.ndarray, bound: int | None = None) -> Prepared:
    """Wrap a constant integer operand so its float copies are made once and reused."""
    return values if isinstance(values, Prepared) else Prepared(values, bound)


def gemm(a, b, *, a_bound: int | None = None, b_bound: int | None = None, path: str = "fast",
         requantize=None, a_range: tuple[int, int] | None = None) -> np.ndarray:
    """Exact integer a @ b with np.matmul's broadcasting; int64 result.

    a: (..., M, K), b: (K, N) or (..., K, N), integer arrays or `Prepared` operands.
    a_bound / b_bound: proven max |value| of each operand (computed from the data when None); a_range: a's
    (min, max) when the caller has it (the limb path needs it).
    path: "fast" (the plan's exact BLAS path), "reference" (int64 loops), or a forced plan path
    ("float64" / "float32"), which raises ValueError when its bound does not hold.
    requantize: an epilogue.Requantize (bias along N): the result is then the requantized activations,
    fused into the float product for a run-time a when its bound allows (against a prepared 2-D b, or any b
    without a bias). On a machine that takes the limb path (limbs.py), a run-time a against a prepared 2-D b
    with a long enough K runs as 8-bit integer products instead."""
    a_values, a_bound = _operand(a, a_bound)
    b_values, b_bound = _operand(b, b_bound)
    K = a_values.shape[-1]
    b_k_axis = b_values.ndim - 2 if b_values.ndim >= 2 else 0
    if b_values.shape[b_k_axis] != K:
        raise ValueError(f"gemm: inner dimensions differ: a {a_values.shape} @ b {b_values.shape}")
    plan = plan_gemm(K, a_bound, b_bound)
    if (path == "fast" and isinstance(b, Prepared) and b_values.ndim == 2 and not isinstance(a, Prepared)
            and a_values.size and (requantize is None or requantize.fits_int64(K * a_bound * b_bound))):
        on_limbs = _gemm_limbs(a_values, b, a_range, requantize, plan.path)
        if on_limbs is not None:
            return on_limbs
    if requantize is not None:
        if (path == "fast" and plan.path != "int64" and not isinstance(a, Prepared)
                and requantize.fusable(K * a_bound * b_bound)):
            if isinstance(b, Prepared) and b_values.ndim == 2:  # activations @ weight
                return _activations_kernel(a_values.shape, b, plan, requantize, a_bound)(a_values)
            if requantize.bias is None:  # two run-time operands (attention): the float product, finished
                return _product_kernel(a_values.shape, b_values.shape, plan, requantize)(a_values, b_values)
        if (path == "fast" and plan.path != "int64" and not isinstance(a, Prepared) and not isinstance(b, Prepared)
                and requantize.scales_exactly(K * a_bound * b_bound)):  # (a left shift: scaled, not rounded)
            return _scaled_product_kernel(a_values.shape, b_values.shape, plan, requantize)(a_values, b_values)
        return requantize.apply(gemm(a, b, a_bound=a_bound, b_bound=b_bound, path=path), -1)
    if path == "reference":
        return np.matmul(a_values, b_values)
    if path == "fast":
        chosen = plan
    elif path in ("float64", "float32"):
        chosen = _forced_plan(path, K, a_bound * b_bound)
    else:
        raise ValueError(f"gemm: unknown path {path!r}; use 'fast', 'reference', 'float64' or 'float32'")
    if chosen.path == "int64":
        return np.matmul(a_values, b_values)
    dtype = np.float64 if chosen.path == "float64" else np.float32
    a_float = _float_of(a, a_values, dtype, "gemm_a")
    b_float = _float_of(b, b_values, dtype, "gemm_b")
    return matmul_chunked(a_float, b_float, K, chosen.chunk, b_k_axis)


def _gemm_limbs(a_values, b: "Prepared", a_range, requantize, float_path: str = "float64"):
    """The limb path (limbs.gemm) when this machine takes it and K pays for it against the `float_path` it would
    replace, else None."""
    work = a_values.size * b.values.shape[1]  # (multiply-adds: M * K * N)
    plan = limbs.planned(b, "gemm", lambda: b.values, a_values.shape[-1], a_values, a_range, work,
                         float_path=float_path)
    return None if plan is None else limbs.gemm(a_values, *plan, requantize)


def bind_gemm(a_shape: tuple, b: "Prepared", a_bound: int, requantize) -> Callable | None:
    """gemm(a, b, a_bound=a_bound, requantize=requantize) for every run-time `a` of shape a_shape with |a| <= a_bound,
    as a function of `a` with its kernel chosen and its operands prepared once (the interpreter's replays: a small
    layer's run is then mostly its product); the limb path, which a's range decides, is still asked at each call
    where it may take the product. None where gemm's choice is not a fused float product."""
    K = int(a_shape[-1])
    if not (b.values.ndim == 2 and b.values.shape[0] == K and math.prod(a_shape) and requantize is not None):
        return None
    plan = plan_gemm(K, a_bound, b.bound)
    if plan.path == "int64" or not requantize.fusable(K * a_bound * b.bound):
        return None
    fused = _activations_kernel(tuple(a_shape), b, plan, requantize, a_bound)
    work = math.prod(a_shape) * b.values.shape[1]
    if not (requantize.fits_int64(K * a_bound * b.bound) and limbs.may_take(K, b.values, work, float_path=plan.path)):
        return fused

    def kernel(a: np.ndarray) -> np.ndarray:  # (the limb path where a's range makes it pay: gemm's choice)
        on_limbs = _gemm_limbs(a, b, None, requantize, plan.path)
        return fused(a) if on_limbs is None else on_limbs

    return kernel


def bind_product(a_shape: tuple, b_shape: tuple, a_bound: int, b_bound: int, requantize) -> Callable | None:
    """gemm(a, b, a_bound=a_bound, b_bound=b_bound, requantize=requantize) of two run-time operands of these shapes
    (attention's products), decided once as bind_gemm's; None where it is not a fused float product."""
    K = int(a_shape[-1])
    if requantize is None or requantize.bias is not None or len(b_shape) < 2 or b_shape[-2] != K:
        return None
    plan = plan_gemm(K, a_bound, b_bound)
    scaled = requantize.scales_exactly(K * a_bound * b_bound)
    if plan.path == "int64" or not (scaled or requantize.fusable(K * a_bound * b_bound)):
        return None
    np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2]))  # (ValueError, as np.matmul's, when they differ)
    return (_scaled_product_kernel if scaled else _product_kernel)(tuple(a_shape), tuple(b_shape), plan, requantize)


def _activations_kernel(a_shape: tuple, b: "Prepared", plan: GemmPlan, requantize, a_bound: int) -> Callable:
    """The fused product of activations of a_shape (|a| <= a_bound) by a prepared 2-D b (made once per shape, kept on
    b): a product below direct.GEMM_MAX_WORK in one compiled call (direct.py); else float64 folds the epilogue into
    the product (a gets a column of ones, b a row holding the bias, both doubled) and finishes it into int64
    activations, and float32 finishes the exact product with the bias added in float64."""
    key = ("activations", a_shape, plan, a_bound, id(requantize))
    kept = b.cache.get(key)
    if kept is not None and kept[0] is requantize:
        return kept[1]
    acc_bound = a_shape[-1] * a_bound * b.bound
    if direct.applies(math.prod(a_shape) * b.values.shape[1], direct.GEMM_MAX_WORK, acc_bound, requantize):
        kernel = direct.gemm_kernel(a_shape, b, requantize, acc_bound)
    else:
        kernel = (_float64_activations if plan.path == "float64" else _float32_activations)(a_shape, b, plan,
                                                                                              requantize)
    if len(b.cache) < 64:
        b.cache[key] = (requantize, kernel)  # (holding it: no other epilogue can take its id while this is kept)
    return kernel


def _float64_activations(a_shape: tuple, b: "Prepared", plan: GemmPlan, requantize) -> Callable:
    K, lead = a_shape[-1], a_shape[:-1]
    M = math.prod(lead)  # a batch of a's against one b: one BLAS call, not one per matrix
    weights = _doubled_rows(b, requantize)
    N = weights.shape[1]
    rounding, offset = requantize.rounding(True), epilogue.spread_value(0.0, (1, M, N))

    def kernel(a: np.ndarray) -> np.ndarray:
        rows = window.scratch("gemm_a", (M, K + 1), np.float64)
        rows[:, :K] = a.reshape(M, K)
        rows[:, K] = 1.0
        product = matmul_rows(rows, weights, window.scratch("gemm_product", (M, N), np.float64))
        out = np.empty(lead + (N,), dtype=np.int64)
        loops.finish(product.reshape(1, M, N), offset, *rounding, out.reshape(1, M, N), False)
        return out

    return kernel


def _doubled_rows(b: "Prepared", requantize) -> np.ndarray:
    """The float64 operand of a fused product by b, (K + 1, N) in rows: 2 b, then 2 bias + 1/2 against a's column of
    ones (Requantize.doubled's values, laid out as BLAS multiplies small products fastest: (16, 65) @ (65, 192) took
    5.1 us, against 10.5 by the transposed layout; scripts/bench_small.py --tables layout). Made once per epilogue,
    kept on b."""
    key = ("doubled rows", id(requantize))
    kept = b.cache.get(key)
    if kept is not None and kept[0] is requantize:
        return kept[1]
    K, N = b.values.shape
    rows = np.empty((K + 1, N), dtype=np.float64)
    np.multiply(b.values, 2.0, out=rows[:K])
    rows[K] = requantize.bias_column((N,))
    if len(b.cache) < 64:
        b.cache[key] = (requantize, rows)  # (as _activations_kernel's)
    return rows


def _float32_activations(a_shape: tuple, b: "Prepared", plan: GemmPlan, requantize) -> Callable:
    K, lead = a_shape[-1], a_shape[:-1]
    M, weights = math.prod(lead), b.as_float(np.float32)
    N = weights.shape[1]
    rounding = requantize.rounding(False)
    offset = np.broadcast_to(requantize.offset((N,)), (1, M, N))

    def kernel(a: np.ndarray) -> np.ndarray:
        rows = window.scratch("gemm_a", (M, K), np.float32)
        rows[...] = a.reshape(M, K)
        product = epilogue.float_product(rows, weights, plan.chunk)
        out = np.empty(lead + (N,), dtype=np.int64)
        loops.finish(product.reshape(1, M, N), offset, *rounding, out.reshape(1, M, N), False)
        return out

    return kernel


@functools.lru_cache(maxsize=256)
def _product_kernel(a_shape: tuple, b_shape: tuple, plan: GemmPlan, requantize) -> Callable:
    """The fused product of two run-time operands of these shapes (np.matmul broadcasting; no bias): the exact float
    product, finished with 1/4 added in the same pass."""
    product_of = _exact_product(a_shape, b_shape, plan)
    out_shape = np.broadcast_shapes(a_shape[:-2], b_shape[:-2]) + (a_shape[-2], b_shape[-1])
    rounding, offset = requantize.rounding(False), epilogue.spread_value(0.25, epilogue.three_axes_shape(out_shape))

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        product = product_of(a, b)
        out = np.empty(out_shape, dtype=np.int64)
        loops.finish(product.reshape(offset.shape), offset, *rounding, out.reshape(offset.shape), False)
        return out

    return kernel


def _scaled_product_kernel(a_shape: tuple, b_shape: tuple, plan: GemmPlan, requantize) -> Callable:
    """The product of two run-time operands whose epilogue shifts left (Requantize.scales_exactly): the exact float
    product times 2**-shift (a power of two: exact), saturated, converted to int64 (exact: integers)."""
    product_of = _exact_product(a_shape, b_shape, plan)
    scale, (low, high) = 2.0 ** -requantize.shift, requantize.limits()

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        product = product_of(a, b)  # (scratch space, or a fresh sum of chunks: either is ours to scale)
        np.multiply(product, scale, out=product)
        return np.clip(product, low, high, out=product).astype(np.int64)

    return kernel


def _exact_product(a_shape: tuple, b_shape: tuple, plan: GemmPlan) -> Callable:
    """(a, b) -> the exact float product of two run-time integer operands of these shapes (epilogue.float_product:
    scratch space, valid until the next call)."""
    dtype = np.float64 if plan.path == "float64" else np.float32

    def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a_float = window.scratch("gemm_a", a_shape, dtype)
        a_float[...] = a
        b_float = window.scratch("gemm_b", b_shape, dtype)
        b_float[...] = b
        return epilogue.float_product(a_float, b_float, plan.chunk)

    return product


def matmul_chunked(a_float, b_float, K: int, chunk: int, b_k_axis: int) -> np.ndarray:
    """int64 result of the float product a @ b, summing K-chunks of length `chunk` in int64.
    The caller has proven every chunk's partial sums exact (plan_gemm)."""
    if chunk >= K:
        product = np.matmul(a_float, b_float, out=product_buffer(a_float, b_float))
        return product.astype(np.int64)
    total = None
    for start in range(0, K, chunk):
        stop = min(start + chunk, K)
        b_part = b_float[(slice(None),) * b_k_axis + (slice(start, stop),)]
        part = np.matmul(a_float[..., start:stop], b_part, out=product_buffer(a_float, b_float))
        if total is None:
            total = part.astype(np.int64)
        else:
            as_int = window.scratch("gemm_part", part.shape, np.int64)
            np.copyto(as_int, part, casting="unsafe")
            total += as_int
    return total


def matmul_float_sum(a_float, b_float, chunk: int) -> np.ndarray:
    """a @ b as a new float64 array: the K-chunks of length `chunk` (a's last axis, b's second to last)
    multiplied in the operands' float type and summed in float64, each widened in the pass that adds it.
    Exact while the caller has proven every chunk's partial sums exact (plan_gemm) and the total below 2**53."""
    K = a_float.shape[-1]
    total = None
    for start in range(0, max(K, 1), max(chunk, 1)):
        b_part = b_float[..., start:start + chunk, :]
        part = np.matmul(a_float[..., start:start + chunk], b_part, out=product_buffer(a_float, b_float))
        if total is None:
            total = part.astype(np.float64)
        else:
            total += part
    return total


def matmul_rows(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """np.matmul(a, b, out=out) of 2-D float operands, in the row blocks direct.row_block gives the product (one
    call where it gives all rows). Each row's sums are made by one call either way, exact under the caller's bound,
    so the values are the same."""
    M, K = a.shape
    block = direct.row_block(M, K, b.shape[1])
    if block >= M:
        return np.matmul(a, b, out=out)
    for start in range(0, M, block):
        np.matmul(a[start:start + block], b, out=out[start:start + block])
    return out


def product_buffer(a, b, name: str = "gemm_product"):
    """The scratch buffer `name` shaped for np.matmul(a, b), in a's dtype (None for a 1-D operand)."""
    if a.ndim < 2 or b.ndim < 2:
        return None
    batch = () if a.ndim == b.ndim == 2 else np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return window.scratch(name, batch + (a.shape[-2], b.shape[-1]), a.dtype)


def _forced_plan(path: str, K: int, product: int) -> GemmPlan:
    exact = FLOAT64_EXACT if path == "float64" else FLOAT32_EXACT
    if product == 0:
        return GemmPlan(path, max(K, 1), "forced; all products are 0")
    chunk = (exact - 1) // product
    if chunk < 1:
        raise ValueError(f"gemm: path {path!r} is not exact for products up to {product}")
    return GemmPlan(path, min(chunk, max(K, 1)), f"forced {path}, chunks of {chunk}")


def _operand(x, bound):
    if isinstance(x, Prepared):
        return x.values, (x.bound if bound is None else int(bound))
    values = _as_int64(x)
    return values, (_max_abs(values) if bound is None else int(bound))


def _float_of(original, values, dtype, workspace: str) -> np.ndarray:
    if isinstance(original, Prepared):
        return original.as_float(dtype)
    converted = window.scratch(workspace, values.shape, dtype)
    converted[...] = values
    return converted


def _as_int64(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.int64:
        return x
    if x.dtype.kind not in "iub" or x.dtype == np.uint64:
        raise TypeError(f"integer kernels take signed integer arrays (up to int64), got {x.dtype}")
    return x.astype(np.int64)


def _max_abs(x: np.ndarray) -> int:
    if x.size == 0:
        return 0
    return max(int(x.max()), -int(x.min()))
