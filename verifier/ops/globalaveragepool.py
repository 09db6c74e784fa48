import numpy as np

from verifier.fixedpoint import rounding_divide
from verifier.ops import CompileContext, Lowering
from verifier.ops._ranges import of_first_input


class GlobalAveragePool:
    """y[n, c] = rounding_divide(sum of x[n, c, ...], number of spatial elements), kept as size-1 spatial
    dims. Output frac = input frac."""

    range_bits = staticmethod(of_first_input)  # (rounded averages of its input: _ranges.py)
    reads_narrow = True  # run sums an int16 input in int64 (replays.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[ctx.inputs[0].frac])

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        axes = tuple(range(2, x.ndim))
        count = int(np.prod(x.shape[2:], dtype=np.int64))
        return [rounding_divide(x.sum(axis=axes, keepdims=True, dtype=np.int64), max(count, 1))]
