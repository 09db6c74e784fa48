import numpy as np

from verifier.fixedpoint import ACT_BITS, rounding_divide, round_shift, saturate
from verifier.ops import CompileContext, Lowering
from verifier.ops._binary import lower_sum


class Mean:
    """y = saturate(rounding_divide(Σ x_i at the common frac c, n * 2**(c - fy))): the n operands are
    summed exactly at c = max(f_i, fy) (numpy broadcasting), then divided and rescaled with one rounding."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        lowering = lower_sum(ctx, [1] * len(ctx.inputs))
        if lowering.attrs.get("integer"):
            ctx.unsupported("Mean of plain integer tensors")
        lowering.attrs["count"] = len(ctx.inputs)
        return lowering

    @staticmethod
    def run(inputs, attrs, consts):
        total = None
        for index, x in enumerate(inputs):
            x = consts[f"k{index}"] if x is None else round_shift(x, -attrs["shifts"][index])
            total = x if total is None else total + x
        divisor = attrs["count"] << (attrs["acc_frac"] - attrs["out_frac"])
        return [saturate(rounding_divide(total, divisor), ACT_BITS)]
