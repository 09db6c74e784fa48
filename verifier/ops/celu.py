from verifier.ops import CompileContext, Lowering
from verifier.ops._table import lower_table, run_table


class Celu:
    """f(x) = max(0, x) + min(0, alpha * (exp(x / alpha) - 1)) (alpha: float32 attribute, default 1).
    A lookup table over every 16-bit input q (docs/fixed-point-nonlinear.md, "Tables"):
    T[i] = round_half_away(f((lo + i) * 2**-f_in) * 2**f_out), saturated to 16 bits, equal tails trimmed;
    y = T[clip(q, lo, lo + len(T) - 1) - lo]. Error: at most 0.5 output step from f of the input's exact value."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        alpha = float(ctx.attr("alpha", 1.0))
        if alpha == 0.0:
            ctx.unsupported("alpha = 0")
        return lower_table(ctx, lambda x, m: m.maximum(x, 0) + m.minimum(0, alpha * m.expm1(m.minimum(x, 0) / alpha)))

    run = staticmethod(run_table)
