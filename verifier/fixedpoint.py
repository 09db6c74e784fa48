"""Integer primitives shared by every op. Nothing else in the verifier rounds or saturates.

Representation (docs/fixed-point.md, section "Values"): a tensor is an int64 array q with a
fractional bit count `frac`; its real value is q * 2**-frac. Activations are kept in a signed
`bits`-wide range (default ACT_BITS = 16: |q| <= 2**15 - 1); accumulators are int64.

Rounding (one rule everywhere): round half away from zero, computed with integer ops only:
    round_shift(x, s) = sign(x) * ((|x| + 2**(s-1)) >> s)      for s > 0
Overflow: saturate to the declared range; an int64 intermediate that could overflow is a compile
error (the compiler proves bounds), never a silent wrap.
"""

import numpy as np

from verifier.errors import OutOfRangeError

ACT_BITS = 16
WEIGHT_BITS = 16
MATMUL_BITS = (16, 8)  # operand widths of a program's Conv/Gemm/MatMul products: 16, or 8 (opt-in, faster)
INT64_SAFE = (1 << 62) - 1  # intermediates stay below this so one more addition cannot wrap
FLOAT64_EXACT = 1 << 53  # every integer of magnitude <= 2**53 is a float64: the float paths' exactness bound
FLOAT32_EXACT = 1 << 24  # (the same for float32)
MAX_FRAC = 48  # the finest scale a tensor gets, 2**-48, whatever its (tiny) range


def qmax(bits: int) -> int:
    """Largest magnitude of a signed `bits`-wide value (symmetric range, -qmax..qmax)."""
    return (1 << (bits - 1)) - 1


def saturate(x: np.ndarray, bits: int = ACT_BITS) -> np.ndarray:
    """Clamp to [-qmax(bits), qmax(bits)]."""
    limit = qmax(bits)
    return np.clip(x, -limit, limit)


def round_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """x / 2**shift rounded half away from zero (shift > 0); x * 2**-shift exactly (shift <= 0)."""
    x = np.asarray(x, dtype=np.int64)
    if shift <= 0:
        if shift < 0:
            _check_headroom(x, -shift)
        return x << -shift
    if shift >= 64:  # |x| < 2**63 <= 2**(shift-1): every int64 rounds to 0 (and 1 << 63 would not fit)
        return np.zeros_like(x)
    # sign(x) * ((|x| + h) >> s) with h = 2**(s-1), in three passes: for x < 0 it equals
    # floor((x + h - 1) / 2**s) = ceil((x - h) / 2**s); for x >= 0 it is floor((x + h) / 2**s).
    out = np.asarray(x + np.int64(1 << (shift - 1)))  # asarray: 0-d inputs give numpy scalars
    np.subtract(out, x < 0, out=out)
    np.right_shift(out, shift, out=out)
    return out


def requantize(x: np.ndarray, from_frac: int, to_frac: int, bits: int = ACT_BITS) -> np.ndarray:
    """Move q from scale 2**-from_frac to 2**-to_frac, rounding, then saturate to `bits`."""
    out = round_shift(x, from_frac - to_frac)
    if out is x or not isinstance(out, np.ndarray):  # (numpy ops on a 0-d array return a scalar)
        out = np.array(out, dtype=np.int64)
    limit = qmax(bits)
    return np.clip(out, -limit, limit, out=out)


def mul_round(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """x * multiplier / 2**shift, rounded half away from zero: scaling by a constant."""
    x = np.asarray(x, dtype=np.int64)
    _check_headroom(x, max(int(abs(multiplier)).bit_length(), 0))
    return round_shift(x * np.int64(multiplier), shift)


def rounding_divide(numerator: np.ndarray, denominator: np.ndarray | int) -> np.ndarray:
    """numerator / denominator (denominator > 0) rounded half away from zero, integers only."""
    numerator = np.asarray(numerator, dtype=np.int64)
    denominator = np.asarray(denominator, dtype=np.int64)
    magnitude = (2 * np.abs(numerator) + denominator) // (2 * denominator)
    return with_sign_of(numerator, magnitude)


def round_half_even(numerator, denominator):
    """numerator / denominator (denominator > 0, broadcast) rounded half to even, integers only (int64
    arrays, or Python ints in object arrays): the rounding of ONNX Round and of onnxruntime's nearbyint."""
    whole = numerator // denominator
    twice_rest = 2 * (numerator - whole * denominator)
    return whole + ((twice_rest > denominator) | ((twice_rest == denominator) & (whole % 2 == 1)))


def with_sign_of(x: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """-magnitude where x < 0, else magnitude (int64, broadcast): (magnitude ^ m) - m with m = x >> 63, the
    two's complement negation where m = -1. The same integers as np.where(x < 0, -magnitude, magnitude),
    which runs ~15x slower on a mixed-sign tensor (a data-dependent select per element)."""
    negative = np.right_shift(np.asarray(x, dtype=np.int64), 63)
    return np.subtract(np.bitwise_xor(magnitude, negative), negative)


def quantize(real: np.ndarray, frac: int, bits: int = ACT_BITS) -> np.ndarray:
    """Float -> fixed point with round half away from zero, saturated. Compile time and feeds only:
    the run itself never touches floats."""
    scaled = np.asarray(real, dtype=np.float64) * np.float64(2.0**frac)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    limit = qmax(bits)
    return np.clip(rounded, -limit, limit).astype(np.int64)


def dequantize(q: np.ndarray, frac: int) -> np.ndarray:
    """Fixed point -> float32, for the onnxruntime-style `run` only."""
    return (np.asarray(q, dtype=np.float64) * 2.0**-frac).astype(np.float32)


def frac_for_range(max_abs: float, bits: int = ACT_BITS, headroom: float = 1.0) -> int:
    """Largest frac such that max_abs * headroom still fits in `bits` (at least one integer step)."""
    bound = float(max_abs) * headroom
    if not np.isfinite(bound):
        raise OutOfRangeError(f"range {max_abs} is not finite")
    if bound <= 0.0:
        return bits - 2
    limit = qmax(bits)
    if bound < limit * 2.0**-MAX_FRAC:  # a range this small is zero at any useful precision
        return MAX_FRAC
    frac = int(np.floor(np.log2(limit / bound)))
    while bound * 2.0**frac > limit:  # guard log2 rounding at exact powers of two
        frac -= 1
    return frac


def round_shift_each(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """x / 2**shifts elementwise (broadcast), rounded half away from zero; every shift in 0..62.
    The per-element form of round_shift, for values normalised by their own bit length."""
    x = np.asarray(x, dtype=np.int64)
    shifts = np.asarray(shifts, dtype=np.int64)
    half = np.where(shifts > 0, np.left_shift(np.int64(1), np.maximum(shifts - 1, 0)), 0)
    magnitude = (np.abs(x) + half) >> shifts
    return with_sign_of(x, magnitude)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Elementwise bit length of non-negative int64 values (0 -> 0), by a branch-free binary search."""
    x = np.asarray(x, dtype=np.int64)
    length = np.zeros(x.shape, dtype=np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = (x >> step) > 0
        x = np.where(big, x >> step, x)
        length += np.where(big, step, 0)
    return length + (x > 0)


def _check_headroom(x: np.ndarray, extra_bits: int) -> None:
    if x.size and int(np.max(np.abs(x))) >= (INT64_SAFE >> extra_bits):
        raise OutOfRangeError(f"intermediate would exceed int64 after scaling by 2**{extra_bits}")
