import numpy as np

from verifier.ops import CompileContext, Lowering


class Abs:
    """y = |q|; frac unchanged."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[ctx.inputs[0].frac])

    @staticmethod
    def run(inputs, attrs, consts):
        return [np.abs(inputs[0])]
