import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._table import lower_table, run_table


class Pow:
    """y = x ** p for a constant exponent p (all elements of the exponent tensor equal).
    A lookup table over every 16-bit input q (docs/fixed-point-nonlinear.md, "Tables"):
    T[i] = round_half_away(f((lo + i) * 2**-f_in) * 2**f_out), saturated to 16 bits, equal tails trimmed;
    y = T[clip(q, lo, lo + len(T) - 1) - lo]. Error: at most 0.5 output step from f of the input's exact value.
    Outside the real domain (negative x with a non-integer p: NaN in float) the table holds 0; 0 ** -p
    saturates."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        base, exponent = ctx.inputs
        if not exponent.is_const:
            ctx.unsupported("the exponent must be a constant")
        values = np.unique(np.asarray(exponent.value, dtype=np.float64))
        if values.size != 1:
            ctx.unsupported("the exponent must be one value (a scalar or a tensor of equal elements)")
        if np.broadcast_shapes(tuple(base.shape or ()), np.shape(exponent.value)) != tuple(base.shape or ()):
            ctx.unsupported("the exponent tensor would broadcast the base to a larger shape")
        p = float(values[0])
        if p == int(p):
            return lower_table(ctx, lambda x, m: x ** int(p) if p >= 0 else 1 / x ** int(-p))
        return lower_table(ctx, lambda x, m: m.where(x >= 0, m.abs(x) ** p, x * 0 + float("nan")))

    run = staticmethod(run_table)
