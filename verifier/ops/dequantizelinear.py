import numpy as np

from verifier.fixedpoint import round_shift_each, saturate
from verifier.ops import CompileContext, Lowering
from verifier.ops._quantized import check_layout, per_axis, scale_parts, zero_point


class DequantizeLinear:
    """y = (x - zero_point) * scale at the output's calibrated frac fy: with scale = M * 2**E exactly (a
    float32), y_q = round_half_away((x - zp) * M * 2**(E + fy)) - an exact int64 product and one shift -
    saturated to 16 bits. x is a plain integer tensor (an int8 / uint8 / int16 / int32 activation; constant
    weights are folded at compile time). Per-tensor or per-axis scale and zero point (constants).
    Error: at most 0.5 output step."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        check_layout(ctx)
        if ctx.inputs[0].frac is not None:
            ctx.unsupported("needs an integer (quantized) input")
        mantissa, exponent = scale_parts(ctx)
        out_frac = ctx.out_frac()
        shift = -(exponent + out_frac)  # y_q = (x - zp) * M / 2**shift
        if np.any(shift < 0) or np.any(shift > 62):
            ctx.unsupported("a scale too far from the output's scale")
        consts = {"mantissa": mantissa, "shift": shift, "zero_point": zero_point(ctx)}
        return Lowering(out_fracs=[out_frac], attrs={"axis": int(ctx.attr("axis", 1))}, consts=consts,
                        absorbed={1, 2})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        mantissa, shift, zero = (per_axis(consts[key], attrs["axis"], x.ndim)
                                 for key in ("mantissa", "shift", "zero_point"))
        return [saturate(round_shift_each((x - zero) * mantissa, shift))]
