import numpy as np

from verifier.fixedpoint import saturate
from verifier.nonlinear.roots import isqrt, sqrt_round
from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import reduce_attrs, summed


class ReduceL2:
    """y = round(sqrt(S) / 2**d), saturated, where S = exact int64 sum of q * q over the axes (the norm
    squared at 2**-2fx) and d = fx - fy >= 0 (fy: the calibrated output frac, never finer than fx since
    the norm is at least every |x|). With r = isqrt(S): y = (r + 2**(d-1)) >> d for d >= 1 (the floor of
    sqrt(S) / 2**d + 1/2, since adding an integer commutes with the floor), sqrt_round(S) for d = 0.
    Error: at most 0.5 output step from the norm of the quantized input. Plain integer tensors: unsupported."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if ctx.inputs[0].frac is None:
            ctx.unsupported("ReduceL2 of a plain integer tensor")
        attrs = reduce_attrs(ctx)
        x_frac = ctx.inputs[0].frac
        out_frac = min(ctx.out_frac(), x_frac)
        attrs.update({"in_frac": x_frac, "out_frac": out_frac})
        return Lowering(out_fracs=[out_frac], attrs=attrs, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        total = summed(x * x, attrs)
        shift = attrs["in_frac"] - attrs["out_frac"]
        if shift == 0:
            return [saturate(sqrt_round(total))]
        if shift > 62:  # isqrt(S) < 2**32 rounds to 0
            return [np.zeros(np.shape(total), dtype=np.int64)]
        return [saturate((isqrt(total) + np.int64(1 << (shift - 1))) >> shift)]
