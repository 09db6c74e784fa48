import numpy as np
from onnx import helper

from verifier.ops import CompileContext, Lowering


class EyeLike:
    """A 2-D tensor shaped like the input with ones on diagonal k: plain integers for an integer dtype, or
    the values 1.0 and 0.0 at frac 0 for a float one (exact)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        dtype = ctx.attr("dtype")
        if dtype is None:
            floating = ctx.inputs[0].frac is not None
        else:
            floating = np.dtype(helper.tensor_dtype_to_np_dtype(int(dtype))).kind == "f"
        return Lowering(out_fracs=[0 if floating else None], attrs={"k": int(ctx.attr("k", 0))})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        if x.ndim != 2:
            raise ValueError(f"EyeLike: input of shape {x.shape} (needs 2 dims)")
        return [np.eye(x.shape[0], x.shape[1], attrs["k"], dtype=np.int64)]
