from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import axes_of, reduce_attrs


class ReduceSum:
    """y = requantize(exact int64 sum over the axes, fx, fy) at the output's calibrated frac fy; plain
    integer tensors sum exactly."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        attrs = reduce_attrs(ctx)
        x = ctx.inputs[0]
        if x.frac is None:
            return Lowering(out_fracs=[None], attrs=attrs, absorbed={1})
        out_frac = ctx.out_frac()
        attrs.update({"in_frac": x.frac, "out_frac": out_frac})
        return Lowering(out_fracs=[out_frac], attrs=attrs, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        axes = axes_of(x, attrs)
        total = x if axes is None else x.sum(axis=axes, keepdims=bool(attrs["keepdims"]))
        if "out_frac" not in attrs:
            return [total]
        return [requantize(total, attrs["in_frac"], attrs["out_frac"])]
