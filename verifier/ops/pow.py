import numpy as np

from verifier.nonlinear.exp_log import integer_power, pow_tensor
from verifier.ops import CompileContext, Lowering
from verifier.ops._table import lower_table, run_table


class Pow:
    """y = x ** p. A constant exponent p (all elements equal, not widening the base's shape) is a table:
    A lookup table over every 16-bit input q (docs/fixed-point-nonlinear.md, "Tables"):
    T[i] = round_half_away(f((lo + i) * 2**-f_in) * 2**f_out), saturated to 16 bits, equal tails trimmed;
    y = T[clip(q, lo, lo + len(T) - 1) - lo]. Error: at most 0.5 output step from f of the input's exact value.
    Outside the real domain (negative x with a non-integer p: NaN in float) the table holds 0; 0 ** -p
    saturates.
    A run-time exponent (fixed-point, or plain integers taken at frac 0) uses pow_tensor of
    docs/fixed-point-nonlinear.md: exp2 of the rounded p * log2|x|, the sign from an integer p; at most
    0.501 output step from the exact power of the inputs' exact values.
    Plain integers (both operands) are raised exactly by binary exponentiation; a result beyond the int64
    range is an error, never a wrap; a negative exponent truncates 1 / x**|p| toward zero."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        base, exponent = ctx.inputs
        if base.frac is None and exponent.frac is None:
            return Lowering(out_fracs=[None], attrs={"integer": 1})
        if base.frac is None:
            ctx.unsupported("raises a plain integer tensor to a fixed-point (float) exponent")
        values = np.unique(np.asarray(exponent.value, dtype=np.float64)) if exponent.is_const else None
        one_value = values is not None and values.size == 1 and base.shape is not None and None not in base.shape
        if not one_value or np.broadcast_shapes(tuple(base.shape), np.shape(exponent.value)) != tuple(base.shape):
            out_frac = ctx.out_frac()
            attrs = {"x_frac": base.frac, "p_frac": exponent.frac or 0, "out_frac": out_frac}
            return Lowering(out_fracs=[out_frac], attrs=attrs)
        p = float(values[0])
        if p == int(p):
            return lower_table(ctx, lambda x, m: x ** int(p) if p >= 0 else 1 / x ** int(-p))
        return lower_table(ctx, lambda x, m: m.where(x >= 0, m.abs(x) ** p, x * 0 + float("nan")))

    @staticmethod
    def run(inputs, attrs, consts):
        if "table" in consts:
            return run_table(inputs, attrs, consts)
        x, p = inputs
        if attrs.get("integer"):
            return [integer_power(x, p)]
        return [pow_tensor(x, attrs["x_frac"], p, attrs["p_frac"], attrs["out_frac"])]
