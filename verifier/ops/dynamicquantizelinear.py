import numpy as np

from verifier.fixedpoint import rounding_divide
from verifier.ops import CompileContext, Lowering
from verifier.ops._quantized import float32_of_ratio, rounded_quotient


class DynamicQuantizeLinear:
    """uint8 quantization with a scale from the data (onnxruntime's dynamic quantization of activations),
    from x = q * 2**-fx in integers only: m = min(0, min q), R = max(0, max q) - m (the range, exact);
    scale = the float32 nearest R * 2**-fx / 255, S * 2**-k with a 24-bit S (as the float division gives
    it; found exactly with integers); zero_point = clip(round(-m * 2**(k - fx) / S), 0, 255);
    y = clip(round(q * 2**(k - fx) / S) + zero_point, 0, 255), each quotient rounded as float32 division
    then half to even (_quantized.rounded_quotient: onnxruntime's float steps on integers); the scale
    output is S * 2**-k at its calibrated frac, rounded once. An all-zero x gives scale 0, zero point 0,
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
        fx = attrs["in_frac"]
        mantissa, k = float32_of_ratio(span << max(-fx, 0), 255 << max(fx, 0))
        up = k - fx  # x / scale = q * 2**up / mantissa
        bottom = mantissa << max(-up, 0)
        zero_point = int(np.clip(rounded_quotient(np.array(-low << max(up, 0)), bottom), 0, 255))
        y = np.clip(rounded_quotient(q << max(up, 0), bottom) + zero_point, 0, 255)
        up_to_scale = attrs["scale_frac"] - k
        scale = rounding_divide(np.array(mantissa << max(up_to_scale, 0)), 1 << max(-up_to_scale, 0))
        return [y, np.asarray(scale, dtype=np.int64), np.array(zero_point, dtype=np.int64)]

