"""Compiled loops of the Winograd convolutions (kernels/winograd.py): the input transforms, which gather each
tile of the input and apply B^T . B, and the output transforms, which apply A^T . A to the tiles' products and
finish them into int64 activations. Integer sums, exact in the float types they are written in (winograd.py
proves the bounds), and int64 where they would not be.

F(2x2, 3x3) reads 4x4 tiles two apart; F(4x4, 3x3) reads 6x6 tiles four apart and transforms its products in
int64, dividing by 576 (24 * 24: the integer filter transform's scale) before the epilogue's integer rounding."""

import numpy as np

from verifier.kernels.loops._compile import compiled, inlined
from verifier.kernels.loops.rows import _requantized, _rounded, _rounding  # noqa: F401 (inlined when compiled)

_at = np.uint64  # an unsigned index: numba then skips the wrap-around of negative ones (vectorizes)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


@compiled
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


@compiled
def winograd_output(M, fused, correct, threshold, lo, hi, magic, unit, top, out):  # pragma: no cover
    """Winograd F(2x2, 3x3)'s output transform, A^T m A per tile with A^T = [[1, 1, 1, 0], [0, 1, -1, -1]],
    in M's type (float64 sums of exact values below 2**53, or int64: exact in any order), written to
    out[n, o, 2 (top + r) + i, 2 t + j] within out's bounds: rounded by the epilogue (finish's doubled form,
    float64 only) when `fused`, else divided by 4 (exact: A^T m A is 4 times the convolution). M: float64 or
    int64 (4, 4, N, OC, rows, TW); out: int64 or int16 (N, OC, OH, OW). Each output row is made in a line of int64
    first and then copied: stores two columns apart into int16 do not vectorize (an int16 out took 1.3 times an int64
    one's time; through the line, 0.85: scratch timing of loops.winograd_output, 64 channels of 28 x 28 tiles)."""
    N, OC, rows, TW = M.shape[2], M.shape[3], M.shape[4], M.shape[5]
    OH, OW = out.shape[2], out.shape[3]
    inverse = 1.0 / unit
    line = np.empty(2 * TW, dtype=np.int64)
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
                            y = _transform_row(s0, s1, s2, s3, j)
                            line[2 * t + j] = (_rounded(np.float64(y), correct, threshold, lo, hi, magic, inverse)
                                               if fused else np.int64(y) >> 2)
                    for w in range(OW):
                        target[w] = line[w]


@inlined
def _transform_row(m0, m1, m2, m3, i):  # pragma: no cover - compiled
    """Row i of A^T applied to (m0, m1, m2, m3): m0 + m1 + m2, or m1 - m2 - m3."""
    return m0 + m1 + m2 if i == 0 else m1 - m2 - m3


@compiled
def winograd4_input(x, pad_top, pad_left, top, line, V):  # pragma: no cover - compiled
    """Winograd F(4x4, 3x3)'s input transform, V[a, b, n, c, r, t] = (B^T d B)[a, b] for the 6x6 tile d of x at
    padded rows 4 (top + r) .. + 5 and columns 4 t .. + 5 (0 outside x), with
        B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]:
    integer sums below 100 max|x| in magnitude, exact in float64. Each input row is first laid out padded in
    `line` (float64, at least 4 TW + 2 long), so that the tiles read it with no bounds checks.
    x: int64 (N, C, H, W); V: float64 (6, 6, N, C, rows, TW)."""
    N, C, H, W = x.shape
    rows, TW = V.shape[4], V.shape[5]
    e = np.empty((6, 6, TW), dtype=np.float64)  # d B for the tile row's 6 input rows, every tile
    width = 4 * TW + 2
    for n in range(N):
        for c in range(C):
            plane = x[n, c]
            for r in range(rows):
                for i in range(6):
                    h = 4 * (top + r) + i - pad_top
                    inside = 0 <= h < H
                    for u in range(width):
                        w = u - pad_left
                        line[_at(u)] = plane[h, w] if inside and 0 <= w < W else 0.0
                    row = e[i]
                    for t in range(TW):
                        u, column = 4 * t, _at(t)
                        d0, d1, d2 = line[_at(u)], line[_at(u + 1)], line[_at(u + 2)]
                        d3, d4, d5 = line[_at(u + 3)], line[_at(u + 4)], line[_at(u + 5)]
                        row[0, column], row[1, column], row[2, column] = _b_rows_0_2(d0, d1, d2, d3, d4)
                        row[3, column], row[4, column], row[5, column] = _b_rows_3_5(d1, d2, d3, d4, d5)
                for b in range(6):
                    for t in range(TW):
                        e0, e1, e2 = e[0, _at(b), _at(t)], e[1, _at(b), _at(t)], e[2, _at(b), _at(t)]
                        e3, e4, e5 = e[3, _at(b), _at(t)], e[4, _at(b), _at(t)], e[5, _at(b), _at(t)]
                        V[0, b, n, c, r, t], V[1, b, n, c, r, t], V[2, b, n, c, r, t] = _b_rows_0_2(e0, e1, e2, e3, e4)
                        V[3, b, n, c, r, t], V[4, b, n, c, r, t], V[5, b, n, c, r, t] = _b_rows_3_5(e1, e2, e3, e4, e5)


@inlined
def _b_rows_0_2(d0, d1, d2, d3, d4):  # pragma: no cover - compiled
    """Rows 0-2 of B^T applied to a tile's line d (d5 is not read)."""
    return 4.0 * d0 - 5.0 * d2 + d4, d3 + d4 - 4.0 * (d1 + d2), 4.0 * (d1 - d2) + d4 - d3


@inlined
def _b_rows_3_5(d1, d2, d3, d4, d5):  # pragma: no cover - compiled
    """Rows 3-5 of B^T applied to a tile's line d (d0 is not read)."""
    return 2.0 * (d3 - d1) + d4 - d2, 2.0 * (d1 - d3) + d4 - d2, 4.0 * d1 - 5.0 * d3 + d5


@compiled
def winograd4_output(M, TW, bias, shift, low, high, correct, top, out):  # pragma: no cover - compiled
    """Winograd F(4x4, 3x3)'s output transform and epilogue: per tile, s = A m A^T with
        A = [[6, 4, 4, 1, 1, 0], [0, 4, -4, 2, -2, 0], [0, 4, 4, 4, 4, 0], [0, 4, -4, 8, -8, 24]]
    in int64 (m's float64 values are exact integers; the sums stay below 2**63), which is 576 times the
    convolution y (_over_576 divides it); then out[n, o, 4 (top + r) + i, 4 t + j] = _requantized(y + bias[o]) by
    2**shift, clipped to [low, high] (_finished; shift 0 with the int64 limits: the accumulator itself), within out's
    bounds.
    A m runs along each (n, o)'s contiguous run of tiles in M (vectorized), then each output row of tiles is
    finished and written four columns a tile. M: float64 (6, 6, N, OC, rows * TW); bias: int64 (OC,); out: int64
    (N, OC, OH, OW)."""
    N, OC, tiles = M.shape[2], M.shape[3], M.shape[4]
    OH, OW = out.shape[2], out.shape[3]
    rounding = _rounding(shift, correct)
    whole = OW // 4  # tiles whose four columns all lie in out
    f = np.empty((4, 6, tiles), dtype=np.int64)  # A m: each tile's four output rows, per column of m
    for n in range(N):
        for o in range(OC):
            offset = bias[o]
            for b in range(6):
                for q in range(tiles):
                    m0, m1 = np.int64(M[0, b, n, o, q]), np.int64(M[1, b, n, o, q])
                    m2, m3 = np.int64(M[2, b, n, o, q]), np.int64(M[3, b, n, o, q])
                    m4, m5 = np.int64(M[4, b, n, o, q]), np.int64(M[5, b, n, o, q])
                    f[0, _at(b), _at(q)], f[1, _at(b), _at(q)], f[2, _at(b), _at(q)], f[3, _at(b), _at(q)] = \
                        _a_rows(m0, m1, m2, m3, m4, m5)
            for r in range(tiles // TW):
                for i in range(4):
                    h = 4 * (top + r) + i
                    if h >= OH:
                        continue
                    target = out[n, o, h]
                    for t in range(TW):
                        q = r * TW + t
                        s0, s1, s2, s3 = _a_rows(f[_at(i), 0, _at(q)], f[_at(i), 1, _at(q)], f[_at(i), 2, _at(q)],
                                                 f[_at(i), 3, _at(q)], f[_at(i), 4, _at(q)], f[_at(i), 5, _at(q)])
                        y0 = _finished(_over_576(s0) + offset, rounding, low, high)
                        y1 = _finished(_over_576(s1) + offset, rounding, low, high)
                        y2 = _finished(_over_576(s2) + offset, rounding, low, high)
                        y3 = _finished(_over_576(s3) + offset, rounding, low, high)
                        w = 4 * t
                        if t < whole:
                            target[_at(w)], target[_at(w + 1)], target[_at(w + 2)], target[_at(w + 3)] = y0, y1, y2, y3
                        else:  # (the last tile of a row that out's width cuts)
                            for j, y in enumerate((y0, y1, y2, y3)):
                                if w + j < OW:
                                    target[_at(w + j)] = y


@inlined
def _finished(t, rounding, low, high):  # pragma: no cover - compiled
    """_requantized(t, rounding, low, high), its clip without branches: this loop runs per value, not vectorized,
    and a branch on a Relu's output (half of it clipped to 0) mispredicts (3.2x slower at 128 channels on 27x27).
    The masks are exact while v - low and high - v fit in int64: |t| < 2**62 (Requantize.fits_int64) and 16-bit
    limits; shift 0 (no epilogue: the int64 limits) is t itself."""
    if rounding[0] == 0:
        return t
    v = _requantized(t, rounding, INT64_MIN, INT64_MAX)  # (the rounding alone: a clip that never clips)
    below = v - low
    v = low + (below & ~(below >> 63))  # max(v, low)
    above = high - v
    return high - (above & ~(above >> 63))  # min(v, high)


@inlined
def _a_rows(m0, m1, m2, m3, m4, m5):  # pragma: no cover - compiled
    """A applied to (m0, ..., m5): its four rows' sums, in m's type."""
    return (6 * m0 + 4 * (m1 + m2) + m3 + m4, 4 * (m1 - m2) + 2 * (m3 - m4), 4 * (m1 + m2 + m3 + m4),
            4 * (m1 - m2) + 8 * (m3 - m4) + 24 * m5)


ROUNDING_MAGIC = 1.5 * 2.0 ** 52  # v + this - this rounds v (|v| < 2**51) to the nearest integer


@inlined
def _over_576(s):  # pragma: no cover - compiled
    """y = s / 576 for s = 576 y with |s| < 2**53, without a division (several times slower): s is exact in float64,
    and s * fl(1/576) = y (1 + e1)(1 + e2), |e1|, |e2| <= 2**-53, lies within |y| 2**-52 < 1/2 of y (|y| < 2**44),
    so rounding it to the nearest integer (one float addition of ROUNDING_MAGIC, then its subtraction, both exact
    there) gives y."""
    return np.int64((np.float64(s) * (1.0 / 576.0) + ROUNDING_MAGIC) - ROUNDING_MAGIC)
