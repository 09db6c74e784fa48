"""Compiled loops for products with their epilogue, each one call: GEMMs, each feeding the next (one: a GEMM), and
a 2-D convolution (with a max pool of its output). Through the general kernels a small layer's run is mostly
their Python, their buffers and the passes between them; here it is one call: the operand converted to the weight's
float type (a convolution's columns gathered, as loops.im2col), its BLAS product (np.dot, which numba hands to
scipy's BLAS; a large GEMM's in row blocks: _product), and the epilogue (kernels/direct.py says when they run, and
in which type).

The product is exact: every product of two integers below 2**26 is, and every partial sum is an integer below 2**53
when the caller's bound K |a| |w| < 2**53 holds (in float32: 2**24), so the sum is exact whatever the order,
blocking or FMA of the BLAS (the exact_gemm argument). It is then converted to int64 (exact), the int64 bias added
and the epilogue's integer form applied (_requantized, as loops.depthwise): the integers of the int64 reference
product and epilogue.requantize."""

import numpy as np

from verifier.kernels.loops._compile import compiled, inlined
from verifier.kernels.loops.rows import _requantized, _rounding  # noqa: F401 (inlined when compiled)


@compiled
def gemm_chain(a, weights, biases, links, scratch, out):  # pragma: no cover - compiled
    """GEMMs with their epilogue, each link's requantized integers the next one's operand (one link: one GEMM).
    out[m, n] = _requantized(sum_k x[m, k] * w[k, n] + bias[n]) into [low, high] for each link's operand x and
    weight w, the first operand being a; a link's integers enter the next link in the weights' float type (exact:
    within 16 bits), narrowed first where the next link narrows its operand (loops.narrow's integers).
    a: int64 (M, K0), any strides; weights: one flat float64 or float32 array holding each link's (K, N) weight's
    integers, C order (float32 when every link's K |x| |w| < 2**24: then exact as well); biases: one flat int64
    array holding each link's (N,) bias; links: int64 (L, 11), per link (K, N, its weight's offset in weights, its
    bias's offset in biases, shift (0..62), low, high, correct (the sign correction, skipped for a fused Relu: low
    = 0), then the narrowing of its integers for the next link, shift (1..62) and limit (0: none), then its
    product's rows a BLAS call: _product); scratch: float (2, S) in the weights' type, S at least M times the widest
    operand or result, where the operands and results live (a caller's reused buffers: large fresh ones cost page
    faults), or (2, 0): allocated here; out: int64 (M, N of the last link). The sums are BLAS products (np.dot:
    exact, as above)."""
    M, K = a.shape
    rows = _buffer(scratch, 0, M, K)
    for m in range(M):
        for k in range(K):
            rows[m, k] = a[m, k]
    last = links.shape[0] - 1
    for link in range(last + 1):
        K, N, at, bias_at, shift, low, high = links[link, 0], links[link, 1], links[link, 2], links[link, 3], \
            links[link, 4], links[link, 5], links[link, 6]
        correct, narrow_shift, narrow_limit = links[link, 7] != 0, links[link, 8], links[link, 9]
        acc = _buffer(scratch, (link + 1) % 2, M, N)
        _product(rows, weights[at:at + K * N].reshape((K, N)), acc, links[link, 10])
        rounding, bias = _rounding(shift, correct), biases[bias_at:bias_at + N]
        if link == last:
            for m in range(M):
                sums, target = acc[m], out[m]
                for n in range(N):
                    target[n] = _requantized(np.int64(sums[n]) + bias[n], rounding, low, high)
            return
        narrowing = _rounding(narrow_shift, True)
        for m in range(M):
            sums = acc[m]
            for n in range(N):
                value = _requantized(np.int64(sums[n]) + bias[n], rounding, low, high)
                if narrow_limit:
                    value = _requantized(value, narrowing, -narrow_limit, narrow_limit)
                sums[n] = value
        rows = acc


@inlined
def _buffer(scratch, half, M, N):  # pragma: no cover - compiled
    """An (M, N) array in half `half` of scratch (gemm_chain's), or a new one where scratch has no room."""
    if scratch.shape[1] < M * N:
        return np.empty((M, N), dtype=scratch.dtype)
    return scratch[half, :M * N].reshape((M, N))


@compiled
def conv_requantize(x, w, kernel, strides, dilations, pads, out_shape, bias, shift, low, high, correct, windows,
                    out):  # pragma: no cover - compiled
    """A 2-D convolution with its epilogue, then a max pool: y[n, g * OCg + o, oh, ow] = _requantized(acc +
    bias[g * OCg + o]), acc = sum over c < Cg and taps (i, j) of w[g, o, (c * KH + i) * KW + j] *
    x[n, g * Cg + c, h, v] where h = oh * SH + i * DH - PH and v = ow * SW + j * DW - PW (0 where that lies in the
    padding), for (oh, ow) in out_shape; out[n, c] = the maxima of y[n, c] over a max pool's windows (`windows`:
    int64 (taps, pooled positions), each window's flat indices into the (OH, OW) plane: direct.window_indices), or
    y itself for windows of shape (0, 0). x: int64 (N, C, H, W); w: float64 or float32 (group, OCg, Cg * KH * KW),
    the filters' integers, C-contiguous (as gemm_chain's); bias: int64 (OC,); out: int64 (N, OC, pooled
    height, pooled width), any strides. Each image's columns (as loops.im2col) are multiplied by each group's
    filters in one BLAS product."""
    N, C, H, W = x.shape
    group, _, K = w.shape
    KH, KW = kernel
    OH, OW = out_shape
    OC = out.shape[1]
    Cg, OCg = C // group, OC // group
    pooled = windows.shape[0] > 0
    rounding = _rounding(shift, correct)
    columns = np.empty((K, OH * OW), dtype=w.dtype)
    acc = np.empty((w.shape[1], OH * OW), dtype=w.dtype)
    best = np.empty(windows.shape[1], dtype=w.dtype)
    for n in range(N):
        for g in range(group):
            for c in range(Cg):
                image = x[n, g * Cg + c]
                for i in range(KH):
                    for j in range(KW):
                        row = columns[(c * KH + i) * KW + j]
                        left = j * dilations[1] - pads[1]
                        for oh in range(OH):
                            h = oh * strides[0] + i * dilations[0] - pads[0]
                            for ow in range(OW):
                                v = ow * strides[1] + left
                                inside = 0 <= h < H and 0 <= v < W
                                row[oh * OW + ow] = image[h, v] if inside else 0
            np.dot(w[g], columns, acc)
            for o in range(OCg):
                channel, sums = g * OCg + o, acc[o]
                if pooled:
                    _max_pooled(sums, windows, bias[channel], rounding, low, high, out[n, channel], best)
                    continue
                target = out[n, channel]
                for oh in range(OH):
                    for ow in range(OW):
                        total = np.int64(sums[oh * OW + ow]) + bias[channel]
                        target[oh, ow] = _requantized(total, rounding, low, high)


@inlined
def _product(rows, w, acc, block):  # pragma: no cover - compiled
    """acc = rows @ w, one BLAS call (np.dot) per `block` rows of `rows` (the last block may hold fewer; kernels/
    direct.row_block says why a product is split). Each row's sums are the same, exact, whichever call makes them."""
    M = rows.shape[0]
    for start in range(0, M, block):
        stop = min(start + block, M)
        np.dot(rows[start:stop], w, acc[start:stop])


@inlined
def _max_pooled(sums, windows, bias, rounding, low, high, out, best):  # pragma: no cover - compiled
    """out[ph, pw] = _requantized(the maximum of `sums` over the window of (ph, pw), + bias): windows[t, q] is the
    flat index in sums of tap t of the window of output q = ph * PW + pw (kernels/direct.window_indices). The
    epilogue's integer form is non-decreasing in the sum (the rounding correction moves a negative sum down by one
    before a floor, never past a larger sum's result; the clip keeps order), so this is the maximum of the
    requantized plane over the window: max_pool's integers. Tap by tap over all outputs (`best`: float scratch of
    Q), so that no output's maximum waits on another's."""
    T, Q = windows.shape
    first = windows[0]
    for q in range(Q):
        best[q] = sums[first[q]]
    for t in range(1, T):
        taps = windows[t]
        for q in range(Q):
            value = sums[taps[q]]
            best[q] = value if value > best[q] else best[q]
    q = 0
    for ph in range(out.shape[0]):
        for pw in range(out.shape[1]):
            out[ph, pw] = _requantized(np.int64(best[q]) + bias, rounding, low, high)
            q += 1
