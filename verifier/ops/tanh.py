from verifier.ops import CompileContext, Lowering
from verifier.nonlinear.tables import tanh
from verifier.ops._table import lower_table, run_table


class Tanh:
    """f(x) = tanh(x).
    A lookup table over every 16-bit input q (docs/fixed-point-nonlinear.md, "Tables"):
    T[i] = round_half_away(f((lo + i) * 2**-f_in) * 2**f_out), saturated to 16 bits, equal tails trimmed;
    y = T[clip(q, lo, lo + len(T) - 1) - lo]. Error: at most 0.5 output step from f of the input's exact value.
    f_out: from the largest |f| over the representable inputs, tightened to the calibrated output range."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_table(ctx, tanh)

    run = staticmethod(run_table)
