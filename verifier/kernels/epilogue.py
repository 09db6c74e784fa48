"""The epilogue of a GEMM / convolution: add the bias, rescale to the output frac, saturate.

`requantize(acc, from_frac, to_frac, bits, bias=...)` returns exactly
verifier.fixedpoint.requantize(acc + bias, from_frac, to_frac, bits) - the one rounding rule, round half
away from zero - but in a few in-place integer passes instead of a dozen temporaries (about 10x
faster on a layer's output). Rounding half away from zero by 2**s is

    x >= 0:  (x + 2**(s-1)) >> s
    x <  0:  -((-x + 2**(s-1)) >> s)  ==  (x + 2**(s-1) - 1) >> s     (floor division identities)

so with m = x >> 63 (0 or -1, an arithmetic shift) both cases are (x + m + 2**(s-1)) >> s. With a fused
Relu the correction m is skipped: for x < 0 both (x + 2**(s-1)) >> s and the rule give <= 0, clipped to 0.
"""

import functools
import math

import numpy as np

from verifier import fixedpoint
from verifier.fixedpoint import ACT_BITS, qmax
from verifier.kernels import exact_gemm, loops, window  # (exact_gemm by module: it imports limbs, which imports this)

BIAS_LIMIT = 1 << 61  # |bias| up to this takes the folded-half path (compiled biases are <= 61 bits)


def requantize(acc: np.ndarray, from_frac: int, to_frac: int, bits: int = ACT_BITS, *,
               bias: np.ndarray | None = None, out: np.ndarray | None = None, relu: bool = False) -> np.ndarray:
    """saturate(round_shift(acc + bias, from_frac - to_frac), bits) as int64, bit-identical to
    verifier.fixedpoint.requantize. `bias` broadcasts against acc; `out` may be acc itself (an
    accumulator the caller no longer needs) to work in place. acc + bias must stay within the
    int64 accumulator range (|.| <= 2**62), as the kernels that produce acc guarantee.
    relu=True also applies max(., 0) (a fused Relu): the saturating clip starts at 0 instead of -qmax,
    the same integers as np.maximum(requantize(...), 0) in no extra pass."""
    acc = np.asarray(acc)
    if acc.dtype != np.int64:
        raise TypeError(f"requantize takes an int64 accumulator, got {acc.dtype}")
    shift = int(from_frac) - int(to_frac)
    if out is None:
        out = np.empty(acc.shape, dtype=np.int64)
    elif out.shape != acc.shape or out.dtype != np.int64:
        raise ValueError(f"requantize: out must be int64 of shape {acc.shape}")
    limit = qmax(bits)
    if 0 < shift <= 62:
        bias = np.zeros((), dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
        if bias.size and int(np.max(np.abs(bias))) <= BIAS_LIMIT:
            return _biased(acc, bias, shift, limit, out, relu)
    if bias is None:
        if out is not acc:
            np.copyto(out, acc)
    else:
        np.add(acc, np.asarray(bias, dtype=np.int64), out=out)
    if shift <= 0 or shift > 62:  # a left shift (output finer than acc) or a shift past int64: the
        # checked fixedpoint primitive (rare; it also gives 0 for any shift >= 64)
        result = fixedpoint.requantize(out, from_frac, to_frac, bits)
        return np.maximum(result, 0, out=result) if relu else result
    if not relu:  # with a Relu the negative half needs no correction: both roundings give <= 0 there
        sign = np.right_shift(out, 63, out=window.scratch("requantize_sign", out.shape, np.int64))
        out += sign
    out += np.int64(1 << (shift - 1))  # |acc + bias| < 2**62 + 2**61 and half <= 2**61: no int64 wrap
    out >>= shift
    return np.clip(out, 0 if relu else -limit, limit, out=out)



def _biased(acc, bias, shift, limit, out, relu):
    """The same rounding with the half folded into the (small) bias: y = acc + (bias + h) in one pass,
    then x < 0 <=> y < h (x = acc + bias; no wrap: |acc| <= 2**62 and |bias| + h <= 2**62), so
    (y - [y < h]) >> s is (x + h - [x < 0]) >> s, the rounding above, in five passes instead of six."""
    half = 1 << (shift - 1)
    np.add(acc, bias + np.int64(half), out=out)
    if not relu:  # (with a Relu, as above)
        negative = np.less(out, half, out=window.scratch("requantize_negative", out.shape, np.bool_))
        np.subtract(out, negative, out=out)
    out >>= shift
    return np.clip(out, 0 if relu else -limit, limit, out=out)


# -- the epilogue fused into a float product -------------------------------------------------------------
#
# A GEMM / convolution whose float operands are doubled, with a column of ones against 2 * bias + 1/2,
# produces y = 2 (acc + bias) + 1/2 directly: every partial sum is a multiple of 1/2 below 2**52 in
# magnitude, so it is exact whatever the summation order (the exact_gemm argument). With x = acc + bias,
# n = 2**shift and h = n / 2, the rounding rule is then one float rounding of y / 2n:
#   - for x > -h: round-to-nearest((2x + 1/2) / 2n) = floor((x + 1/4) / n + 1/2) = floor((x + h) / n), the
#     rule (x + h is an integer, so the 1/4 changes no floor; it keeps y / 2n off every tie);
#   - for x <= -h: y - 1 = 2x - 1/2 rounds to -floor((-x + h) / n), the rule's negative half. (With a fused
#     Relu both give <= 0 there, clipped to 0, so that case needs no correction.)
# Round-to-nearest of y / 2n with |y| < 2**(52 + k) - here k = shift + 1 - is one float addition of
# 1.5 * 2**(52 + k): the sum lies where float64 values are 2**k apart, so IEEE round-to-nearest rounds y to
# a multiple of 2**k, and (sum - constant) / 2**k, both steps exact, counts those multiples: the integer
# (loops.finish, one compiled pass into the output). Saturation commutes with the monotone rounding (its limits
# times 2**k are exact), so it runs on y first.
#
# Halved, the same holds for z = acc + bias + 1/4 (k = shift): z / n is never a tie and rounds to
# floor((x + h) / n) for x > -h. For x <= -h the correction is z - 1 = x - 3/4 (not y's -1/2 halved: a
# float minus a bool is the fast pass): with u = -x >= h, round(-(u + 3/4) / n) = -floor((u + h + 3/4) / n)
# = -floor((u + h) / n), the rule, since u + h is an integer and n >= 2 (shift 0 needs no correction:
# round(x + 1/4) = x). This is the form a float32 product is finished in, its exact accumulator added to
# bias + 1/4 in float64 in the one pass that widens it (float32 holds the products, not the bias: offset).

FUSED_LIMIT = 1 << 50  # |acc| + |bias| + 1 below this: the doubled product and its correction stay exact


class Requantize:
    """The epilogue a GEMM / convolution ends with: y = requantize(acc + bias, shift, bits), then
    max(y, 0) when relu. bias: int64, one value per output channel (or None). Kernels given one return
    activations instead of accumulators, fusing it into their float product when `fusable(acc_bound)`."""

    __slots__ = ("shift", "bits", "relu", "bias", "bias_bound", "_forms")

    def __init__(self, shift: int, bits: int = ACT_BITS, relu: bool = False, bias: np.ndarray | None = None):
        self.shift, self.bits, self.relu = int(shift), int(bits), bool(relu)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.int64).reshape(-1)
        self.bias_bound = int(np.max(np.abs(self.bias))) if self.bias is not None and self.bias.size else 0
        self._forms = {}  # doubled -> (threshold or None, limits, magic, unit), for shifts a float
        if 0 <= self.shift <= 62:  # rounding can do
            for doubled in (True, False):
                unit = 2.0 ** (self.shift + doubled)
                magic = 1.5 * 2.0 ** 52 * unit
                limit = qmax(self.bits) * unit
                if doubled:
                    threshold = 0.5 - 2.0 ** self.shift
                else:  # (at shift 0, round(x + 1/4) is x itself: nothing to correct)
                    threshold = 0.25 - 2.0 ** (self.shift - 1) if self.shift else None
                self._forms[doubled] = (threshold, (0.0 if self.relu else -limit, limit), magic, unit)

    def fusable(self, acc_bound: int) -> bool:
        return bool(self._forms) and int(acc_bound) + self.bias_bound + 1 < FUSED_LIMIT

    def scales_exactly(self, acc_bound: int) -> bool:
        """A left shift without bias (the output finer than the accumulator: 8-bit attention's A V) that no
        accumulator bounded by acc_bound takes past the int64 headroom the integer form checks: an exact float
        accumulator then needs only scaling by 2**-shift (exact), saturating and converting - no rounding."""
        return self.shift < 0 and self.bias is None and 0 <= int(acc_bound) < (fixedpoint.INT64_SAFE >> -self.shift)

    def fits_int64(self, acc_bound: int) -> bool:
        """The integer form of the epilogue (an int64 accumulator and bias, rounded by shifting: loops.depthwise)
        applies: a right shift of 1..62 and |acc| + |bias| below 2**62, so adding the half cannot wrap."""
        return 0 < self.shift <= 62 and int(acc_bound) + self.bias_bound < fixedpoint.INT64_SAFE

    def limits(self) -> tuple[int, int]:
        """The saturation range of the result: [-qmax, qmax], or [0, qmax] with a fused Relu."""
        return (0 if self.relu else -qmax(self.bits)), qmax(self.bits)

    def apply(self, acc: np.ndarray, channel_axis: int) -> np.ndarray:
        """The unfused epilogue on an int64 accumulator (in place), bias along `channel_axis`."""
        bias = None
        if self.bias is not None:
            shape = [1] * acc.ndim
            shape[channel_axis] = -1
            bias = self.bias.reshape(shape)
        return requantize(acc, self.shift, 0, self.bits, bias=bias, out=acc, relu=self.relu)

    def doubled(self, weight, shape=None, transposed: bool = False) -> np.ndarray:
        """The float64 operand of a fused product: twice the weight (transposed, then reshaped to `shape`,
        when asked), with one more entry on its last axis holding 2 * bias + 1/2 against the column of ones.
        `weight` is a kernels.Prepared (the result is cached on it) or an int64 array."""
        shape = None if shape is None else tuple(int(d) for d in shape)
        key = ("fused", shape, transposed, None if self.bias is None else self.bias.tobytes())
        cache = getattr(weight, "cache", None)
        if cache is not None and key in cache:
            return cache[key]
        values = weight.values if cache is not None else np.asarray(weight, dtype=np.int64)
        values = values.T if transposed else values
        values = values.reshape(shape) if shape is not None else values
        result = np.empty(values.shape[:-1] + (values.shape[-1] + 1,), dtype=np.float64)
        np.multiply(values, 2.0, out=result[..., :-1])
        result[..., -1] = self.bias_column(result.shape[:-1])
        if cache is not None and len(cache) < 64:
            cache[key] = result
        return result

    def bias_column(self, shape) -> np.ndarray | float:
        """2 * bias + 1/2 in float64 (exact: |bias| < 2**50), shaped to the output channels `shape`."""
        if self.bias is None:
            return 0.5
        return (2.0 * self.bias.astype(np.float64) + 0.5).reshape(shape)

    def offset(self, shape) -> np.ndarray | float:
        """bias + 1/4 in float64 (exact), shaped to the output channels `shape`: what an exact float
        accumulator is added to (in float64) before finish(..., doubled=False)."""
        if self.bias is None:
            return 0.25
        return (self.bias.astype(np.float64) + 0.25).reshape(shape)

    def finish(self, y: np.ndarray, doubled: bool = True, offset=0.0, out: np.ndarray | None = None) -> np.ndarray:
        """y (float64, any strides) holding 2 (acc + bias) + 1/2 exactly (doubled=False: acc + bias + 1/4)
        -> the int64 activations, in `out` (any strides, y's shape) or a new array. `offset` (doubled=False
        only; float64, broadcast against y) is added to y in the same pass: a float32 y is then an exact
        product, widened there."""
        if out is None:
            out = np.empty(y.shape, dtype=np.int64)
        offset = _spread(offset, y.shape)
        target = _three_axes(out, writable=True)
        swapped = not target.flags.c_contiguous and target.transpose(1, 0, 2).flags.c_contiguous
        loops.finish(_three_axes(y), _three_axes(offset), *self.rounding(doubled),
                     target.transpose(1, 0, 2) if swapped else target, swapped)
        return out

    def rounding(self, doubled: bool = True) -> tuple:
        """The compiled loops' arguments for one form: (correct, threshold, low, high, magic, unit), where
        `correct` says whether values at or below `threshold` are moved down by 1 (not with a fused Relu, nor
        at shift 0 in the halved form). (From shift 52 on the threshold rounds, harmlessly: no |x| < 2**50
        reaches -h there.)"""
        threshold, (low, high), magic, unit = self._forms[doubled]
        correct = not self.relu and threshold is not None
        return correct, (threshold if correct else 0.0), low, high, magic, unit

    def finish_float(self, a: np.ndarray, b: np.ndarray, chunk: int, channel_shape) -> np.ndarray:
        """The activations of the exact float product a @ b (np.matmul broadcasting, bias along
        `channel_shape`) as a new array: float_product, finished with offset() added in the same pass.
        Exact while |acc| + |bias| + 1 < 2**50 (fusable)."""
        return self.finish(float_product(a, b, chunk), False, self.offset(channel_shape))


_UNBOUNDED = (0, int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max), False)


def integer_epilogue(requantize: Requantize | None, correction: np.ndarray) -> tuple[np.ndarray, tuple]:
    """(bias, (shift, low, high, correct)) for a compiled loop that finishes an exact int64 accumulator itself,
    as _requantized(acc + bias) (loops.limb_combine, loops.winograd4_output): the epilogue's integer form
    (Requantize.fits_int64) when its shift is 1..62, else the accumulator (shift 0, no clip), which the caller then
    passes to Requantize.apply (`finished_in_loop`). `correction` (int64, one per output channel) joins the bias."""
    if requantize is None or not finished_in_loop(requantize):
        return correction, _UNBOUNDED
    bias = correction if requantize.bias is None else requantize.bias + correction
    low, high = requantize.limits()
    return bias, (requantize.shift, low, high, not requantize.relu)


def finished_in_loop(requantize: Requantize | None) -> bool:
    """Whether integer_epilogue's loop applies the epilogue itself (else the caller applies it after)."""
    return requantize is None or 0 < requantize.shift <= 62


def float_product(a: np.ndarray, b: np.ndarray, chunk: int) -> np.ndarray:
    """a @ b for float32 or float64 operands, exact while every K-chunk of `chunk` products' partial sums
    is (exact_gemm.plan_gemm): one product in the operands' type (scratch space, valid until the next call)
    when a single chunk covers K, else the chunks summed in float64 (a new array)."""
    if chunk >= a.shape[-1]:
        out = exact_gemm.product_buffer(a, b, "fused_product")
        if a.ndim == b.ndim == 2:
            return exact_gemm.matmul_rows(a, b, out)
        return np.matmul(a, b, out=out)
    return exact_gemm.matmul_float_sum(a, b, chunk)


def _spread(offset, shape) -> np.ndarray:
    """offset (a float, or a float64 array that broadcasts to `shape`) as a read-only view of that shape, zero
    strides where it repeats: a float's in a fraction of np.broadcast_to's time (a small layer's epilogue
    pays it every run)."""
    if isinstance(offset, float):
        return spread_value(offset, tuple(shape))
    return np.broadcast_to(np.asarray(offset, dtype=np.float64), shape)


@functools.lru_cache(maxsize=256)
def spread_value(value: float, shape: tuple) -> np.ndarray:
    """A read-only view of one float64 `value` in `shape` (zero strides), made once per shape."""
    single = np.full(1, value, dtype=np.float64)
    single.flags.writeable = False
    view = np.ndarray(shape, np.float64, single, 0, (0,) * len(shape))
    view.flags.writeable = False
    return view


def three_axes_shape(shape: tuple) -> tuple:
    """The shape of _three_axes's view of an array of `shape`."""
    if len(shape) <= 3:
        return (1,) * (3 - len(shape)) + tuple(shape)
    return (math.prod(shape[:-2]),) + tuple(shape[-2:])


def _three_axes(x: np.ndarray, writable: bool = False) -> np.ndarray:
    """x as a 3-axis view (the compiled loop's rank): unit axes in front, or leading axes merged."""
    if x.ndim <= 3:
        return x.reshape((1,) * (3 - x.ndim) + x.shape)
    merged = x.reshape((-1,) + x.shape[-2:])
    if writable and not np.may_share_memory(merged, x):  # (reshape copies what it cannot view)
        raise ValueError(f"an output of shape {x.shape} and strides {x.strides} has no 3-axis view")
    return merged
