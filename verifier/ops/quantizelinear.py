import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._quantized import (RANGES, check_layout, per_axis, quantized_type, rounded_quotient, scale_parts,
                                     zero_point)

MAX_SHIFT = 40  # a scale finer than 2**-40 of the input's step: every |q| * 2**40 / M still fits int64


class QuantizeLinear:
    """y = saturate(round_half_even(x / scale) + zero_point) to the quantized type (uint8 by default; int8,
    uint16, int16, uint4, int4, int32), a plain integer tensor. With scale = M * 2**E exactly (a float32)
    and x = q * 2**-fx, x / scale = q / (M * 2**(E + fx)): a ratio of integers, rounded as float32 division
    rounds it (24 significant bits, ties to even) and then half to even to an integer, all by integer
    arithmetic (_quantized.rounded_quotient): onnxruntime's float steps, bit for bit. Per-tensor or per-axis
    scale and zero point (constants)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        check_layout(ctx)
        x = ctx.inputs[0]
        if x.frac is None:
            ctx.unsupported("needs a fixed-point (float) input")
        mantissa, exponent = scale_parts(ctx)
        low, high = RANGES[quantized_type(ctx)]
        shift = exponent + x.frac  # x / scale = q / (M * 2**shift); for shift >= 0 below 2**15 / 2**23: 0
        if np.any(shift < -MAX_SHIFT):
            ctx.unsupported("a scale over 2**40 times finer than the input's")
        consts = {"mantissa": mantissa, "shift": np.minimum(shift, 0),
                  "zero_point": zero_point(ctx)}
        attrs = {"axis": int(ctx.attr("axis", 1)), "low": low, "high": high}
        return Lowering(out_fracs=[None], attrs=attrs, consts=consts, absorbed={1, 2})

    @staticmethod
    def run(inputs, attrs, consts):
        q = inputs[0]
        mantissa, shift, zero = (per_axis(consts[key], attrs["axis"], q.ndim)
                                 for key in ("mantissa", "shift", "zero_point"))
        numerator = np.where(shift >= 0, 0, q << np.maximum(-shift, 0))  # (shift >= 0: quotient < 2**-8)
        whole = rounded_quotient(numerator, mantissa)
        return [np.clip(whole + zero, attrs["low"], attrs["high"])]
