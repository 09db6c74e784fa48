from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import axes_of, reduce_attrs


class ReduceMin:
    """y = min over the axes; frac unchanged, exact."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs=reduce_attrs(ctx), absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        axes = axes_of(x, attrs)
        return [x if axes is None else x.min(axis=axes, keepdims=bool(attrs["keepdims"]))]
