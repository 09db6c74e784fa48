from verifier.ops import CompileContext, Lowering
from verifier.ops._table import lower_table, run_table


class HardSigmoid:
    """f(x) = max(0, min(1, alpha * x + beta)) (float32 attributes, defaults 0.2 and 0.5).
    A lookup table over every 16-bit input q (docs/fixed-point-nonlinear.md, "Tables"):
    T[i] = round_half_away(f((lo + i) * 2**-f_in) * 2**f_out), saturated to 16 bits, equal tails trimmed;
    y = T[clip(q, lo, lo + len(T) - 1) - lo]. Error: at most 0.5 output step from f of the input's exact value."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        alpha, beta = float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5))
        return lower_table(ctx, lambda x, m: m.maximum(0, m.minimum(1, alpha * x + beta)))

    run = staticmethod(run_table)
