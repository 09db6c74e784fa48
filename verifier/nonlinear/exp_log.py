"""Integer exp2 and log2 by range reduction, and the reductions built on them.

Every constant below is a spec constant (docs/fixed-point-nonlinear.md, "Spec constants"): an exact
value computed with Python's `decimal` module (platform independent, no libm) and rounded half away
from zero. They are the same for every program, so they are not stored in the program bytes.

Internal precisions: mantissas and log2 results carry MANT = 30 fraction bits; the base-2 exponent
handed to exp2 carries EXP2_ARG_FRAC = 24.
"""

from decimal import ROUND_HALF_UP, Decimal, localcontext
from functools import cache

import numpy as np

from verifier.errors import OutOfRangeError
from verifier.fixedpoint import (
    ACT_BITS, INT64_SAFE, bit_length, qmax, round_shift, round_shift_each, rounding_divide, saturate,
)

MANT = 30
EXP2_ARG_FRAC = 24
EXP_NEG_MAX_ARG = (1 << 17) - 1  # |x - max| of two 16-bit activations always fits
LOG2_TABLE_BITS = 12
LOG2E_SHIFT = 43
LN2_SHIFT = 25
EXP2_ZERO_ARG = 32 << EXP2_ARG_FRAC  # exp2(-v) at 2**-30 is 0 for every v >= 32 (at 2**-24)
LOG_SOFTMAX_WORK_HEADROOM = 32  # LogSoftmax works at frac min(30, f_out + 32)


def _round_decimal(value: Decimal) -> int:
    """Round half away from zero (ROUND_HALF_UP in decimal's terms is away from zero)."""
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


@cache
def spec_constants() -> dict[str, np.ndarray | int]:
    """The exp2 tables (2**(i / 2**8), 2**(i / 2**16), 2**(i / 2**24) for i < 256, at 2**-30), the
    log2 table (log2(1 + i / 4096) for i <= 4096, at 2**-30), log2(e) at 2**-43 and ln(2) at 2**-25."""
    with localcontext() as ctx:
        ctx.prec = 60
        one, two, scale = Decimal(1), Decimal(2), Decimal(1 << MANT)
        ln2 = two.ln()
        exp2_tables = [
            np.array([_round_decimal((ln2 * i / (1 << level)).exp() * scale) for i in range(256)], dtype=np.int64)
            for level in (8, 16, 24)
        ]
        steps = 1 << LOG2_TABLE_BITS
        log2_table = np.array(
            [_round_decimal((one + Decimal(i) / steps).ln() / ln2 * scale) for i in range(steps + 1)], dtype=np.int64
        )
        return {
            "exp2_hi": exp2_tables[0], "exp2_mid": exp2_tables[1], "exp2_lo": exp2_tables[2],
            "log2": log2_table,
            "log2e": _round_decimal(Decimal(1 << LOG2E_SHIFT) / ln2),
            "ln2": _round_decimal(ln2 * (1 << LN2_SHIFT)),
        }


def _exp2_mantissa(r: np.ndarray) -> np.ndarray:
    """2**(r / 2**24) at 2**-30 for 0 <= r < 2**24: three table lookups on 8-bit slices, two rounded products."""
    c = spec_constants()
    hi, mid, lo = r >> 16, (r >> 8) & 0xFF, r & 0xFF
    partial = round_shift(c["exp2_hi"][hi] * c["exp2_mid"][mid], MANT)
    return round_shift(partial * c["exp2_lo"][lo], MANT)


def exp2(w: np.ndarray, out_frac: int = MANT) -> np.ndarray:
    """2**(w * 2**-24) at 2**-out_frac. Results above INT64_SAFE saturate to it; tiny ones round to 0."""
    w = np.asarray(w, dtype=np.int64)
    n = w >> EXP2_ARG_FRAC  # floor
    mantissa = _exp2_mantissa(w & ((1 << EXP2_ARG_FRAC) - 1))  # in [2**30, 2**31)
    shift = MANT - out_frac - n
    down = round_shift_each(mantissa, np.clip(shift, 0, 62))
    up = mantissa << np.clip(-shift, 0, 31)
    result = np.where(shift >= 0, down, up)
    return np.where(shift < -31, INT64_SAFE, result)


def exp_neg(t: np.ndarray, in_frac: int) -> np.ndarray:
    """exp(-t * 2**-in_frac) at 2**-30 for t >= 0 (t clipped to 0..2**17-1): v = t*log2(e) at 2**-24,
    capped at EXP2_ZERO_ARG (where exp2(-v) is already 0), then exp2. exp(0) is exactly 2**30.
    Defined for every in_frac: a coarse input scale (in_frac << 0) never shifts past int64."""
    t = np.clip(np.asarray(t, dtype=np.int64), 0, EXP_NEG_MAX_ARG)
    w = scale_capped(t, spec_constants()["log2e"], LOG2E_SHIFT + in_frac - EXP2_ARG_FRAC, EXP2_ZERO_ARG)
    return exp2(-w, MANT)


def scale_capped(t: np.ndarray, multiplier: int, shift: int, cap: int) -> np.ndarray:
    """min(round(t * multiplier * 2**-shift), cap) for 0 <= t < 2**17, 0 < multiplier < 2**45 and
    0 < cap < 2**61, without an int64 intermediate past 2**62 for any shift (negative shifts included):
    for shift < 0 the step L = multiplier * 2**-shift is a Python integer and every t at or above
    t_cap = ceil(cap / L) gives exactly cap; smaller t give t * L < cap exactly."""
    t = np.asarray(t, dtype=np.int64)
    if shift >= 0:
        return np.minimum(round_shift(t * np.int64(multiplier), shift), cap)
    step = multiplier << -shift
    t_cap = -(-cap // step)
    return np.where(t >= t_cap, np.int64(cap), np.minimum(t, t_cap - 1) * np.int64(min(step, cap)))


@cache
def exp_neg_table(in_frac: int) -> np.ndarray:
    """exp_neg(t, in_frac) for every t from 0 up to its first zero (or 2**17 - 1): the same integers, cached."""
    values = exp_neg(np.arange(EXP_NEG_MAX_ARG + 1, dtype=np.int64), in_frac)
    zeros = np.nonzero(values == 0)[0]
    values = values[: zeros[0] + 1] if zeros.size else values
    values.setflags(write=False)
    return values


def exp_neg_lookup(t: np.ndarray, in_frac: int) -> np.ndarray:
    """exp_neg by lookup in its cached table: bit-identical to exp_neg (t >= 0), several times faster."""
    table = exp_neg_table(in_frac)
    return np.take(table, np.minimum(t, len(table) - 1))


def log2(x: np.ndarray) -> np.ndarray:
    """log2(x) at 2**-30 for integers x >= 1 (smaller x are taken as 1): x normalised to [2**30, 2**31]
    by its bit length, then the 4097-entry table with linear interpolation on the low 18 bits."""
    x = np.maximum(np.asarray(x, dtype=np.int64), 1)
    k = bit_length(x) - 1
    normalised = np.where(k > MANT, round_shift_each(x, np.maximum(k - MANT, 0)), x << np.maximum(MANT - k, 0))
    offset = normalised - (1 << MANT)  # in [0, 2**30]
    rem_bits = MANT - LOG2_TABLE_BITS
    index = np.minimum(offset >> rem_bits, (1 << LOG2_TABLE_BITS) - 1)
    rem = offset - (index << rem_bits)
    table = spec_constants()["log2"]
    fraction = table[index] + round_shift((table[index + 1] - table[index]) * rem, rem_bits)
    return (k << MANT) + fraction


def ln(x: np.ndarray, x_frac: int) -> np.ndarray:
    """ln(x * 2**-x_frac) at 2**-30 for integers x >= 1: (log2(x) - x_frac) * ln2, rounded once."""
    return round_shift((log2(x) - (x_frac << MANT)) * spec_constants()["ln2"], LN2_SHIFT)


def log_sum_exp(rows: np.ndarray, in_frac: int) -> np.ndarray:
    """ln(sum exp(x)) over the last axis at 2**-30: max + ln(sum exp_neg(max - x)), the sum >= 2**30 (the
    maximum contributes exactly that)."""
    row_max = np.max(rows, axis=-1)
    total = np.sum(exp_neg_lookup(row_max[..., None] - rows, in_frac), axis=-1)
    return round_shift(row_max, in_frac - MANT) + ln(total, MANT)


def pow_positive(x: np.ndarray, x_frac: int, exponent_m: int, exponent_shift: int, out_frac: int) -> np.ndarray:
    """(x * 2**-x_frac) ** p at 2**-out_frac for x >= 1, p = exponent_m * 2**-exponent_shift:
    exp2(round(p * log2) at 2**-24); results saturate at INT64_SAFE."""
    log_value = log2(x) - (np.int64(x_frac) << MANT)
    w = round_shift(log_value * np.int64(exponent_m), exponent_shift + MANT - EXP2_ARG_FRAC)
    return exp2(w, out_frac)


def pow_tensor(x: np.ndarray, x_frac: int, p: np.ndarray, p_frac: int, out_frac: int, bits: int = ACT_BITS) -> np.ndarray:
    """x ** p elementwise for a run-time exponent (x at 2**-x_frac, p at 2**-p_frac; numpy broadcasting):
    |y| = exp2(round((log2|x| - x_frac) * p / 2**(p_frac + 6)), out_frac), saturated; negative x needs an
    integer p (odd p flips the sign; a non-integer p gives 0, the NaN of float); x = 0 gives 0 for p > 0,
    1 for p = 0 and +qmax for p < 0."""
    x = np.asarray(x, dtype=np.int64)
    p = np.asarray(p, dtype=np.int64)
    log_value = log2(np.abs(x)) - (np.int64(x_frac) << MANT)
    w = round_shift(log_value * p, p_frac + MANT - EXP2_ARG_FRAC)
    magnitude = saturate(exp2(w, out_frac), bits)
    if p_frac > 0:
        integral = (p & ((1 << p_frac) - 1)) == 0
        odd = ((p >> p_frac) & 1) == 1
    else:
        integral = np.ones(p.shape, dtype=bool)
        odd = ((p << -p_frac) & 1) == 1
    signed = np.where(x < 0, np.where(integral, np.where(odd, -magnitude, magnitude), 0), magnitude)
    at_zero = np.where(p > 0, 0, np.where(p == 0, saturate(np.int64(1) << max(out_frac, 0), bits), qmax(bits)))
    return np.where(x == 0, at_zero, signed)


def integer_power(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """x ** p for plain integers by binary exponentiation; p < 0 gives 1 / x**|p| truncated toward zero
    (1 for x = 1, +-1 for x = -1, otherwise 0; 0 ** negative is an error). A result beyond +-INT64_SAFE is
    an OutOfRangeError, never a wrap."""
    x, p = np.broadcast_arrays(np.asarray(x, dtype=np.int64), np.asarray(p, dtype=np.int64))
    if np.any((x == 0) & (p < 0)):
        raise OutOfRangeError("integer 0 raised to a negative power")
    result = np.ones(x.shape, dtype=np.int64)
    base, remaining = x.copy(), np.maximum(p, 0)
    while np.any(remaining > 0):
        odd = (remaining & 1) == 1
        result = np.where(odd, _checked_product(result, base, odd), result)
        remaining >>= 1
        more = remaining > 0
        base = np.where(more, _checked_product(base, base, more), base)
    negative = np.where(np.abs(x) == 1, np.where((x == -1) & ((-p) & 1 == 1), -1, 1), 0)
    return np.where(p < 0, negative, result)


def _checked_product(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> np.ndarray:
    limit = INT64_SAFE // np.maximum(np.abs(b), 1)
    if np.any(where & (np.abs(a) > limit)):
        raise OutOfRangeError("integer power exceeds the int64 range")
    return np.where(where, a * b, a)


def exponent_multiplier(p: float) -> tuple[int, int]:
    """Compile time: (m, shift) with m * 2**-shift == p rounded to 24 significant bits (|m| < 2**24)."""
    if p == 0.0:
        return 0, 0
    shift = 23 - int(np.ceil(np.log2(abs(p))))
    while abs(round(p * 2.0**shift)) >= 1 << 24:
        shift -= 1
    shift = min(shift, 40)
    m = int(np.sign(p) * np.floor(abs(p) * 2.0**shift + 0.5))
    return m, shift


def softmax(x: np.ndarray, in_frac: int, axis: int, out_frac: int, bits: int = ACT_BITS,
            masked: bool = False) -> np.ndarray:
    """e_i = exp_neg(max - x_i); y_i = rounding_divide(e_i * 2**out_frac, sum e), saturated. Needs out_frac <= 31.
    masked: x_i = -qmax is -inf (an attention mask), e_i = 0, unless it is the maximum of its row."""
    x = np.asarray(x, dtype=np.int64)
    if x.size == 0:
        return x.copy()
    row_max = np.max(x, axis=axis, keepdims=True)
    e = exp_neg_lookup(row_max - x, in_frac)
    if masked:
        e = np.where((x <= -qmax(bits)) & (x < row_max), 0, e)
    total = np.sum(e, axis=axis, keepdims=True)
    return saturate(rounding_divide(e << out_frac, total), bits)


def log_softmax(x: np.ndarray, in_frac: int, axis: int, out_frac: int, bits: int = ACT_BITS,
                masked: bool = False) -> np.ndarray:
    """y_i = -(max - x_i) - ln(sum exp_neg(max - x)), worked at frac W = min(30, out_frac + 32), then
    rounded to 2**-out_frac and saturated. ln(s) = (log2(s) - 30) * ln2 at 2**-30, rounded to W.
    (max - x_i) at W is capped at C = ceil((qmax + 1) * 2**(W - out_frac)), a value that already
    saturates, so any in_frac works without an int64 overflow and the result is unchanged."""
    x = np.asarray(x, dtype=np.int64)
    if x.size == 0:
        return x.copy()
    work = min(MANT, out_frac + LOG_SOFTMAX_WORK_HEADROOM)
    row_max = np.max(x, axis=axis, keepdims=True)
    t = row_max - x
    e = exp_neg_lookup(t, in_frac)
    minus_infinity = (x <= -qmax(bits)) & (x < row_max) if masked else None
    if masked:
        e = np.where(minus_infinity, 0, e)
    total = np.sum(e, axis=axis, keepdims=True)  # >= 2**30: the max contributes exactly that
    log_total = ln(total, MANT)
    if work >= out_frac:
        saturating = (qmax(bits) + 1) << (work - out_frac)
    else:
        saturating = -(-(qmax(bits) + 1) // (1 << (out_frac - work)))
    value = -scale_capped(t, 1, in_frac - work, saturating) - round_shift(log_total, MANT - work)
    y = saturate(round_shift(value, work - out_frac), bits)
    return np.where(minus_infinity, -qmax(bits), y) if masked else y
