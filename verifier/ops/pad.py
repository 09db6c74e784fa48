import numpy as np

from verifier.fixedpoint import quantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints

NUMPY_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


class Pad:
    """Pad (mode constant / reflect / edge / wrap; negative pads crop). The constant value is quantized at
    the input's frac; values and frac are otherwise unchanged. Pads and axes are program constants."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x = ctx.inputs[0]
        mode = ctx.attr("mode", "constant")
        if mode not in NUMPY_MODES:
            ctx.unsupported(f"mode {mode!r}")
        if ctx.opset < 11:
            pads, value, axes = list(ctx.attr("pads")), float(ctx.attr("value", 0.0)), None
        else:
            pads = const_ints(ctx, 1, "pads")
            if pads is None:
                ctx.unsupported("pads computed at run time")
            operand = ctx.inputs[2] if len(ctx.inputs) > 2 else None
            if operand is not None and not operand.is_const:
                ctx.unsupported("pad value computed at run time")
            value = float(np.asarray(operand.value).reshape(-1)[0]) if operand is not None and operand.value.size else 0.0
            axes = const_ints(ctx, 3, "axes") if len(ctx.inputs) > 3 else None
        if x.frac is None and not np.isfinite(value):
            ctx.unsupported(f"pad value {value} for a plain integer tensor")
        q_value = int(value) if x.frac is None else int(quantize(np.array([value]), x.frac)[0])
        attrs = {"mode": mode, "pads": pads, "value": q_value}
        if axes is not None:
            attrs["axes"] = axes
        return Lowering(out_fracs=[x.frac], attrs=attrs, absorbed={1, 2, 3})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        begin, end = _per_axis(x.ndim, attrs)
        crop = tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(zip(begin, end)))
        x = x[crop]
        widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
        if attrs["mode"] == "constant":
            return [np.pad(x, widths, mode="constant", constant_values=attrs["value"])]
        return [np.pad(x, widths, mode=NUMPY_MODES[attrs["mode"]])]

    @staticmethod
    def cost(shapes, attrs, consts):
        shape = shapes[0]
        begin, end = _per_axis(len(shape), attrs)
        return int(np.prod([max(d + b + e, 0) for d, b, e in zip(shape, begin, end)], dtype=np.int64)) + int(
            np.prod(shape, dtype=np.int64))


def _output_size(inputs, attrs, consts):
    shape = inputs[0].shape
    begin, end = _per_axis(len(shape), attrs)
    size = 1
    for d, b, e in zip(shape, begin, end):
        size *= max(int(d) + int(b) + int(e), 0)
    return size


Pad.output_size = staticmethod(_output_size)


def _per_axis(rank: int, attrs) -> tuple[list, list]:
    pads = attrs["pads"]
    axes = [a % rank for a in attrs.get("axes", range(rank))]
    begin, end = [0] * rank, [0] * rank
    for i, axis in enumerate(axes):
        begin[axis], end[axis] = pads[i], pads[i + len(axes)]
    return begin, end
