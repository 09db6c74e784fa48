from verifier.fixedpoint import requantize
from verifier.nonlinear.exp_log import MANT, log_sum_exp
from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import grouped, lower_to_calibrated


class ReduceLogSumExp:
    """y = requantize(m + ln(sum exp_neg(m - q)), 30, fy) over the axes, m the maximum (at 2**-30: the
    maximum shifted, the log from log2 of the sum times ln2; docs/fixed-point-nonlinear.md, "Log-softmax"
    has the same steps), at the output's calibrated frac fy. Error: at most 0.5 output step plus 2**-26.
    An empty reduction (-inf) is a run error."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_to_calibrated(ctx)

    @staticmethod
    def run(inputs, attrs, consts):
        rows, shape = grouped(inputs[0], attrs)
        if rows.shape[-1] == 0:
            raise ValueError("ReduceLogSumExp over no elements (-inf)")
        return [requantize(log_sum_exp(rows, attrs["in_frac"]), MANT, attrs["out_frac"]).reshape(shape)]
