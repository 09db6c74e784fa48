"""Elementwise and per-row compiled loops: the fused epilogue's finish and the rounding helpers every loop
shares, 8-bit narrowing and value ranges, two-term sums and products with their requantization, per-channel
affine maps, float feeds, LayerNormalization and Softmax rows (the package docstring says why their bits are those of the numpy forms)."""

import numpy as np

from verifier.fixedpoint import FLOAT64_EXACT
from verifier.kernels.loops._compile import compiled, inlined


@compiled
def finish(y, offset, correct, threshold, lo, hi, magic, unit, out, swapped):  # pragma: no cover - compiled
    """out = the epilogue's rounding of v = y + offset, elementwise (float64, exact): v - [v <= threshold]
    when `correct`, clipped to [lo, hi], rounded to a multiple of `unit` by one float addition of `magic`
    (epilogue.py: round-to-nearest, never a tie), then divided by `unit` (a power of two: exact).
    y: float32 or float64 (A, B, D); offset: float64 (A, B, D), usually a broadcast view (a stride of 0
    along D: one offset per row, read once); out: int64 (A, B, D), or (B, A, D) when `swapped` (out[b, a] is
    then y[a, b]'s row: a batch's (channels, images) product written as (images, channels) while out stays
    C-contiguous, which the compiler vectorizes; a strided out is several times slower), not y's memory (an
    aliased output keeps LLVM from vectorizing too)."""
    inverse = 1.0 / unit
    A, B, D = y.shape
    per_row = offset.strides[2] == 0
    for a in range(A):
        for b in range(B):
            row, offsets, target = y[a, b], offset[a, b], (out[b, a] if swapped else out[a, b])
            if per_row:
                shift = offsets[0] if D else 0.0
                for d in range(D):
                    target[d] = _rounded(row[d] + shift, correct, threshold, lo, hi, magic, inverse)
            else:
                for d in range(D):
                    target[d] = _rounded(row[d] + offsets[d], correct, threshold, lo, hi, magic, inverse)


@inlined
def _rounded(v, correct, threshold, lo, hi, magic, inverse):  # pragma: no cover - compiled
    if correct and v <= threshold:
        v -= 1.0
    v = min(max(v, lo), hi)
    return np.int64(((v + magic) - magic) * inverse)


@inlined
def _floor_divide(n, d):  # pragma: no cover - compiled
    """n // d for d >= 1: one float division (a few cycles, and vectorizable) where 0 <= n < 2**53 and d < 2**53,
    else the 64-bit integer division (tens of cycles; a negative n - a wrapped sum - included). Exact: IEEE
    division rounds n / d correctly; when d divides n that is the integer itself, and otherwise n / d lies at least
    1/d below the next integer, more than the rounding can move it (half an ulp, at most (n / d) 2**-53 < 1/d for
    n < 2**53), so truncating gives the floor."""
    if 0 <= n < FLOAT64_EXACT and d < FLOAT64_EXACT:
        return np.int64(np.float64(n) / np.float64(d))
    return n // d


@inlined
def _requantized(t, rounding, low, high):  # pragma: no cover - compiled
    """fixedpoint.requantize of one int64 t, clipped to [low, high]: with rounding = (shift, half, correct)
    from _rounding, t rounded half away from zero by 2**shift as (t + half - [t < 0]) >> shift
    (fixedpoint.round_shift's identity), the sign correction only when `correct`."""
    shift, half, correct = rounding
    return min(max((t + half + ((t >> 63) & -np.int64(correct))) >> shift, low), high)  # (-1 where t < 0: no branch)


@inlined
def _rounding(shift, correct):  # pragma: no cover - compiled
    """_requantized's (shift, half, correct) for a shift of 0..62, taken once per loop: half = 2**(shift-1)
    and the sign correction as asked (skipped for a fused Relu, where low = 0 clips whatever it changes); at
    shift 0, t itself (half 0, no correction)."""
    if shift == 0:
        return shift, np.int64(0), False
    return shift, np.int64(1) << (shift - 1), correct


@compiled
def value_range(x):  # pragma: no cover - compiled
    """(min, max) of a flat int64 array in one pass (numpy's x.min() and x.max() make two);
    (INT64_MAX, INT64_MIN) when empty."""
    low, high = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    for i in range(x.shape[0]):
        v = x[i]
        low = v if v < low else low  # (a select: min() here would not vectorize)
        high = v if v > high else high
    return low, high


@compiled
def narrow(x, shift, limit, out):  # pragma: no cover - compiled
    """out = fixedpoint.requantize(x, shift, 0, bits) for shift in 0..62, limit = qmax(bits) (_requantized);
    returns (min, max) of x, taken in the same pass. x: flat int64 (or int16: widened as read); out: flat int64, or any narrower signed integer
    type that holds +-limit (a committed output: interpreter.committed).
    (Values whose rounding would wrap int64 give garbage here; callers refuse them by the range returned.)"""
    low, high = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    rounding = _rounding(shift, True)
    for i in range(x.shape[0]):
        v = x[i]
        low = v if v < low else low
        high = v if v > high else high
        out[i] = _requantized(v, rounding, -limit, limit)
    return low, high


@compiled
def sum_requantize(a, b, shift_a, shift_b, sign_a, sign_b, shift, low, high, correct, out):  # pragma: no cover
    """out = clip(round_shift(sign_a (a << shift_a) + sign_b (b << shift_b), shift), low, high) in one pass:
    the int64 sum of ops/_binary.py (two's complement: a wrap wraps alike, in any order), rounded by 2**shift
    (0..62) and clipped by _requantized (without the sign correction when not `correct`: a fused Relu).
    a, out: int64 (R, M); b: (R or 1, M or 1), broadcast; operand shifts 0..61, signs +-1. Returns False, out unfinished, when a shifted
    operand fails the reference's headroom check (|x| < INT64_SAFE >> shift): the caller then takes the
    reference path and its error."""
    safe = np.int64((1 << 62) - 1)  # fixedpoint.INT64_SAFE
    limit_a = (safe >> shift_a) - 1 if shift_a else np.iinfo(np.int64).max
    limit_b = (safe >> shift_b) - 1 if shift_b else np.iinfo(np.int64).max
    rounding = _rounding(shift, correct)
    fits = True
    rows, m = a.shape
    for r in range(rows):
        row, others, target = a[r], b[r if b.shape[0] > 1 else 0], out[r]
        for i in range(m):
            x, y = row[i], others[i if b.shape[1] > 1 else 0]
            fits &= -limit_a <= x <= limit_a and -limit_b <= y <= limit_b
            target[i] = _requantized(sign_a * (x << shift_a) + sign_b * (y << shift_b), rounding, low, high)
    return fits


@compiled
def multiply_requantize(a, b, shift, limit, out):  # pragma: no cover - compiled
    """out = clip(round_shift(a * b, shift), -limit, limit): ops/_binary.py's product (int64, wrapping alike)
    rounded by 2**shift (0..62) and clipped by _requantized, in one pass. a, out: int64 (R, M); b: (R or 1, M or 1)."""
    rounding = _rounding(shift, True)
    rows, m = a.shape
    for r in range(rows):
        row, others, target = a[r], b[r if b.shape[0] > 1 else 0], out[r]
        for i in range(m):
            target[i] = _requantized(row[i] * others[i if b.shape[1] > 1 else 0], rounding, -limit, limit)


@compiled
def affine_requantize(x, scale, offset, shift, low, high, correct, out):  # pragma: no cover - compiled
    """out[n, c, i] = _requantized(x[n, c, i] * scale[c] + offset[c]) by 2**shift (0..62), clipped to [low, high]
    (without the sign correction when not `correct`: a fused Relu, low = 0): a per-channel affine map
    (BatchNormalization) in one pass, int64 products and sums wrapping as numpy's do. x, out: int64 (N, C, S)."""
    rounding = _rounding(shift, correct)
    N, C, S = x.shape
    for n in range(N):
        for c in range(C):
            row, target, factor, term = x[n, c], out[n, c], scale[c], offset[c]
            for i in range(S):
                target[i] = _requantized(row[i] * factor + term, rounding, low, high)


@compiled
def quantize(real, scale, limit, out):  # pragma: no cover - compiled
    """out = fixedpoint.quantize(real, frac, bits) in one pass, scale = 2**frac and limit = float(qmax(bits)):
    s = real * scale (float64), sign(s) * floor(|s| + 1/2) clipped to +-limit, as int64. Returns (all finite,
    largest |out|); out is unspecified when some value is not finite. real: flat float; out: flat int64."""
    finite, largest = True, np.int64(0)
    for i in range(real.shape[0]):
        s = np.float64(real[i]) * scale
        finite &= np.isfinite(s)
        magnitude = min(np.floor(abs(s) + 0.5), limit) if np.isfinite(s) else 0.0
        q = np.int64(magnitude)
        largest = q if q > largest else largest
        out[i] = -q if s < 0 else q
    return finite, largest


@compiled
def layer_norm(x, gamma, beta, eps_q, k, z_frac, out_shift, limit, out):  # pragma: no cover - compiled
    """nonlinear.roots.layer_norm over the rows of x (R, n), the same integer steps per row: S = sum(x),
    V = n * sum(x * x) - S * S, D = max(min(V + eps_q, INT64_SAFE), 1), s = (62 - bitlen(D)) & ~1,
    inv = rounding_divide(2**k, sqrt_round(D << s)), z = round_shift_each((n x - S) * inv, k - s/2 - z_frac),
    y = saturate(round_shift(z * gamma + beta, out_shift)). gamma, beta: (n,); out: (R, n).
    Handles the shifts 0..62 (z) and 1..62 (y); returns False, out unfinished, for any other (the caller
    then takes the numpy form, which defines those too)."""
    rows, n = x.shape
    safe = np.int64((1 << 62) - 1)  # fixedpoint.INT64_SAFE
    rounding = _rounding(out_shift, True)
    for r in range(rows):
        row, target = x[r], out[r]
        total, squares = np.int64(0), np.int64(0)
        for i in range(n):
            total += row[i]
            squares += row[i] * row[i]
        d = max(min(n * squares - total * total + eps_q, safe), np.int64(1))
        s = (62 - _bit_length(d)) & ~1
        root = _sqrt_round(d << s)
        inv = (2 * (np.int64(1) << k) + root) // (2 * root)  # rounding_divide of a positive numerator
        shift = k - (s >> 1) - z_frac
        if shift < 0 or shift > 62:
            return False
        half = (np.int64(1) << (shift - 1)) if shift > 0 else np.int64(0)
        for i in range(n):
            t = (n * row[i] - total) * inv
            magnitude = ((-t if t < 0 else t) + half) >> shift
            w = (-magnitude if t < 0 else magnitude) * gamma[i] + beta[i]
            target[i] = _requantized(w, rounding, -limit, limit)
    return True


@inlined
def _bit_length(v):  # pragma: no cover - compiled
    """fixedpoint.bit_length of one v >= 0, by the same binary search (six steps, not one per bit)."""
    length = np.int64(0)
    for step in (32, 16, 8, 4, 2, 1):
        if (v >> step) > 0:
            v >>= step
            length += step
    return length + (v > 0)


@inlined
def _sqrt_round(v):  # pragma: no cover - compiled
    """nonlinear.roots.sqrt_round of one 0 < v < 2**62: r = floor(sqrt(v)), then + [v - r * r > r]. roots.isqrt
    reaches floor(sqrt(v)) by Newton's iteration; here it is the float root, moved by whole steps until
    r * r <= v < (r + 1) * (r + 1), which only floor(sqrt(v)) satisfies: the same r, with no division (the
    float root is off by less than 1, and every square stays below 2**63)."""
    r = np.int64(np.sqrt(np.float64(v)))
    while r * r > v:
        r -= 1
    while (r + 1) * (r + 1) <= v:
        r += 1
    return r + (v - r * r > r)


@compiled
def softmax(x, table, out_frac, masked, limit, out):  # pragma: no cover - compiled
    """nonlinear.exp_log.softmax over the rows of x (R, n): t = max - x_i, e_i = table[min(t, len - 1)]
    (exp_neg_lookup), 0 when `masked` and x_i <= -limit < max; y_i = rounding_divide(e_i << out_frac, sum e)
    = (2 (e_i << out_frac) + sum) // (2 sum) for e_i >= 0, saturated to +-limit. Returns False, out
    unfinished, on a row whose t leaves the table's range below (only values past 16 bits can do that)."""
    rows, n = x.shape
    last = table.shape[0] - 1
    for r in range(rows):
        row, target = x[r], out[r]
        top = row[0]
        for i in range(n):
            top = row[i] if row[i] > top else top
        total = np.int64(0)
        for i in range(n):
            t = top - row[i]
            if t < 0:
                return False
            e = 0 if masked and row[i] <= -limit and row[i] < top else table[min(t, last)]
            target[i] = e
            total += e
        for i in range(n):
            y = _floor_divide(2 * (target[i] << out_frac) + total, 2 * total)
            target[i] = min(max(y, -limit), limit)
    return True
