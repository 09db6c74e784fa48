import numpy as np

from verifier.ops import CompileContext, Lowering


class ArgMax:
    """Index of the largest q along `axis` (first one on ties, or the last with select_last_index=1), as a
    plain int64 tensor; keepdims as ONNX. Comparing q compares real values: one scale per tensor."""

    choose = staticmethod(np.argmax)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        attrs = {"axis": int(ctx.attr("axis", 0)), "keepdims": int(ctx.attr("keepdims", 1)),
                 "last": int(ctx.attr("select_last_index", 0))}
        return Lowering(out_fracs=[None], attrs=attrs)

    @classmethod
    def run(cls, inputs, attrs, consts):
        x = inputs[0]
        axis = attrs["axis"] % x.ndim
        if attrs["last"]:
            index = x.shape[axis] - 1 - cls.choose(np.flip(x, axis=axis), axis=axis)
        else:
            index = cls.choose(x, axis=axis)
        if attrs["keepdims"]:
            index = np.expand_dims(index, axis)
        return [index.astype(np.int64)]
