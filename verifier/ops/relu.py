import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._ranges import of_first_input


class Relu:
    """y = max(q, 0). The output keeps the input's frac, so no rounding happens."""

    range_bits = staticmethod(of_first_input)  # (its values are its input's: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[ctx.inputs[0].frac])

    @staticmethod
    def run(inputs, attrs, consts):
        (x,) = inputs
        return [np.maximum(x, 0)]
