import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints


class TopK:
    """The k largest (or smallest) q along `axis` and their indices (plain int64). Order: by value, ties
    broken by the lower index first (a stable sort), so the result is unique. k is a program constant."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        k = const_ints(ctx, 1, "K") if len(ctx.inputs) > 1 else [ctx.attr("k")]
        if k is None or k[0] is None:
            ctx.unsupported("k computed at run time")
        attrs = {"k": int(k[0]), "axis": int(ctx.attr("axis", -1)), "largest": int(ctx.attr("largest", 1))}
        return Lowering(out_fracs=[ctx.inputs[0].frac, None], attrs=attrs, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        axis = attrs["axis"] % x.ndim
        if not 0 <= attrs["k"] <= x.shape[axis]:
            raise ValueError(f"TopK k={attrs['k']} outside [0, {x.shape[axis]}]")
        keys = -x if attrs["largest"] else x
        order = np.argsort(keys, axis=axis, kind="stable")
        indices = np.take(order, np.arange(attrs["k"]), axis=axis)
        return [np.take_along_axis(x, indices, axis=axis), indices.astype(np.int64)]
