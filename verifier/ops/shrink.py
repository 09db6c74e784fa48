from verifier.ops import CompileContext, Lowering
from verifier.ops._table import lower_table, run_table


class Shrink:
    """f(x) = x + bias for x < -lambd, x - bias for x > lambd, 0 otherwise (float32 attributes, defaults
    bias 0, lambd 0.5): hard shrink with bias 0, soft shrink with bias = lambd.
    A lookup table over every 16-bit input q (docs/fixed-point-nonlinear.md, "Tables"):
    T[i] = round_half_away(f((lo + i) * 2**-f_in) * 2**f_out), saturated to 16 bits, equal tails trimmed;
    y = T[clip(q, lo, lo + len(T) - 1) - lo]. Error: at most 0.5 output step from f of the input's exact value."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        bias, lambd = float(ctx.attr("bias", 0.0)), float(ctx.attr("lambd", 0.5))
        return lower_table(ctx, lambda x, m: m.where(x < -lambd, x + bias, m.where(x > lambd, x - bias, 0 * x)))

    run = staticmethod(run_table)
