import numpy as np

from verifier.ops import CompileContext, Lowering

ONE_FRAC = 14


class Sign:
    """y = sign(q) in {-1, 0, 1}: at frac 14 (q = ±2**14) for fixed-point input, plain for integers."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        frac = None if ctx.inputs[0].frac is None else ONE_FRAC
        return Lowering(out_fracs=[frac], attrs={"frac": -1 if frac is None else frac})

    @staticmethod
    def run(inputs, attrs, consts):
        sign = np.sign(inputs[0])
        return [sign if attrs["frac"] < 0 else sign << attrs["frac"]]
