from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import lower_sum, requantized_sum


class ReduceSum:
    """y = requantize(exact int64 sum over the axes, fx, fy) at the output's calibrated frac fy; plain
    integer tensors sum exactly."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_sum(ctx)

    @staticmethod
    def run(inputs, attrs, consts):
        return [requantized_sum(inputs[0], attrs)]
