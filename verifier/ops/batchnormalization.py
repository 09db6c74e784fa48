import numpy as np

from verifier.fixedpoint import ACT_BITS, qmax, requantize
from verifier.kernels import loops
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import kernel_path, quantize_const, weight_frac
from verifier.ops._ranges import requantized

BIAS_BITS = 61  # a bias may dwarf the products at the accumulator scale; int64 still holds the sum


class BatchNormalization:
    """Inference BatchNormalization not folded into a Conv/Gemm: a per-channel (axis 1) affine map.
    s = gamma / sqrt(var + eps) is quantized at its 16-bit frac fs, t = beta - mean * s at fx + fs;
    y = requantize(x * s[c] + t[c], fx + fs, fy), then max(y, 0) with a fused Relu (fast: one compiled pass)."""

    range_bits = staticmethod(requantized)  # (_ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x = ctx.inputs[0]
        params = ctx.inputs[1:5]
        if any(p is None or not p.is_const for p in params) or ctx.attr("training_mode", 0):
            ctx.unsupported("needs constant scale, bias, mean and variance (inference mode)")
        if x.frac is None:
            ctx.unsupported("plain integer input")
        gamma, beta, mean, var = (np.asarray(p.value, dtype=np.float64) for p in params)
        scale = gamma / np.sqrt(var + float(ctx.attr("epsilon", 1e-5)))
        shift = beta - mean * scale
        s_frac = weight_frac(scale)
        out_frac = ctx.out_frac()
        consts = {"scale": quantize_const(scale, s_frac, 16), "shift": quantize_const(shift, x.frac + s_frac, BIAS_BITS)}
        return Lowering(out_fracs=[out_frac], attrs={"acc_frac": x.frac + s_frac, "out_frac": out_frac},
                        consts=consts, absorbed={1, 2, 3, 4})

    fuses_relu = True  # run applies attrs["relu"]

    @staticmethod
    def run(inputs, attrs, consts):
        x, relu = inputs[0], bool(attrs.get("relu"))
        shift = attrs["acc_frac"] - attrs["out_frac"]
        scale, offset = consts["scale"].reshape(-1), consts["shift"].reshape(-1)
        if (kernel_path() == "fast" and 0 < shift <= 62 and x.ndim >= 2 and x.size
                and x.shape[1] == scale.size == offset.size):  # one compiled pass: the integers of the form below
            x = np.ascontiguousarray(x, dtype=np.int64)
            out = np.empty_like(x)
            rows = (x.shape[0], x.shape[1], -1)
            loops.affine_requantize(x.reshape(rows), scale, offset, shift, 0 if relu else -qmax(ACT_BITS),
                                    qmax(ACT_BITS), not relu, out.reshape(rows))
            return [out]
        channel = (1, -1) + (1,) * (x.ndim - 2)
        out = requantize(x * consts["scale"].reshape(channel) + consts["shift"].reshape(channel), attrs["acc_frac"],
                         attrs["out_frac"])
        return [np.maximum(out, 0, out=out) if relu else out]
