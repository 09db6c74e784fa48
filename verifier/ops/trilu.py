import numpy as np

from verifier.ops import CompileContext, Lowering


class Trilu:
    """The upper (upper=1, numpy triu) or lower (upper=0, tril) triangle of the last two axes, with the
    diagonal offset k (optional scalar int64 input, default 0); every other element becomes 0. Values and
    frac unchanged (plain integer tensors stay plain): it only selects."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x = ctx.inputs[0]
        if x.shape is not None and len(x.shape) < 2:
            ctx.unsupported("needs a tensor of rank >= 2")
        k = ctx.inputs[1] if len(ctx.inputs) > 1 else None
        if k is not None and k.frac is not None:
            ctx.unsupported("the diagonal offset k must be an integer tensor")
        attrs = {"upper": int(ctx.attr("upper", 1))}
        if k is not None and k.is_const:
            attrs["k"] = int(np.asarray(k.value).reshape(-1)[0])
            return Lowering(out_fracs=[x.frac], attrs=attrs, absorbed={1})
        return Lowering(out_fracs=[x.frac], attrs=attrs)

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        k = attrs.get("k", 0)
        if len(inputs) > 1 and inputs[1] is not None:
            k = int(np.asarray(inputs[1]).reshape(-1)[0])
        return [np.triu(x, k) if attrs["upper"] else np.tril(x, k)]
