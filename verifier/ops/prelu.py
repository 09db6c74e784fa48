import numpy as np

from verifier.fixedpoint import round_shift, saturate
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import quantize_const, weight_frac


class PRelu:
    """y = q for q >= 0, else round_shift(q * slope_q, fs): the slope tensor (broadcast) is quantized at its
    16-bit frac fs; the output keeps the input's frac."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x, slope = ctx.inputs
        if not slope.is_const:
            ctx.unsupported("slope computed at run time")
        value = np.asarray(slope.value)
        if ctx.opset < 7 and value.ndim == 1 and x.shape and len(x.shape) > 2 and value.size == x.shape[1]:
            value = value.reshape((-1,) + (1,) * (len(x.shape) - 2))  # legacy: one slope per channel
        frac = weight_frac(value)
        return Lowering(out_fracs=[x.frac], attrs={"shift": frac},
                        consts={"slope": quantize_const(value, frac, 16)}, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        negative = saturate(round_shift(x * consts["slope"], attrs["shift"]))
        return [np.where(x >= 0, x, negative)]
