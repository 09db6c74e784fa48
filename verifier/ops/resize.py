import math

import numpy as np

from verifier.fixedpoint import ACT_BITS, quantize, requantize
from verifier.ops import CompileContext, Lowering

ACC_BITS = 62  # the interpolation's products stay below 2**62 (ACT_BITS input, every axis's weights)


class Resize:
    """The source positions of every output position are computed at compile time from the static input
    shape, the scales/sizes and coordinate_transformation_mode (ONNX formulas, float64) and stored in the
    program as integer tables; the run only gathers and, for linear / cubic, sums integer products.
    nearest: per resized axis an index table ("index<axis>", nearest_mode); values and frac unchanged.
    linear / cubic (also antialias, exclude_outside, cubic_coeff_a): per resized axis the n source indices
    of each output ("taps<axis>", edge-clamped as ONNX) and their weights rounded at 2**-w ("weights<axis>");
    w = floor((62 - 15 - sum of log2 of each axis's largest row sum of |weights|) /
    resized axes). Axis by axis acc = sum over taps of acc[tap] * weight (exact int64, the bound proven by
    w); y = requantize(acc, fx + axes * w, fy), fy = min(calibrated, fx). Error: 0.5 output step plus the
    weights' rounding, at most n * 2**-(w+1) * max|q| per axis (under 0.02 step for two cubic axes)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        mode = ctx.attr("mode", "nearest")
        if mode not in ("nearest", "linear", "cubic"):
            ctx.unsupported(f"mode {mode!r}")
        shape = ctx.inputs[0].shape
        if shape is None:
            ctx.unsupported("needs the input's rank and resized dims")
        legacy = ctx.opset < 11  # Resize-10 (and Upsample, rewritten to it): asymmetric, nearest floor
        coordinate = ctx.attr("coordinate_transformation_mode", "asymmetric" if legacy else "half_pixel")
        if coordinate == "tf_crop_and_resize":
            ctx.unsupported("coordinate_transformation_mode 'tf_crop_and_resize'")
        scales, sizes = _scales_and_sizes(ctx, shape)
        resized = []
        for axis, (size_in, size_out, scale) in enumerate(zip(shape, sizes, scales)):
            if scale == 1.0 and (size_in is None or size_in == size_out):
                continue  # an axis that keeps its size (a dynamic batch, the channels) is not touched
            if size_in is None:
                ctx.unsupported(f"axis {axis} is resized but its size is only known at run time")
            original = _original(np.arange(size_out, dtype=np.float64), scale, size_in, size_out, coordinate)
            resized.append((axis, size_in, scale, original))
        if mode == "nearest":
            rounding = ctx.attr("nearest_mode", "floor" if legacy else "round_prefer_floor")
            consts = {f"index{axis}": np.clip(_nearest(original, rounding),
                                              0, size_in - 1).astype(np.int64)
                      for axis, size_in, _, original in resized}
            return Lowering(out_fracs=[ctx.inputs[0].frac], attrs={"axes": [axis for axis, *_ in resized]},
                            consts=consts, absorbed={1, 2, 3})
        return _lower_interpolation(ctx, mode, resized)

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        if "mode" not in attrs:  # nearest
            for axis in attrs["axes"]:
                x = np.take(x, consts[f"index{axis}"], axis=axis)
            return [x]
        acc = x
        for axis in attrs["axes"]:
            taps, weights = consts[f"taps{axis}"], consts[f"weights{axis}"]
            if not axis < acc.ndim or taps.size and int(taps.max()) >= acc.shape[axis]:
                raise ValueError(f"Resize: an input of shape {x.shape} does not fit the program's tables")
            gathered = np.take(acc, taps, axis=axis)  # (..., out, n, ...)
            acc = (gathered * weights.reshape((1,) * axis + weights.shape + (1,) * (acc.ndim - axis - 1))).sum(axis + 1)
        return [requantize(acc, attrs["in_frac"] + len(attrs["axes"]) * attrs["weight_bits"], attrs["out_frac"])]


def _output_size(inputs, attrs, consts):
    """The output's elements; for linear / cubic the gathered taps (n per output) of the widest step."""
    shape = list(inputs[0].shape)
    largest = 0
    for axis in attrs["axes"]:
        table = consts[f"index{axis}"] if "mode" not in attrs else consts[f"taps{axis}"]
        shape[axis] = table.shape[0]
        largest = max(largest, math.prod(shape) * (table.shape[1] if table.ndim == 2 else 1))
    return max(largest, math.prod(shape))


Resize.output_size = staticmethod(_output_size)


def _lower_interpolation(ctx: CompileContext, mode: str, resized) -> Lowering:
    x = ctx.inputs[0]
    if x.frac is None:
        ctx.unsupported(f"{mode} interpolation of a plain integer tensor")
    antialias, a = bool(ctx.attr("antialias", 0)), float(ctx.attr("cubic_coeff_a", -0.75))
    exclude_outside = bool(ctx.attr("exclude_outside", 0))
    tables = [(axis,) + _taps(mode, original, size_in, scale, antialias, a, exclude_outside)
              for axis, size_in, scale, original in resized]
    growth = sum(math.ceil(math.log2(max(float(np.abs(w).sum(axis=1).max()), 1.0))) for _, _, w in tables)
    weight_bits = (ACC_BITS - (ACT_BITS - 1) - growth) // max(len(tables), 1)
    if weight_bits < 8:
        ctx.unsupported(f"{len(tables)} interpolated axes leave {weight_bits} weight bits (8 needed)")
    consts = {}
    for axis, taps, weights in tables:
        consts[f"taps{axis}"] = taps
        consts[f"weights{axis}"] = quantize(weights, weight_bits, bits=weight_bits + 2)
    out_frac = min(ctx.out_frac(), x.frac)
    attrs = {"mode": mode, "axes": [axis for axis, *_ in tables], "weight_bits": weight_bits,
             "in_frac": x.frac, "out_frac": out_frac}
    return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed={1, 2, 3})


def _taps(mode, original, size_in, scale, antialias, a, exclude_outside):
    """(source indices, real weights), each (outputs, n): the ONNX reference's neighbours and coefficients
    (onnx.reference op_resize), indices clamped to the input (edge padding)."""
    whole = np.floor(original)
    ratios = np.where(original == whole, 1.0, original - whole)  # (the left neighbour at integer positions)
    weights = np.array([_coefficients(mode, r, scale, antialias, a) for r in ratios]).reshape(len(ratios), -1)
    n = weights.shape[1]
    pad = math.ceil(n / 2)
    padded = original + pad
    start = np.floor(padded).astype(np.int64)
    part = padded - start
    if n % 2 == 0:
        start = start + np.where(part == 0, -(n // 2), -(n // 2) + 1)
    else:
        start = start + np.where(part <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    taps = start[:, None] + np.arange(n)[None, :] - pad
    if exclude_outside:
        weights = np.where((taps < 0) | (taps >= size_in), 0.0, weights)
        sums = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(sums == 0, 1.0, sums)
    return np.clip(taps, 0, size_in - 1).astype(np.int64), weights


def _coefficients(mode, ratio, scale, antialias, a):
    if mode == "linear" and not antialias:
        return [1 - ratio, ratio]
    if mode == "linear":
        scale = min(scale, 1.0)
        start = int(np.floor(-1 / scale) + 1)
        weights = np.clip(1 - np.abs((np.arange(start, 2 - start) - ratio) * scale), 0, 1)
        return weights / weights.sum()
    if not antialias:
        return [_cubic(ratio + 1, a), _cubic(ratio, a), _cubic(1 - ratio, a), _cubic(2 - ratio, a)]
    scale = min(scale, 1.0)
    start = int(np.floor(-2 / scale) + 1)
    weights = np.array([_cubic(abs(scale * (i - ratio)), a) for i in range(start, 2 - start)])
    return weights / weights.sum()


def _cubic(distance, a):
    """Keys' cubic convolution kernel at |distance|, coefficient a."""
    d = abs(distance)
    if d <= 1:
        return ((a + 2) * d - (a + 3)) * d * d + 1
    if d < 2:
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return 0.0


def _scales_and_sizes(ctx, shape):
    rank = len(shape)
    legacy_scales = ctx.inputs[1] if ctx.opset < 11 and len(ctx.inputs) > 1 else None  # Resize-10, Upsample-9
    scales_operand = ctx.inputs[2] if len(ctx.inputs) > 2 else legacy_scales
    sizes_operand = ctx.inputs[3] if len(ctx.inputs) > 3 else None
    if sizes_operand is not None and sizes_operand.is_const and sizes_operand.value.size:
        sizes = [int(s) for s in sizes_operand.value.reshape(-1)]
        if ctx.attr("keep_aspect_ratio_policy", "stretch") != "stretch" or ctx.attr("axes") is not None:
            ctx.unsupported("axes / keep_aspect_ratio_policy")
        if any(d is None and o != 1 for o, d in zip(sizes, shape)):
            ctx.unsupported("sizes for an axis whose size is only known at run time")
        return [1.0 if i is None else o / i for o, i in zip(sizes, shape)], sizes
    if scales_operand is None and ctx.attr("scales") is not None:  # Upsample-7
        scales = [float(s) for s in ctx.attr("scales")]
    elif scales_operand is None or not scales_operand.is_const or not scales_operand.value.size:
        ctx.unsupported("scales or sizes must be constants")
    else:
        scales = [float(s) for s in scales_operand.value.reshape(-1)]
    if len(scales) != rank:
        ctx.unsupported("axes attribute")
    return scales, [None if d is None else int(np.floor(d * s)) for d, s in zip(shape, scales)]


def _original(x, scale, size_in, size_out, mode):
    if mode == "asymmetric":
        return x / scale
    if mode == "align_corners":
        return np.zeros_like(x) if size_out == 1 else x * (size_in - 1) / (size_out - 1)
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if size_out > 1 else np.zeros_like(x)
    if mode in ("half_pixel", "half_pixel_symmetric"):
        if mode == "half_pixel_symmetric":
            adjustment = size_out / (scale * size_in)
            offset = size_in / 2 * (1 - adjustment)
            return offset + (x + 0.5) / scale - 0.5
        return (x + 0.5) / scale - 0.5
    raise ValueError(f"coordinate_transformation_mode {mode!r}")


def _nearest(x, mode):
    if mode == "round_prefer_floor":
        return np.where(x == np.floor(x) + 0.5, np.floor(x), np.round(x)).astype(np.int64)
    if mode == "round_prefer_ceil":
        return np.where(x == np.floor(x) + 0.5, np.ceil(x), np.round(x)).astype(np.int64)
    if mode == "floor":
        return np.floor(x).astype(np.int64)
    if mode == "ceil":
        return np.ceil(x).astype(np.int64)
    raise ValueError(f"nearest_mode {mode!r}")
