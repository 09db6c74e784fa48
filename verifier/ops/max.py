import functools

import numpy as np

from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._align import align_operands, aligned


class Max:
    """Elementwise maximum of all operands (numpy broadcasting), compared exactly at the common frac
    c = max(f_i), then requantized to the smallest operand frac (exact when all fracs are equal)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        indices = list(range(len(ctx.inputs)))
        attrs, consts, absorbed, common = align_operands(ctx, indices)
        if common is None:
            return Lowering(out_fracs=[None], attrs=attrs)
        out_frac = min(o.frac for o in ctx.inputs if not o.is_const) if any(not o.is_const for o in ctx.inputs) else common
        attrs["out_frac"] = out_frac
        attrs["count"] = len(indices)
        return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed=absorbed)

    @staticmethod
    def run(inputs, attrs, consts):
        values = [aligned(inputs, attrs, consts, i) for i in range(len(inputs))]
        result = functools.reduce(np.maximum, values)
        if attrs.get("integer"):
            return [result]
        return [requantize(result, attrs["common"], attrs["out_frac"])]
