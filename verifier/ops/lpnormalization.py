import numpy as np

from verifier.fixedpoint import bit_length, rounding_divide, saturate, with_sign_of
from verifier.nonlinear.roots import divide, sqrt_round
from verifier.ops import CompileContext, Lowering


class LpNormalization:
    """y = x / ||x||_p along `axis` (p = 1 or 2), at the output's calibrated frac fy, correctly rounded
    quotients. p = 1: S = exact sum of |q| at fx, y = divide(q, fx, S, fx, fy) (roots.divide). p = 2:
    S = exact sum of q * q at 2 fx, h the shift putting S * 4**h in [2**60, 2**62), r = sqrt_round(S * 4**h)
    (sqrt(S) * 2**h, relative error below 2**-31), y = rounding_divide(|q| * 2**(h + fy), r) with q's sign
    (fx cancels; h + fy capped at 46 so the product stays in int64), saturated. A zero vector gives 0.
    Error: 0.5 output step (p = 1); 0.5 step plus
    2**-31 * |y| in steps (p = 2)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        p = int(ctx.attr("p", 2))
        if p not in (1, 2):
            ctx.unsupported(f"p={p} (only 1 and 2)")
        x = ctx.inputs[0]
        if x.frac is None:
            ctx.unsupported("needs a fixed-point (float) input")
        out_frac = ctx.out_frac()
        return Lowering(out_fracs=[out_frac], attrs={"axis": int(ctx.attr("axis", -1)), "p": p, "in_frac": x.frac,
                                                      "out_frac": out_frac})

    @staticmethod
    def run(inputs, attrs, consts):
        x, fx, fy = inputs[0], attrs["in_frac"], attrs["out_frac"]
        axis = attrs["axis"] % x.ndim
        if attrs["p"] == 1:
            return [divide(x, fx, np.sum(np.abs(x), axis=axis, keepdims=True), fx, fy)]
        total = np.sum(x * x, axis=axis, keepdims=True)
        half_shift = (62 - bit_length(np.maximum(total, 1))) >> 1
        root = sqrt_round(total << (2 * half_shift))  # sqrt(S) * 2**half_shift
        numerator = np.abs(x) << np.clip(half_shift + fy, 0, 62 - 16)
        magnitude = np.where(root == 0, 0, rounding_divide(numerator, np.maximum(root, 1)))
        return [saturate(with_sign_of(x, magnitude))]
