import numpy as np

from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._align import align_operands, aligned


class Where:
    """y = cond ? a : b (cond a plain integer tensor, nonzero = true; numpy broadcasting). Fixed-point a and
    b are taken exactly to the common frac c = max(fa, fb) and the result requantized to min(fa, fb) of
    the run-time operands (exact when equal); constants are quantized at c."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if ctx.inputs[0].frac is not None:
            ctx.unsupported("the condition must be a boolean/integer tensor")
        attrs, consts, absorbed, common = align_operands(ctx, [1, 2])
        if common is None:
            return Lowering(out_fracs=[None], attrs=attrs)
        runtime = [o.frac for o in ctx.inputs[1:] if not o.is_const]
        attrs["out_frac"] = min(runtime) if runtime else ctx.out_frac()
        return Lowering(out_fracs=[attrs["out_frac"]], attrs=attrs, consts=consts, absorbed=absorbed)

    @staticmethod
    def run(inputs, attrs, consts):
        chosen = np.where(inputs[0] != 0, aligned(inputs, attrs, consts, 1), aligned(inputs, attrs, consts, 2))
        if attrs.get("integer"):
            return [chosen]
        return [requantize(chosen, attrs["common"], attrs["out_frac"])]
