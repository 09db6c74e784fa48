"""Depthwise convolutions (one input channel per group: convolution.py's "depthwise" algorithm), exact: per-channel
float products over stride-phase columns (`conv`), or, with their epilogue in 1-D and 2-D, one compiled loop
(`conv_compiled`: float64 with the epilogue fused, or int64 for biases too wide for it)."""

import math

import numpy as np

from verifier.kernels import loops, window


def conv(x, weights, kernel, group, dtype, strides, pads, dilations, out_shape, finish=None):
    """Each output channel reads one input channel: a (multiplier x taps) @ (taps x positions)
    product per channel, over columns gathered with one contiguous copy per kernel tap.

    The padded input is split into stride phases (phase r holds padded positions r, r + s, ...),
    each flattened over its spatial axes. A tap at padded offset p = k * d reads phase p % s
    shifted by p // s, which in the flattened phase is one contiguous slice covering every output
    position (plus a few wrap-around columns, cut off at the end).

    weights: (C, multiplier, taps) in `dtype`, or (C, multiplier, taps + 1) with `finish` (a fused
    epilogue: a row of ones joins the taps, and the product is finished into int64 activations)."""
    N, C = x.shape[:2]
    multiplier = weights.shape[1]
    phases, phase_shape = _stride_phases(x, kernel, strides, pads, dilations, out_shape, dtype)
    row = math.prod(phase_shape[1:])
    length = out_shape[0] * row
    flat_strides = [math.prod(phase_shape[i + 1:]) for i in range(len(phase_shape))]
    taps = window.kernel_size(kernel)
    extra = 0 if finish is None else 1
    cols = window.scratch("depthwise_cols", (N, C, taps + extra, length), dtype)
    if extra:
        cols[:, :, taps] = 1.0
    for index, offset in enumerate(window.offsets(kernel)):
        positions = [k * d for k, d in zip(offset, dilations)]
        phase = phases[tuple(p % s for p, s in zip(positions, strides))]
        shift = sum((p // s) * f for p, s, f in zip(positions, strides, flat_strides))
        cols[:, :, index] = phase[:, :, shift:shift + length]
    acc = np.matmul(weights, cols, out=window.scratch("depthwise_product", (N, C, multiplier, length), dtype))
    acc = acc.reshape((N, C * multiplier, out_shape[0]) + tuple(phase_shape[1:]))
    acc = acc[(Ellipsis,) + tuple(slice(0, o) for o in out_shape[1:])]  # (the wrap-around columns cut off)
    return acc.astype(np.int64) if finish is None else finish(acc)


def conv_compiled(x, w, requantize, fused: bool, strides, pads, dilations, out_shape, out=None):
    """A 1-D or 2-D depthwise convolution and its epilogue in one compiled loop, no columns: in float64 with the
    epilogue fused (loops.depthwise_fused, when `fused`: the caller checked Requantize.fusable) or in int64 (loops.
    depthwise: Requantize.fits_int64). A 1-D one runs as 2-D with a unit height (into a new array)."""
    one_dimensional = x.ndim == 3
    kernel = tuple(w.shape[2:])
    if one_dimensional:
        x, kernel, out = x[:, :, None, :], (1,) + kernel, None
        strides, dilations, out_shape = (1,) + tuple(strides), (1,) + tuple(dilations), (1,) + tuple(out_shape)
        pads = (0, pads[0], 0, pads[1])
    OC = w.shape[0]
    out = window.result_array(out, (x.shape[0], OC) + tuple(out_shape))
    if fused:
        correct, threshold, low, high, magic, unit = requantize.rounding(True)
        loops.depthwise_fused(x, requantize.doubled(w, (OC, math.prod(kernel))), kernel, tuple(strides),
                              tuple(dilations), tuple(pads[:2]), correct, threshold, low, high, magic, 1.0 / unit, out)
    else:
        bias = requantize.bias if requantize.bias is not None else np.zeros(OC, dtype=np.int64)
        low, high = requantize.limits()
        loops.depthwise(x, np.ascontiguousarray(w.reshape((OC,) + kernel)), np.broadcast_to(bias, OC),
                        tuple(strides), tuple(dilations), tuple(pads[:2]), requantize.shift, low, high,
                        not requantize.relu, out)
    return out[:, :, 0] if one_dimensional else out


def _stride_phases(x, kernel, strides, pads, dilations, out_shape, dtype):
    """The zero-padded input split by stride phase: phases[r] (N, C, prod(phase_shape)) holds padded
    positions j * s + r. Each phase is long enough for every tap's shifted slice (one spare row on
    the first axis absorbs the flattened wrap-around)."""
    rank = x.ndim - 2
    N, C = x.shape[:2]
    phase_shape = [o + (d * (k - 1)) // s for o, k, s, d in zip(out_shape, kernel, strides, dilations)]
    phase_shape[0] += 1
    buffer = window.scratch("depthwise_phases", tuple(strides) + (N, C) + tuple(phase_shape), dtype)
    buffer.fill(0)
    for r in window.offsets(strides):
        target, source = [], []
        for i in range(rank):
            s, begin, size = strides[i], pads[i], x.shape[2 + i]
            first = max(-(-(begin - r[i]) // s), 0)  # first j with j * s + r - begin >= 0
            stop = min(-(-(size + begin - r[i]) // s), phase_shape[i])  # j * s + r - begin < size
            if stop <= first:
                break
            target.append(slice(first, stop))
            source.append(slice(first * s + r[i] - begin, (stop - 1) * s + r[i] - begin + 1, s))
        else:
            buffer[r + (slice(None), slice(None)) + tuple(target)] = x[(slice(None), slice(None)) + tuple(source)]
    flat = buffer.reshape(tuple(strides) + (N, C, math.prod(phase_shape)))
    return flat, phase_shape
