import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._align import align_operands, aligned


class Greater:
    """y = (a > b) as a plain 0/1 integer tensor, both operands compared exactly at the common frac
    max(fa, fb) (a constant operand is quantized at that frac); numpy broadcasting."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        attrs, consts, absorbed, _ = align_operands(ctx, [0, 1])
        return Lowering(out_fracs=[None], attrs=attrs, consts=consts, absorbed=absorbed)

    @staticmethod
    def run(inputs, attrs, consts):
        return [np.greater(aligned(inputs, attrs, consts, 0), aligned(inputs, attrs, consts, 1)).astype(np.int64)]
