import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import lower_sum, requantized_sum


class ReduceL1:
    """y = requantize(exact int64 sum of |q| over the axes, fx, fy) at the output's calibrated frac fy;
    plain integer tensors sum exactly. Error: at most 0.5 output step (one rounding)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_sum(ctx)

    @staticmethod
    def run(inputs, attrs, consts):
        return [requantized_sum(np.abs(inputs[0]), attrs)]
