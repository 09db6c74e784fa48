import numpy as np

from verifier.ops import CompileContext, Lowering


class Hardmax:
    """1 at the first largest q along `axis`, 0 elsewhere, at frac 0 (the values 1.0 and 0.0 exactly).
    Opset < 13 flattens the input to 2-D at `axis` first (the old ONNX semantics)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        default = -1 if ctx.opset >= 13 else 1
        return Lowering(out_fracs=[0], attrs={"axis": int(ctx.attr("axis", default)), "flatten": int(ctx.opset < 13)})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        axis = attrs["axis"] % max(x.ndim, 1)
        rows = x.reshape(int(np.prod(x.shape[:axis])), -1) if attrs["flatten"] else x
        along = 1 if attrs["flatten"] else axis
        first = np.expand_dims(np.argmax(rows, axis=along), along)
        hot = np.zeros(rows.shape, dtype=np.int64)
        np.put_along_axis(hot, first, 1, axis=along)
        return [hot.reshape(x.shape)]
