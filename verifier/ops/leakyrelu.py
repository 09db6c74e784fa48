import numpy as np

from verifier.fixedpoint import round_shift, saturate
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import multiplier_for

SLOPE_BITS = 24


class LeakyRelu:
    """y = q for q >= 0, else round_shift(q * m, s) with m / 2**s = alpha (|m| < 2**24); saturated.
    The output keeps the input's frac."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        multiplier, shift = multiplier_for(float(ctx.attr("alpha", 0.01)), SLOPE_BITS)
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs={"multiplier": multiplier, "shift": shift})

    @staticmethod
    def run(inputs, attrs, consts):
        (x,) = inputs
        negative = saturate(round_shift(x * np.int64(attrs["multiplier"]), attrs["shift"]))
        return [np.where(x >= 0, x, negative)]
