"""Compiled loops over windows: 2-D im2col, depthwise convolution with its epilogue, and 2-D max and average
pooling (the package docstring says why their bits are those of the numpy forms)."""

import numpy as np

from verifier.kernels.loops._compile import compiled, inlined
from verifier.kernels.loops.rows import (FLOAT64_EXACT, _floor_divide, _requantized, _rounded,  # noqa: F401
                                         _rounding)  # (inlined when compiled)

_at = np.uint64  # an unsigned index: numba then skips the wrap-around of negative ones


@compiled
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


@compiled
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


@compiled
def depthwise_fused(x, weights, kernel, strides, dilations, pads, correct, threshold, low, high, magic, inverse,
                    out):  # pragma: no cover - compiled
    """A 2-D depthwise convolution with its epilogue fused in float64: weights (C * multiplier, KH * KW + 1) hold
    twice the (KH, KW) filters, taps row-major, and then 2 * bias + 1/2 (epilogue.Requantize.doubled), so each output is
    y = 2 (acc + bias) + 1/2, every partial sum a multiple of 1/2 below 2**52 (the caller checks
    Requantize.fusable: then exact in any order), finished by the doubled rounding (_rounded) into out
    (N, C * multiplier, OH, OW). x: int64 (N, C, H, W).

    Per input channel, the zero-padded plane is split by stride phase (rows and columns) and each phase laid
    flat, WQ values a row: tap (i, j) reads phase ((i DH) % SH, (j DW) % SW) at offset ((i DH) // SH) WQ +
    (j DW) // SW from every output's flat index oh WQ + ow, so each tap is one long pass over the plane that
    LLVM vectorizes (short passes per output row cost more in loop overhead than in arithmetic). The
    columns ow >= OW of that layout are computed and dropped."""
    N, C, H, W = x.shape
    O = weights.shape[0]
    KH, KW = kernel
    OH, OW = out.shape[2], out.shape[3]
    SH, SW = strides
    DH, DW = dilations
    PH, PW = pads
    multiplier = O // C
    HQ = OH + ((KH - 1) * DH) // SH + 1  # (a spare row: the last rows' reads run past their phase row)
    WQ = OW + ((KW - 1) * DW) // SW
    L = OH * WQ
    phases = np.zeros((SH, SW, HQ * WQ), dtype=np.float64)  # (the padding stays 0: every plane fills the same cells)
    acc = np.empty(L, dtype=np.float64)
    for n in range(N):
        for c in range(C):
            plane = x[n, c]
            for h in range(H):
                rp, rq = (h + PH) % SH, (h + PH) // SH
                if rq >= HQ:
                    continue
                line = plane[h]
                for cp in range(SW):
                    target = phases[rp, cp]
                    base = rq * WQ
                    first = max(0, (PW - cp + SW - 1) // SW)  # the first cq whose column cq SW + cp - PW >= 0
                    stop = min(WQ, (W - 1 + PW - cp) // SW + 1)
                    if SW == 1:  # (constant strides: reads the compiler vectorizes)
                        for cq in range(first, stop):
                            target[_at(base + cq)] = line[_at(cq - PW)]
                    elif SW == 2:
                        for cq in range(first, stop):
                            target[_at(base + cq)] = line[_at(2 * cq + cp - PW)]
                    else:
                        for cq in range(first, stop):
                            target[_at(base + cq)] = line[_at(cq * SW + cp - PW)]
            for q in range(multiplier):
                o = c * multiplier + q
                filters = weights[o]
                bias = filters[KH * KW]
                for t in range(L):
                    acc[_at(t)] = bias
                for i in range(KH):
                    above = ((i * DH) // SH) * WQ
                    if KW == 3:  # a row of three taps in one pass: a third of the loads and stores of acc
                        w0, w1, w2 = filters[3 * i], filters[3 * i + 1], filters[3 * i + 2]
                        s0 = phases[(i * DH) % SH, 0]
                        s1 = phases[(i * DH) % SH, DW % SW]
                        s2 = phases[(i * DH) % SH, (2 * DW) % SW]
                        h0, h1, h2 = above, above + DW // SW, above + (2 * DW) // SW
                        for t in range(L):
                            acc[_at(t)] += w0 * s0[_at(t + h0)] + w1 * s1[_at(t + h1)] + w2 * s2[_at(t + h2)]
                        continue
                    for j in range(KW):
                        tap = filters[i * KW + j]
                        source = phases[(i * DH) % SH, (j * DW) % SW]
                        shift = above + (j * DW) // SW
                        for t in range(L):
                            acc[_at(t)] += tap * source[_at(t + shift)]
                for oh in range(OH):
                    row, base = out[n, o, oh], oh * WQ
                    for ow in range(OW):
                        row[_at(ow)] = _rounded(acc[_at(base + ow)], correct, threshold, low, high, magic, inverse)


@compiled
def max_pool(x, H, W, kernel, strides, dilations, pads, out_shape, row, out):  # pragma: no cover - compiled
    """A 2-D max pool whose every window holds an input position (pooling.max_pool checks it): the max over the
    window's taps inside x, which is what a max over the padded input gives, since padding never wins. Per output
    row, the rows of its window are reduced into `row` (contiguous passes: one for three rows inside x, three
    loads a column; 3x3 stride-2 pools 1.1-1.25x faster), then each output takes the max of its columns there.
    x: flat int64 (or float64: pooling.max_pool_floats), planes of (H, W); row: x's type, of pads[1] + W + the
    columns windows reach past the end, its padding columns set to INT64_MIN (-inf); out: flat, x's type, planes
    of out_shape.
    Indices are unsigned (_at): numba wraps negative indices around otherwise, which keeps LLVM from
    vectorizing the passes (about 3x slower)."""
    KH, KW = kernel
    SH, SW = strides
    DH, DW = dilations
    OH, OW = out_shape
    if (kernel == (2, 2) and strides == (2, 2) and dilations == (1, 1) and pads == (0, 0)
            and 2 * OH <= H and 2 * OW <= W):
        _max_pool_2x2(x, H, W, OH, OW, out)
        return
    left = pads[1]
    for p in range(x.shape[0] // (H * W)):
        for oh in range(OH):
            top = oh * SH - pads[0]
            first = True
            if KH == 3 and 0 <= top and top + 2 * DH < H:  # (three rows inside x: one pass, three loads a column)
                first = False
                line0 = (p * H + top) * W
                line1, line2 = line0 + DH * W, line0 + 2 * DH * W
                for w in range(W):
                    row[_at(left + w)] = max(max(x[_at(line0 + w)], x[_at(line1 + w)]), x[_at(line2 + w)])
            for i in range(KH if first else 0):
                h = top + i * DH
                if 0 <= h < H:
                    line = (p * H + h) * W
                    if first:
                        for w in range(W):
                            row[_at(left + w)] = x[_at(line + w)]
                        first = False
                    else:
                        for w in range(W):
                            row[_at(left + w)] = max(row[_at(left + w)], x[_at(line + w)])
            start = (p * OH + oh) * OW
            if DW == 1 and KW == 2 and SW == 2:  # (constant offsets: the compiler vectorizes these)
                for ow in range(OW):
                    out[_at(start + ow)] = max(row[_at(2 * ow)], row[_at(2 * ow + 1)])
            elif DW == 1 and KW == 3 and SW == 2:
                for ow in range(OW):
                    out[_at(start + ow)] = max(max(row[_at(2 * ow)], row[_at(2 * ow + 1)]), row[_at(2 * ow + 2)])
            elif DW == 1 and KW == 3 and SW == 1:
                for ow in range(OW):
                    out[_at(start + ow)] = max(max(row[_at(ow)], row[_at(ow + 1)]), row[_at(ow + 2)])
            else:
                for ow in range(OW):
                    out[_at(start + ow)] = row[_at(SW * ow)]
                for j in range(1, KW):
                    for ow in range(OW):
                        out[_at(start + ow)] = max(out[_at(start + ow)], row[_at(SW * ow + j * DW)])


@inlined
def _max_pool_2x2(x, H, W, OH, OW, out):  # pragma: no cover - compiled
    """The commonest pool, 2x2 at stride 2 with every window inside x, straight from its two input rows: no row
    buffer, whose passes cost more than the maxima on small planes (digits_cnn's 8x8: 0.21 ms against 0.09)."""
    for p in range(x.shape[0] // (H * W)):
        for oh in range(OH):
            top = (p * H + 2 * oh) * W
            below = top + W
            start = (p * OH + oh) * OW
            for ow in range(OW):
                upper = max(x[_at(top + 2 * ow)], x[_at(top + 2 * ow + 1)])
                out[_at(start + ow)] = max(upper, max(x[_at(below + 2 * ow)], x[_at(below + 2 * ow + 1)]))

@compiled
def avg_pool(x, H, W, kernel, strides, dilations, pads, out_shape, counts, row, out):  # pragma: no cover - compiled
    """A 2-D average pool: each window's int64 sum (the taps inside x; padding adds 0), divided by its count
    counts[oh, ow] > 0 with fixedpoint.rounding_divide's rule, sign(s) * ((2 |s| + c) // (2 c)). Per output row, the
    rows of its window are summed into `row` (a contiguous pass), then each output adds its columns there, and the
    row of sums is divided in place: in float64 (_floor_divide's argument, in a loop the compiler vectorizes) when
    the row buffer's values bound every numerator below 2**53, else by int64 division. x: flat int64, planes of
    (H, W); row: int64 of pads[1] + W + the columns windows reach past the end, its padding columns 0; out: flat
    int64, planes of out_shape. (int64 sums wrap as numpy's do: the same integers in any order.)"""
    KH, KW = kernel
    SH, SW = strides
    DH, DW = dilations
    OH, OW = out_shape
    left = pads[1]
    largest_count = 0
    for oh in range(OH):
        for ow in range(OW):
            largest_count = max(largest_count, counts[_at(oh), _at(ow)])
    for p in range(x.shape[0] // (H * W)):
        for oh in range(OH):
            top = oh * SH - pads[0]
            for w in range(W):
                row[_at(left + w)] = 0
            for i in range(KH):
                h = top + i * DH
                if 0 <= h < H:
                    line = (p * H + h) * W
                    for w in range(W):
                        row[_at(left + w)] += x[_at(line + w)]
            start = (p * OH + oh) * OW
            if DW == 1 and KW == 3 and SW == 1:  # (constant offsets: the compiler vectorizes these)
                for ow in range(OW):
                    out[_at(start + ow)] = row[_at(ow)] + row[_at(ow + 1)] + row[_at(ow + 2)]
            elif DW == 1 and KW == 3 and SW == 2:
                for ow in range(OW):
                    out[_at(start + ow)] = row[_at(2 * ow)] + row[_at(2 * ow + 1)] + row[_at(2 * ow + 2)]
            elif DW == 1 and KW == 2 and SW == 2:
                for ow in range(OW):
                    out[_at(start + ow)] = row[_at(2 * ow)] + row[_at(2 * ow + 1)]
            else:
                for ow in range(OW):
                    total = row[_at(SW * ow)]
                    for j in range(1, KW):
                        total += row[_at(SW * ow + j * DW)]
                    out[_at(start + ow)] = total
            largest = 0  # (INT64_MIN has no magnitude: it keeps the row on int64 division)
            for w in range(row.shape[0]):
                value = row[_at(w)]
                largest = max(largest, value if value >= 0 else (-value if value > -FLOAT64_EXACT else FLOAT64_EXACT))
            if largest < (FLOAT64_EXACT >> 2) // KW and largest_count < (FLOAT64_EXACT >> 2):  # 2 |sum| + c < 2**53
                for ow in range(OW):
                    total, c = out[_at(start + ow)], counts[_at(oh), _at(ow)]
                    magnitude = np.int64(np.float64(2 * (-total if total < 0 else total) + c) / np.float64(2 * c))
                    out[_at(start + ow)] = -magnitude if total < 0 else magnitude
            else:
                for ow in range(OW):
                    total, c = out[_at(start + ow)], counts[_at(oh), _at(ow)]
                    magnitude = _floor_divide(2 * (-total if total < 0 else total) + c, 2 * c)
                    out[_at(start + ow)] = -magnitude if total < 0 else magnitude
