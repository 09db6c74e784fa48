import numpy as np

from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints


class CumSum:
    """y = requantize(exact int64 running sum along `axis`, fx, fy) at the output's calibrated frac fy:
    inclusive from the start by default, from the end with reverse=1; exclusive=1 drops each element's
    own term (running sum - q, exact). The axis must be a constant input. Plain integer tensors sum
    exactly. Error: at most 0.5 output step (one rounding)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        axis = const_ints(ctx, 1, "axis")
        if axis is None or len(axis) != 1:
            ctx.unsupported("the axis must be one constant integer")
        x = ctx.inputs[0]
        attrs = {"axis": int(axis[0]), "exclusive": int(ctx.attr("exclusive", 0)),
                 "reverse": int(ctx.attr("reverse", 0))}
        if x.frac is None:
            return Lowering(out_fracs=[None], attrs=attrs, absorbed={1})
        out_frac = ctx.out_frac()
        attrs.update({"in_frac": x.frac, "out_frac": out_frac})
        return Lowering(out_fracs=[out_frac], attrs=attrs, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        if x.ndim == 0 or not -x.ndim <= attrs["axis"] < x.ndim:
            raise ValueError(f"CumSum axis {attrs['axis']} is out of range for a tensor of rank {x.ndim}")
        axis = attrs["axis"] % x.ndim
        ordered = np.flip(x, axis) if attrs["reverse"] else x
        total = np.cumsum(ordered, axis=axis)
        if attrs["exclusive"]:
            total -= ordered
        if attrs["reverse"]:
            total = np.flip(total, axis)
        if "out_frac" not in attrs:
            return [np.ascontiguousarray(total)]
        return [requantize(total, attrs["in_frac"], attrs["out_frac"])]
