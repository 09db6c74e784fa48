from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import lower_sum, requantized_sum


class ReduceSumSquare:
    """y = requantize(exact int64 sum of q * q over the axes, 2 fx, fy) at the output's calibrated frac fy
    (16-bit q: each square < 2**30, so any tensor under the element limit sums exactly); plain integer
    tensors sum exactly. Error: at most 0.5 output step (one rounding)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_sum(ctx)

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        return [requantized_sum(x * x, attrs, power=2)]
