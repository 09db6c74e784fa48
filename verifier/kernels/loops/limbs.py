"""Compiled loops of the 8-bit limb products (kernels/limbs.py): an operand split into limbs of `bits` bits (7 or
8), as a GEMM's rows or as a 2-D convolution's (channels-last planes, then one row of taps per output position), and
the limb products' int32 results combined into the exact int64 accumulator and its epilogue. Integers only:
shifts, masks, additions.

Limb l of u >= 0 is (u >> bits l) & (2**bits - 1), the last one u >> bits (L - 1) unmasked (the caller picks the count
L and the offset so that u = x + offset >= 0 and the last limb fits in `bits`). Rows are laid out (position, limb,
K): the L limb rows of a position are adjacent, so the rows of a band of positions are one contiguous block."""

import numpy as np

from verifier.kernels.loops._compile import compiled, inlined
from verifier.kernels.loops.rows import _requantized, _rounding  # noqa: F401 (inlined when compiled)

_at = np.uint64  # an unsigned index: numba then skips the wrap-around of negative ones (vectorizes)
COMBINE_CHANNELS = 256  # channels combined at a time for a block of 8 positions: 16 KiB of int64, within L1


@compiled
def limb_rows(x, offset, bits, out):  # pragma: no cover - compiled
    """out[m, l, k] = limb l of x[m, k] + offset. x: int64 (M, K), any strides; out: uint8 (M, L, K)."""
    M, L, K = out.shape
    for m in range(M):
        row = x[m]
        for l in range(L):
            target, shift, mask = out[m, l], bits * l, (((1 << bits) - 1) if l < L - 1 else -1)
            for k in range(K):
                target[_at(k)] = ((row[_at(k)] + offset) >> shift) & mask


@compiled
def limb_channels(x, offset, bits, out):  # pragma: no cover - compiled
    """x's limbs channels first: out[n, l, c, h, w] = limb l of x[n, c, h, w] + offset, in one pass over x (its
    positions vectorized), every limb written as it goes. x: int64 (N, C, H, W), any strides; out: uint8
    (N, L, C, H, W), L from 1 to 3."""
    N, C, H, W = x.shape
    L = out.shape[1]
    mask = (1 << bits) - 1
    for n in range(N):
        for c in range(C):
            for h in range(H):
                line, low = x[n, c, h], out[n, 0, c, h]
                if L == 1:
                    for w in range(W):
                        low[_at(w)] = line[_at(w)] + offset
                elif L == 2:
                    high = out[n, 1, c, h]
                    for w in range(W):
                        u = line[_at(w)] + offset
                        low[_at(w)], high[_at(w)] = u & mask, u >> bits
                else:
                    middle, high = out[n, 1, c, h], out[n, 2, c, h]
                    for w in range(W):
                        u = line[_at(w)] + offset
                        low[_at(w)], middle[_at(w)], high[_at(w)] = u & mask, (u >> bits) & mask, u >> (2 * bits)


@compiled
def limb_planes(x, offset, bits, out):  # pragma: no cover - compiled
    """x's limbs channels last: out[n, h, w, l, c] = limb l of x[n, c, h, w] + offset. x: int64 (N, C, H, W);
    out: uint8 (N, H, W, L, C), C-contiguous. Transposed through a tile of 16 channels, so that x's rows
    and out's channel runs are both read and written in order."""
    N, C, H, W = x.shape
    L = out.shape[3]
    flat = out.reshape(-1)
    tile = np.empty((W, 16), dtype=np.int64)
    for n in range(N):
        for h in range(H):
            for first in range(0, C, 16):
                count = min(16, C - first)
                for c in range(count):
                    line = x[n, first + c, h]
                    for w in range(W):
                        tile[_at(w), _at(c)] = line[_at(w)] + offset
                for w in range(W):
                    for l in range(L):
                        shift, mask = bits * l, (((1 << bits) - 1) if l < L - 1 else -1)
                        start = (((n * H + h) * W + w) * L + l) * C + first
                        for c in range(count):
                            flat[_at(start + c)] = (tile[_at(w), _at(c)] >> shift) & mask


@compiled
def limb_gather(planes, kernel, strides, dilations, pads, out_shape, padding, out):  # pragma: no cover - compiled
    """The rows of a 2-D convolution from limb_planes: out[(n * OH + oh) * OW + ow, l, (i * KW + j) * C + c] =
    planes[n, oh * SH + i * DH - PH, ow * SW + j * DW - PW, l, c], or padding[l] (the limbs of 0 + offset)
    where that lies in the padding. planes: uint8 (N, H, W, L, C); out: uint8 (N * OH * OW, L, KH * KW * C):
    one run of C bytes per tap."""
    N, H, W, L, C = planes.shape
    KH, KW = kernel
    OH, OW = out_shape
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                rows = out[(n * OH + oh) * OW + ow]
                for i in range(KH):
                    h = oh * strides[0] + i * dilations[0] - pads[0]
                    for j in range(KW):
                        w = ow * strides[1] + j * dilations[1] - pads[1]
                        start = (i * KW + j) * C
                        inside = 0 <= h < H and 0 <= w < W
                        for l in range(L):
                            row = rows[l]
                            if inside:
                                source = planes[n, h, w, l]
                                for c in range(C):
                                    row[_at(start + c)] = source[_at(c)]
                            else:
                                fill = padding[l]
                                for c in range(C):
                                    row[_at(start + c)] = fill


@compiled
def limb_combine(products, x_limbs, x_bits, w_limbs, first, bias, shift, low, high, correct,
                 out):  # pragma: no cover - compiled
    """The limb products of positions first.. combined and finished: for position p and channel o, the exact
    int64 t = bias[o] + sum over x limb i and w limb j of products[(p - first) * x_limbs + i, j * O + o]
    << (x_bits i + 8 j), then out = _requantized(t) by 2**shift (0..62; shift 0 with the int64 limits is t itself).
    products: int32 (positions * x_limbs, w_limbs * O); bias: int64 (O,); out: int64 (N, O, S), position
    p = n * S + s: channels first, a convolution's output. Eight positions at a time, COMBINE_CHANNELS channels at a
    time (the block stays in L1): accumulated and rounded along the channels (vectorized), then written as one run
    of 8 per channel."""
    N, O, S = out.shape
    count = products.shape[0] // x_limbs
    rounding = _rounding(shift, correct)
    acc = np.empty((8, COMBINE_CHANNELS), dtype=np.int64)
    for start in range(first, first + count, 8):
        block = min(8, first + count - start)
        n, s = divmod(start, S)
        for o0 in range(0, O, COMBINE_CHANNELS):
            width = min(COMBINE_CHANNELS, O - o0)
            for q in range(block):
                row = acc[q]
                _accumulate(products, x_limbs, x_bits, w_limbs, start + q - first, bias, o0, row[:width])
                for o in range(width):
                    row[_at(o)] = _requantized(row[_at(o)], rounding, low, high)
            if s + block <= S:  # (a block within one image)
                for o in range(width):
                    for q in range(block):
                        out[_at(n), _at(o0 + o), _at(s + q)] = acc[_at(q), _at(o)]
            else:
                for q in range(block):
                    n_q, s_q = divmod(start + q, S)
                    for o in range(width):
                        out[_at(n_q), _at(o0 + o), _at(s_q)] = acc[_at(q), _at(o)]


@compiled
def limb_combine_rows(products, x_limbs, x_bits, w_limbs, first, bias, shift, low, high, correct,
                      out):  # pragma: no cover - compiled
    """limb_combine for a GEMM's output: out[p, o], int64 (P, O)."""
    O = out.shape[1]
    count = products.shape[0] // x_limbs
    rounding = _rounding(shift, correct)
    acc = np.empty(O, dtype=np.int64)
    for index in range(count):
        _accumulate(products, x_limbs, x_bits, w_limbs, index, bias, 0, acc)
        for o in range(O):
            out[_at(first + index), _at(o)] = _requantized(acc[_at(o)], rounding, low, high)


@inlined
def _accumulate(products, x_limbs, x_bits, w_limbs, index, bias, first, acc):  # pragma: no cover - compiled
    """acc[o] = bias[first + o] + sum over limbs i, j of products[index * x_limbs + i, j * O + first + o]
    << (x_bits i + 8 j), for the len(acc) channels from `first` (O = products' width / w_limbs)."""
    width = acc.shape[0]
    O = products.shape[1] // w_limbs
    for o in range(width):
        acc[_at(o)] = bias[_at(first + o)]
    for i in range(x_limbs):
        row = index * x_limbs + i
        for j in range(w_limbs):
            shift, base = x_bits * i + 8 * j, j * O + first
            for o in range(width):
                acc[_at(o)] += np.int64(products[_at(row), _at(base + o)]) << shift
