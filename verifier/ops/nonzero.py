import numpy as np

from verifier.ops import CompileContext, Lowering


class NonZero:
    """The indices of the nonzero elements, (rank, count) in row-major order, as plain int64 (a fixed-point
    q is nonzero exactly when its real value is). The output's size comes from the values."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[None])

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        return [np.array(np.nonzero(x), dtype=np.int64).reshape(max(x.ndim, 1), -1) if x.ndim else
                np.zeros((0, int(x != 0)), dtype=np.int64)]

    @staticmethod
    def output_size(inputs, attrs, consts):
        return int(np.count_nonzero(inputs[0])) * max(inputs[0].ndim, 1)
