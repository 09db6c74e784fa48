"""Compiled integer log2 and exp2 (verifier/nonlinear/exp_log.py: the same table lookups, products and rounded
shifts per value) and the LRN they serve (verifier/ops/lrn.py), one pass over the input instead of numpy's
forty (the package docstring says why their bits are those of the numpy forms)."""

import numpy as np

from verifier.fixedpoint import INT64_SAFE
from verifier.kernels.loops._compile import compiled, inlined
from verifier.kernels.loops.rows import _bit_length  # noqa: F401 (inlined when compiled)
from verifier.nonlinear.exp_log import EXP2_ARG_FRAC, LOG2_TABLE_BITS, MANT  # (compile-time constants of the loops)


@compiled
def lrn(x, size, multiplier, shift, bias_q, t_frac, p_m, p_shift, power_frac, out_shift, limit, tables, squares,
        out):  # pragma: no cover - compiled
    """ops.lrn.LRN over x (N, C, L): S = the sum of x*x over the channel window [c - (size-1)//2, c + size//2],
    t = bias_q + round_shift(S * multiplier, shift), P = pow_positive(t, t_frac, p_m, p_shift, power_frac),
    y = clip(round_shift(x * P, out_shift), -limit, limit). tables: (log2 (4097,), exp2_hi, exp2_mid,
    exp2_lo); squares: an int64 (L,) row buffer; out: (N, C, L). Takes right shifts of 1..63 only (shift
    also 0; p_shift + 6, out_shift) and t up to INT64_SAFE (compiled programs keep t below 2**60); returns False, out
    unfinished, for anything else (the caller's numpy form defines it)."""
    power_shift = p_shift + MANT - EXP2_ARG_FRAC
    if not (0 <= shift < 64 and 0 < power_shift < 64 and 0 < out_shift < 64):
        return False
    N, C, L = x.shape
    below, above = (size - 1) // 2, size // 2
    log_offset = np.int64(t_frac) << MANT
    for n in range(N):
        for c in range(C):
            squares[:] = 0
            for j in range(max(c - below, 0), min(c + above + 1, C)):
                line = x[n, j]
                for p in range(L):
                    squares[p] += line[p] * line[p]
            line, target = x[n, c], out[n, c]
            for p in range(L):
                scaled = squares[p] * multiplier
                t = bias_q + (_round_shift(scaled, shift) if shift > 0 else scaled)
                if t > INT64_SAFE:  # (only a hostile program's: past log2's domain, which the numpy form
                    return False  # defines by its own indexing; unchecked here, it would read past the table)
                w = _round_shift((_log2(t, tables[0]) - log_offset) * p_m, power_shift)
                power = _exp2(w, power_frac, tables[1], tables[2], tables[3])
                target[p] = min(max(_round_shift(line[p] * power, out_shift), -limit), limit)
    return True


@inlined
def _round_shift(v, s):  # pragma: no cover - compiled
    """fixedpoint.round_shift of one int64 for a shift of 1..63: (v + 2**(s-1) - [v < 0]) >> s."""
    return (v + (np.int64(1) << (s - 1)) - (v < 0)) >> s


@inlined
def _round_shift_each(v, s):  # pragma: no cover - compiled
    """fixedpoint.round_shift_each of one int64 for a shift of 0..62: the magnitude rounded, the sign kept."""
    magnitude = ((-v if v < 0 else v) + ((np.int64(1) << (s - 1)) if s > 0 else np.int64(0))) >> s
    return -magnitude if v < 0 else magnitude


@inlined
def _log2(v, table):  # pragma: no cover - compiled
    """exp_log.log2 of one int64 (values below 1 taken as 1) at 2**-30: normalised to [2**30, 2**31] by its bit
    length, then the table with linear interpolation on the low 18 bits."""
    v = max(v, np.int64(1))
    k = _bit_length(v) - 1
    normalised = _round_shift_each(v, k - MANT) if k > MANT else v << (MANT - k)
    offset = normalised - (np.int64(1) << MANT)
    rest = MANT - LOG2_TABLE_BITS
    index = min(offset >> rest, (1 << LOG2_TABLE_BITS) - 1)
    fraction = table[index] + _round_shift((table[index + 1] - table[index]) * (offset - (index << rest)), rest)
    return (k << MANT) + fraction


@inlined
def _exp2(w, out_frac, high, middle, low):  # pragma: no cover - compiled
    """exp_log.exp2 of one int64 (at 2**-24) at 2**-out_frac: three lookups on 8-bit slices of its fraction, two
    rounded products, then the shift by its integer part; INT64_SAFE past 31 bits up."""
    n = w >> EXP2_ARG_FRAC
    r = w & ((1 << EXP2_ARG_FRAC) - 1)
    partial = _round_shift(high[r >> 16] * middle[(r >> 8) & 0xFF], MANT)
    mantissa = _round_shift(partial * low[r & 0xFF], MANT)
    s = MANT - out_frac - n
    if s < -31:
        return np.int64(INT64_SAFE)
    if s < 0:
        return mantissa << -s
    return _round_shift_each(mantissa, min(s, 62))
