import math

from verifier.ops import CompileContext, Lowering
from verifier.ops._table import lower_table, run_table


class Gelu:
    """f(x) = x/2 * (1 + erf(x / sqrt(2))), or with approximate="tanh"
    x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3))) (opset 20).
    A lookup table over every 16-bit input q (docs/fixed-point-nonlinear.md, "Tables"):
    T[i] = round_half_away(f((lo + i) * 2**-f_in) * 2**f_out), saturated to 16 bits, equal tails trimmed;
    y = T[clip(q, lo, lo + len(T) - 1) - lo]. Error: at most 0.5 output step from f of the input's exact value."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        approximate = ctx.attr("approximate", "none")
        if approximate == "none":
            return lower_table(ctx, lambda x, m: x / 2 * (1 + m.erf(x / m.sqrt(2))))
        if approximate == "tanh":
            c = math.sqrt(2 / math.pi)
            return lower_table(ctx, lambda x, m: x / 2 * (1 + m.tanh(c * (x + 0.044715 * x * x * x))))
        ctx.unsupported(f"approximate={approximate!r}")

    run = staticmethod(run_table)
