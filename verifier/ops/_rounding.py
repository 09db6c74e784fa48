"""Shared by Floor, Ceil and Round: the real value q * 2**-f rounded to an integer, exactly on q."""

import numpy as np

from verifier.fixedpoint import round_half_even, saturate
from verifier.ops import CompileContext, Lowering


class Rounding:
    """y = the real value q * 2**-f rounded to an integer (`mode`, in the subclass), computed on q with shifts
    and a comparison with the remainder, back at frac f (saturated: a ceil may pass qmax); exact. Plain
    integers are unchanged."""

    mode = None

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x = ctx.inputs[0]
        return Lowering(out_fracs=[x.frac], attrs={} if x.frac is None else {"frac": x.frac})

    @classmethod
    def run(cls, inputs, attrs, consts):
        return [rounded(inputs[0], attrs, cls.mode)]


def rounded(x: np.ndarray, attrs: dict, mode: str) -> np.ndarray:
    """floor / ceil / half-to-even of q * 2**-f, back at frac f and saturated (a ceil may pass qmax)."""
    frac = attrs.get("frac", 0)
    if frac <= 0:
        return x
    if mode == "half_even":
        return saturate(round_half_even(x, 1 << frac) << frac)
    whole = x >> frac  # floor
    if mode == "ceil":
        whole = whole + (x - (whole << frac) > 0)
    return saturate(whole << frac)
