from verifier.ops import CompileContext, Lowering
from verifier.ops._table import lower_table, run_table


class LogSigmoid:
    """f(x) = ln(sigmoid(x)) = min(x, 0) - ln(1 + exp(-|x|)). Not an ONNX op: the compiler's fusion of
    Log(Sigmoid(x)) (verifier/compiler/fuse_tables.py), torch's LogSigmoid export.
    A lookup table over every 16-bit input q (docs/fixed-point-nonlinear.md, "Tables"):
    T[i] = round_half_away(f((lo + i) * 2**-f_in) * 2**f_out), saturated to 16 bits, equal tails trimmed;
    y = T[clip(q, lo, lo + len(T) - 1) - lo]. Error: at most 0.5 output step from f of the input's exact value.
    f_out: from the largest |f| over the representable inputs, tightened to the calibrated output range."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_table(ctx, lambda x, m: m.minimum(x, 0) - m.log1p(m.exp(-m.abs(x))))

    run = staticmethod(run_table)
