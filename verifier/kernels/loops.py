"""Compiled loops (numba) for the passes numpy would make one at a time: each reads its input once and
writes its output once, where the same arithmetic in numpy costs a pass over memory per step.

Every loop computes exactly what the numpy form it replaces computes, in the same operations:
  - integers: int64 additions, shifts and comparisons, which no compiler may change;
  - floats: additions, comparisons, min / max and power-of-two scalings of exact values, each one IEEE
    operation, compiled without fast-math (numba's default), so LLVM may neither reassociate nor fuse
    them into FMAs; the results are the bits of the proofs in epilogue.py whatever the CPU or its SIMD width.
tests/verifier/test_loops.py checks each against its plain-Python body (NUMBA_DISABLE_JIT=1: no compiler)
and against the numpy form; the kernels' and ops' fast == reference tests cover them too.

Arrays arrive in a fixed rank (the callers' wrappers add unit axes) and any strides; compiled code is
cached next to this file (numba's cache), so a process pays the compilation once per machine. numba itself
(and LLVM, about 150 MiB of memory) is imported on the first call of a loop, so processes that never run a
program - the CLI, the gateway, the SDK - never load it.
"""

import numpy as np

_INLINED: list[str] = []  # helpers the loops call, made numba functions (inlined) when the first loop compiles


def _compiled(function):
    """`function` compiled by numba on its first call (nogil, cached on disk); plain Python until then."""
    dispatcher = None

    def call(*args):
        nonlocal dispatcher
        if dispatcher is None:
            from numba import njit

            namespace = globals()
            for name in _INLINED:
                if not hasattr(namespace[name], "py_func"):
                    namespace[name] = njit(inline="always")(namespace[name])
            dispatcher = njit(nogil=True, cache=True)(function)
        return dispatcher(*args)

    call.__name__, call.__doc__, call.py_func = function.__name__, function.__doc__, function
    return call


def _inlined(function):
    _INLINED.append(function.__name__)
    return function


@_compiled
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


@_inlined
def _rounded(v, correct, threshold, lo, hi, magic, inverse):  # pragma: no cover - compiled
    if correct and v <= threshold:
        v -= 1.0
    v = min(max(v, lo), hi)
    return np.int64(((v + magic) - magic) * inverse)


@_inlined
def _requantized(t, rounding, low, high):  # pragma: no cover - compiled
    """fixedpoint.requantize of one int64 t, clipped to [low, high]: with rounding = (shift, half, correct)
    from _rounding, t rounded half away from zero by 2**shift as (t + half - [t < 0]) >> shift
    (fixedpoint.round_shift's identity), the sign correction only when `correct`."""
    shift, half, correct = rounding
    return min(max((t + half - (correct and t < 0)) >> shift, low), high)


@_inlined
def _rounding(shift, correct):  # pragma: no cover - compiled
    """_requantized's (shift, half, correct) for a shift of 0..62, taken once per loop: half = 2**(shift-1)
    and the sign correction as asked (skipped for a fused Relu, where low = 0 clips whatever it changes); at
    shift 0, t itself (half 0, no correction)."""
    if shift == 0:
        return shift, np.int64(0), False
    return shift, np.int64(1) << (shift - 1), correct


@_compiled
def value_range(x):  # pragma: no cover - compiled
    """(min, max) of a flat int64 array in one pass (numpy's x.min() and x.max() make two);
    (INT64_MAX, INT64_MIN) when empty."""
    low, high = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    for i in range(x.shape[0]):
        v = x[i]
        low = v if v < low else low  # (a select: min() here would not vectorize)
        high = v if v > high else high
    return low, high


@_compiled
def narrow(x, shift, limit, out):  # pragma: no cover - compiled
    """out = fixedpoint.requantize(x, shift, 0, bits) for shift in 0..62, limit = qmax(bits) (_requantized);
    returns (min, max) of x, taken in the same pass. x, out: flat int64.
    (Values whose rounding would wrap int64 give garbage here; callers refuse them by the range returned.)"""
    low, high = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    rounding = _rounding(shift, True)
    for i in range(x.shape[0]):
        v = x[i]
        low = v if v < low else low
        high = v if v > high else high
        out[i] = _requantized(v, rounding, -limit, limit)
    return low, high


@_compiled
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


@_compiled
def multiply_requantize(a, b, shift, limit, out):  # pragma: no cover - compiled
    """out = clip(round_shift(a * b, shift), -limit, limit): ops/_binary.py's product (int64, wrapping alike)
    rounded by 2**shift (0..62) and clipped by _requantized, in one pass. a, out: int64 (R, M); b: (R or 1, M or 1)."""
    rounding = _rounding(shift, True)
    rows, m = a.shape
    for r in range(rows):
        row, others, target = a[r], b[r if b.shape[0] > 1 else 0], out[r]
        for i in range(m):
            target[i] = _requantized(row[i] * others[i if b.shape[1] > 1 else 0], rounding, -limit, limit)


@_compiled
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


@_compiled
def im2col(x, kernel, strides, dilations, pads, out_shape, cols):  # pragma: no cover - compiled
    """The columns of a 2-D convolution: cols[g, (c * KH + i) * KW + j, (n * OH + oh) * OW + ow] =
    x[n, g * Cg + c, oh * SH + i * DH - PH, ow * SW + j * DW - PW], 0 where that lies in the padding,
    converted to cols' float type (exact: the caller's bound proves it). x: int64 (N, C, H, W); cols:
    (group, Cg * KH * KW + extra, N * OH * OW), its first Cg * KH * KW rows written. Strides 1 and 2 read
    with a constant stride, which the compiler vectorizes (convolution.SMALL_COLUMNS says when this loop runs)."""
    N, C, H, W = x.shape
    KH, KW = kernel
    OH, OW = out_shape
    group = cols.shape[0]
    Cg = C // group
    for g in range(group):
        for c in range(Cg):
            for i in range(KH):
                for j in range(KW):
                    row = (c * KH + i) * KW + j
                    left = j * dilations[1] - pads[1]  # w = ow * SW + left
                    for n in range(N):
                        for oh in range(OH):
                            h = oh * strides[0] + i * dilations[0] - pads[0]
                            start = (n * OH + oh) * OW
                            if strides[1] == 1:  # (a unit-stride read the compiler can vectorize)
                                for ow in range(OW):
                                    inside = 0 <= h < H and 0 <= ow + left < W
                                    cols[g, row, start + ow] = x[n, g * Cg + c, h, ow + left] if inside else 0
                            elif strides[1] == 2:  # (a constant stride: interleaved loads)
                                for ow in range(OW):
                                    inside = 0 <= h < H and 0 <= 2 * ow + left < W
                                    cols[g, row, start + ow] = x[n, g * Cg + c, h, 2 * ow + left] if inside else 0
                            else:
                                for ow in range(OW):
                                    w = ow * strides[1] + left
                                    inside = 0 <= h < H and 0 <= w < W
                                    cols[g, row, start + ow] = x[n, g * Cg + c, h, w] if inside else 0


@_compiled
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


@_inlined
def _bit_length(v):  # pragma: no cover - compiled
    length = 0
    while v > 0:
        v >>= 1
        length += 1
    return length


@_inlined
def _sqrt_round(v):  # pragma: no cover - compiled
    """nonlinear.roots.sqrt_round of one v > 0: Newton from 2**ceil(bitlen / 2) while it decreases (at most
    NEWTON_MAX_STEPS = 64 steps), then + [v - r * r > r]."""
    r = np.int64(1) << ((_bit_length(v) + 1) >> 1)
    for _ in range(64):
        following = (r + v // r) >> 1
        if following >= r:
            break
        r = following
    return r + (v - r * r > r)


@_compiled
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
            y = (2 * (target[i] << out_frac) + total) // (2 * total)
            target[i] = min(max(y, -limit), limit)
    return True


@_compiled
def depthwise(x, w, bias, strides, dilations, pads, shift, low, high, correct, out):  # pragma: no cover
    """A 2-D depthwise convolution (one input channel per group, `multiplier` outputs each) with its
    epilogue, in int64: acc = sum over taps of w[o, i, j] * x[n, o // multiplier, h, w] (0 in the padding;
    exact while |acc| + |bias| < 2**62: Requantize.fits_int64), then _requantized(acc + bias[o], shift) into
    [low, high] (shift 1..62; the correction skipped when not `correct`: a fused Relu, low = 0). x: (N, C, H, W); w: (C * multiplier, KH, KW); bias: (C * multiplier,);
    out: (N, C * multiplier, OH, OW). No floats: the same integers as the int64 reference convolution."""
    N, C, H, W = x.shape
    O, KH, KW = w.shape
    OH, OW = out.shape[2], out.shape[3]
    multiplier = O // C
    rounding = _rounding(shift, correct)
    acc = np.empty(OW, dtype=np.int64)
    for n in range(N):
        for o in range(O):
            plane = x[n, o // multiplier]
            for oh in range(OH):
                acc[:] = bias[o]
                for i in range(KH):
                    h = oh * strides[0] + i * dilations[0] - pads[0]
                    if h < 0 or h >= H:
                        continue
                    line = plane[h]
                    for j in range(KW):
                        tap = w[o, i, j]
                        left = j * dilations[1] - pads[1]
                        for ow in range(OW):
                            v = ow * strides[1] + left
                            acc[ow] += tap * (line[v] if 0 <= v < W else 0)
                target = out[n, o, oh]
                for ow in range(OW):
                    target[ow] = _requantized(acc[ow], rounding, low, high)


@_compiled
def winograd_input(x, pad_top, pad_left, top, V):  # pragma: no cover - compiled
    """Winograd F(2x2, 3x3)'s input transform, V[a, b, n, c, r, t] = (B^T d B)[a, b] for the 4x4 tile d of
    x at padded rows 2 (top + r) .. + 3 and columns 2 t .. + 3 (0 outside x), with B^T = [[1, 0, -1, 0],
    [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]: integer sums of at most 4 values, exact in V's float type.
    x: int64 (N, C, H, W); V: (4, 4, N, depth, rows, TW), its first C channels written."""
    N, C, H, W = x.shape
    rows, TW = V.shape[4], V.shape[5]
    e = np.zeros((4, 4, TW), dtype=np.int64)  # d B for the tile row's 4 input rows, every tile
    for n in range(N):
        for c in range(C):
            plane = x[n, c]
            for r in range(rows):
                for i in range(4):
                    h = 2 * (top + r) + i - pad_top
                    inside = 0 <= h < H
                    line = plane[h if inside else 0]
                    for t in range(TW):
                        w = 2 * t - pad_left
                        d0 = line[w] if inside and 0 <= w < W else 0
                        d1 = line[w + 1] if inside and 0 <= w + 1 < W else 0
                        d2 = line[w + 2] if inside and 0 <= w + 2 < W else 0
                        d3 = line[w + 3] if inside and 0 <= w + 3 < W else 0
                        e[i, 0, t], e[i, 1, t], e[i, 2, t], e[i, 3, t] = d0 - d2, d1 + d2, d2 - d1, d1 - d3
                for b in range(4):
                    for t in range(TW):
                        e0, e1, e2, e3 = e[0, b, t], e[1, b, t], e[2, b, t], e[3, b, t]
                        V[0, b, n, c, r, t] = e0 - e2
                        V[1, b, n, c, r, t] = e1 + e2
                        V[2, b, n, c, r, t] = e2 - e1
                        V[3, b, n, c, r, t] = e1 - e3


@_compiled
def winograd_output(M, fused, correct, threshold, lo, hi, magic, unit, top, out):  # pragma: no cover
    """Winograd F(2x2, 3x3)'s output transform, A^T m A per tile with A^T = [[1, 1, 1, 0], [0, 1, -1, -1]],
    in M's type (float64 sums of exact values below 2**53, or int64: exact in any order), written to
    out[n, o, 2 (top + r) + i, 2 t + j] within out's bounds: rounded by the epilogue (finish's doubled form,
    float64 only) when `fused`, else divided by 4 (exact: A^T m A is 4 times the convolution). M: float64 or
    int64 (4, 4, N, OC, rows, TW); out: int64 (N, OC, OH, OW)."""
    N, OC, rows, TW = M.shape[2], M.shape[3], M.shape[4], M.shape[5]
    OH, OW = out.shape[2], out.shape[3]
    inverse = 1.0 / unit
    for n in range(N):
        for o in range(OC):
            for r in range(rows):
                for i in range(2):
                    row = 2 * (top + r) + i
                    if row >= OH:
                        continue
                    target = out[n, o, row]
                    for t in range(TW):
                        s0 = _transform_row(M[0, 0, n, o, r, t], M[1, 0, n, o, r, t], M[2, 0, n, o, r, t],
                                            M[3, 0, n, o, r, t], i)
                        s1 = _transform_row(M[0, 1, n, o, r, t], M[1, 1, n, o, r, t], M[2, 1, n, o, r, t],
                                            M[3, 1, n, o, r, t], i)
                        s2 = _transform_row(M[0, 2, n, o, r, t], M[1, 2, n, o, r, t], M[2, 2, n, o, r, t],
                                            M[3, 2, n, o, r, t], i)
                        s3 = _transform_row(M[0, 3, n, o, r, t], M[1, 3, n, o, r, t], M[2, 3, n, o, r, t],
                                            M[3, 3, n, o, r, t], i)
                        for j in range(2):
                            if 2 * t + j < OW:
                                y = _transform_row(s0, s1, s2, s3, j)
                                target[2 * t + j] = (_rounded(np.float64(y), correct, threshold, lo, hi, magic, inverse)
                                                     if fused else np.int64(y) >> 2)


@_inlined
def _transform_row(m0, m1, m2, m3, i):  # pragma: no cover - compiled
    """Row i of A^T applied to (m0, m1, m2, m3): m0 + m1 + m2, or m1 - m2 - m3."""
    return m0 + m1 + m2 if i == 0 else m1 - m2 - m3
