import numpy as np

from verifier.ops import CompileContext, Lowering


class Or:
    """Boolean logical_or of two plain integer (0/1) tensors, numpy broadcasting; a plain 0/1 int64 result."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if any(o.frac is not None for o in ctx.inputs):
            ctx.unsupported("boolean op on a fixed-point tensor")
        return Lowering(out_fracs=[None])

    @staticmethod
    def run(inputs, attrs, consts):
        return [np.logical_or(inputs[0] != 0, inputs[1] != 0).astype(np.int64)]
