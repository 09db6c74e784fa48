import numpy as np

from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._align import aligned, lower_aligned


class Mod:
    """The remainder of a / b (numpy broadcasting): fmod=0 takes the divisor's sign (numpy mod), fmod=1 the
    dividend's (C fmod). Plain integers: exact. Fixed-point: a and b moved exactly to c = max(fa, fb)
    (constants quantized at c), the remainder of those integers is exact at c, y = requantize(r, c, fy) at
    the output's calibrated frac. A zero divisor gives 0 (integers have no NaN)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        lowering = lower_aligned(ctx, [0, 1])
        lowering.attrs["fmod"] = int(ctx.attr("fmod", 0))
        return lowering

    @staticmethod
    def run(inputs, attrs, consts):
        a, b = aligned(inputs, attrs, consts, 0), aligned(inputs, attrs, consts, 1)
        divisor = np.where(b == 0, 1, b)
        remainder = np.where(b == 0, 0, (np.fmod if attrs["fmod"] else np.mod)(a, divisor))
        if attrs.get("integer"):
            return [remainder]
        return [requantize(remainder, attrs["common"], attrs["out_frac"])]
