import numpy as np

from verifier.fixedpoint import ACT_BITS, qmax, requantize
from verifier.nonlinear.exp_log import MANT, ln
from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import lower_to_calibrated, summed


class ReduceLogSum:
    """y = requantize(ln(S * 2**-fx), 30, fy) with S the exact int64 sum over the axes (ln from log2 of S times
    ln2, at 2**-30), at the output's calibrated frac fy; S = 0 (-inf) gives -qmax, S < 0 (NaN) gives 0, as
    the Log table. Error: at most 0.5 output step plus 2**-26."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_to_calibrated(ctx)

    @staticmethod
    def run(inputs, attrs, consts):
        total = summed(inputs[0], attrs)
        value = requantize(ln(total, attrs["in_frac"]), MANT, attrs["out_frac"])
        return [np.where(total > 0, value, np.where(total == 0, -qmax(ACT_BITS), 0))]
