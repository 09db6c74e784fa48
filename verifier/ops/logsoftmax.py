from verifier.nonlinear.exp_log import log_softmax
from verifier.ops import CompileContext, Lowering
from verifier.ops._softmax import log_softmax_out_frac, lower_softmax, run_on_axis


class LogSoftmax:
    """Along `axis` (docs/fixed-point-nonlinear.md, "Log-softmax"): t = max(q) - q; s = sum(exp_neg(t, f_in))
    (at 2**-30, >= 2**30); ln_s = round((log2(s) - 30 * 2**30) * ln2_q25 / 2**25);
    y = round_half_away((-t * 2**(30 - f_in) - ln_s) / 2**(30 - f_out)), saturated.
    f_out from the calibrated output range. Error: at most 0.501 output step from the exact log-softmax.
    Opset < 13 flattens the input to 2-D at `axis` first (the old ONNX semantics)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_softmax(ctx, log_softmax_out_frac(ctx))

    @staticmethod
    def run(inputs, attrs, consts):
        return [run_on_axis(log_softmax, inputs[0], attrs)]
