from verifier.ops import CompileContext, Lowering
from verifier.ops._binary import lower_sum, run_sum


class Add:
    """y = requantize((a << (c - fa)) + (b << (c - fb)), c, fy) with c = max(fa, fb, fy): both operands are
    moved exactly to the common frac, added in int64, rounded once and saturated. A constant operand is
    quantized directly at frac c. Plain integer tensors add exactly."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_sum(ctx, [1, 1])

    @staticmethod
    def run(inputs, attrs, consts):
        return run_sum(inputs, attrs, consts)
