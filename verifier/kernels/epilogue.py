"""The epilogue of a GEMM / convolution: add the bias, rescale to the output frac, saturate.

`requantize(acc, from_frac, to_frac, bits, bias=...)` returns exactly
verifier.fixedpoint.requantize(acc + bias, from_frac, to_frac, bits) - the one rounding rule, round half
away from zero - but in a few in-place integer passes instead of a dozen temporaries (about 10x
faster on a layer's output). Rounding half away from zero by 2**s is

    x >= 0:  (x + 2**(s-1)) >> s
    x <  0:  -((-x + 2**(s-1)) >> s)  ==  (x + 2**(s-1) - 1) >> s     (floor division identities)

so with m = x >> 63 (0 or -1, an arithmetic shift) both cases are (x + m + 2**(s-1)) >> s.
"""

import numpy as np

from verifier import fixedpoint
from verifier.fixedpoint import ACT_BITS, qmax
from verifier.kernels import window

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
    if bias is not None and 0 < shift <= 62:
        bias = np.asarray(bias, dtype=np.int64)
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
    negative = np.less(out, half, out=window.scratch("requantize_negative", out.shape, np.bool_))
    np.subtract(out, negative, out=out)
    out >>= shift
    return np.clip(out, 0 if relu else -limit, limit, out=out)
