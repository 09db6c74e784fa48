from verifier.ops import CompileContext, Lowering
from verifier.ops._binary import bind_multiply, lower_product, run_product
from verifier.ops._ranges import requantized


class Mul:
    """y = requantize(a * b, fa + fb, fy): the exact int64 product, rounded once. A constant operand is
    quantized at its own 16-bit frac (weight_frac). x * sigmoid(x) (SiLU) is this op on two tensors."""

    range_bits = staticmethod(requantized)  # (saturated at 16 bits: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_product(ctx)

    @staticmethod
    def run(inputs, attrs, consts):
        return run_product(inputs, attrs, consts)

    bind = staticmethod(bind_multiply)  # (interpreter replays)
