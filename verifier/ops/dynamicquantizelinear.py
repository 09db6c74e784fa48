import numpy as np

from verifier.fixedpoint import rounding_divide
from verifier.ops import CompileContext, Lowering
from verifier.ops._quantized import float32_of_ratio, rounded_quotient


class DynamicQuantizeLinear:
    """uint8 quantization with a scale from the data (onnxruntime's dynamic quantization of activations),
    exactly, from x = q * 2**-fx: m = min(0, min q), M = max(0, max q), R = M - m (the range, exact);
    scale = R * 2**-fx / 255 (output at its calibrated frac, rounded once); zero_point =
    clip(roundhalf_even(-m * 255 / R), 0, 255); y = clip(roundhalf_even(q * 255 / R) + zero_point, 0, 255)
    - ratios of integers, rounded by integer division, no float. An all-zero x gives scale 0, zero point 0,
    y = 0."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x = ctx.inputs[0]
        if x.frac is None:
            ctx.unsupported("needs a fixed-point (float) input")
        names = ctx.output_names
        scale_frac = ctx.out_frac(1) if len(names) > 1 and names[1] else 0
        return Lowering(out_fracs=[None, scale_frac, None][:len(names)],
                        attrs={"in_frac": x.frac, "scale_frac": scale_frac})

    @staticmethod
    def run(inputs, attrs, consts):
        q = inputs[0]
        low = min(int(q.min(initial=0)), 0)
        span = max(int(q.max(initial=0)), 0) - low
        if span == 0:
            zeros = np.zeros(q.shape, dtype=np.int64)
            return [zeros, np.array(0, dtype=np.int64), np.array(0, dtype=np.int64)]
        mantissa, k = float32_of_ratio(span, 255 << attrs["in_frac"]) if attrs["in_frac"] >= 0 else \
            float32_of_ratio(span << -attrs["in_frac"], 255)
        up = k - attrs["in_frac"]  # x / scale = q * 2**up / mantissa
        top = (lambda v: v << up) if up >= 0 else (lambda v: v)
        bottom = mantissa if up >= 0 else mantissa << -up
        zero_point = int(np.clip(rounded_quotient(np.array(top(-low)), bottom), 0, 255))
        y = np.clip(rounded_quotient(top(q), bottom) + zero_point, 0, 255)
        up_to_scale = attrs["scale_frac"] - k
        scale = rounding_divide(np.array(mantissa << max(up_to_scale, 0)), 1 << max(-up_to_scale, 0))
        return [y, np.asarray(scale, dtype=np.int64), np.array(zero_point, dtype=np.int64)]

