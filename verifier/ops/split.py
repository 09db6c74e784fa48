import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints


class Split:
    """Split along `axis` into the given sizes (attribute before opset 13, constant input after), or into
    num_outputs / the number of outputs equal parts (the last one smaller when uneven, as ONNX 18);
    values and frac unchanged."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        sizes = ctx.attr("split")
        if len(ctx.inputs) > 1 and ctx.inputs[1] is not None:
            sizes = const_ints(ctx, 1, "split")
            if sizes is None:
                ctx.unsupported("split sizes computed at run time")
        attrs = {"axis": int(ctx.attr("axis", 0)), "outputs": len(ctx.output_names)}
        if sizes is not None:
            attrs["sizes"] = [int(s) for s in sizes]
        return Lowering(out_fracs=[ctx.inputs[0].frac] * len(ctx.output_names), attrs=attrs, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        axis = attrs["axis"] % x.ndim
        sizes = attrs.get("sizes")
        if sizes is None:
            parts = attrs["outputs"]
            chunk = -(-x.shape[axis] // parts)
            sizes = [min(chunk, x.shape[axis] - i * chunk) for i in range(parts)]
        if sum(sizes) != x.shape[axis]:
            raise ValueError(f"Split sizes {sizes} do not add up to {x.shape[axis]}")
        return np.split(x, np.cumsum(sizes)[:-1], axis=axis)
