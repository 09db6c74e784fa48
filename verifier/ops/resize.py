import numpy as np

from verifier.ops import CompileContext, Lowering


class Resize:
    """mode="nearest" only: a gather along every resized axis. The source index of each output position is
    computed at compile time from the static input shape, the scales/sizes, coordinate_transformation_mode
    and nearest_mode (ONNX formulas, float64) and stored in the program as integer tables ("index<axis>");
    the run only gathers. Values and frac unchanged."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if ctx.attr("mode", "nearest") != "nearest":
            ctx.unsupported(f"mode {ctx.attr('mode')!r} (only nearest)")
        shape = ctx.inputs[0].shape
        if shape is None:
            ctx.unsupported("needs the input's rank and resized dims")
        scales, sizes = _scales_and_sizes(ctx, shape)
        coordinate = ctx.attr("coordinate_transformation_mode", "half_pixel")
        rounding = ctx.attr("nearest_mode", "round_prefer_floor")
        consts = {}
        for axis, (size_in, size_out, scale) in enumerate(zip(shape, sizes, scales)):
            if scale == 1.0 and (size_in is None or size_in == size_out):
                continue  # an axis that keeps its size (a dynamic batch, the channels) is not touched
            if size_in is None:
                ctx.unsupported(f"axis {axis} is resized but its size is only known at run time")
            positions = np.arange(size_out, dtype=np.float64)
            original = _original(positions, scale, size_in, size_out, coordinate)
            index = _nearest(original, rounding)
            consts[f"index{axis}"] = np.clip(index, 0, size_in - 1).astype(np.int64)
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs={"axes": sorted(int(k[5:]) for k in consts)},
                        consts=consts, absorbed={1, 2, 3})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        for axis in attrs["axes"]:
            x = np.take(x, consts[f"index{axis}"], axis=axis)
        return [x]


def _output_size(inputs, attrs, consts):
    shape = list(inputs[0].shape)
    for axis in attrs["axes"]:
        shape[axis] = consts[f"index{axis}"].size
    return int(np.prod(shape, dtype=object))


Resize.output_size = staticmethod(_output_size)


def _scales_and_sizes(ctx, shape):
    rank = len(shape)
    scales_operand = ctx.inputs[2] if len(ctx.inputs) > 2 else (ctx.inputs[1] if ctx.opset < 11 else None)
    sizes_operand = ctx.inputs[3] if len(ctx.inputs) > 3 else None
    if sizes_operand is not None and sizes_operand.is_const and sizes_operand.value.size:
        sizes = [int(s) for s in sizes_operand.value.reshape(-1)]
        if ctx.attr("keep_aspect_ratio_policy", "stretch") != "stretch" or ctx.attr("axes") is not None:
            ctx.unsupported("axes / keep_aspect_ratio_policy")
        if any(d is None and o != 1 for o, d in zip(sizes, shape)):
            ctx.unsupported("sizes for an axis whose size is only known at run time")
        return [1.0 if i is None else o / i for o, i in zip(sizes, shape)], sizes
    if scales_operand is None or not scales_operand.is_const or not scales_operand.value.size:
        ctx.unsupported("scales or sizes must be constants")
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
