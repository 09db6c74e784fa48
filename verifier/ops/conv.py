import math

import numpy as np

from verifier.fixedpoint import ACT_BITS, qmax, requantize
from verifier.kernels import conv, plan_conv
from verifier.kernels.window import normalize, output_shape
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import auto_pads, kernel_path, prepared, quantize_const, weight_frac

BIAS_BITS = 61  # a bias may dwarf the products at the accumulator scale; int64 still holds the sum


class Conv:
    """ONNX Conv (1-D/2-D/3-D; strides, pads incl. auto_pad, dilations, groups incl. depthwise).
    W is quantized at its 16-bit frac fw, the bias B at the accumulator frac fx + fw;
    acc[n, o, p] = sum over the window and the group's input channels of w * x, exact in int64 (fast:
    im2col + float BLAS under K * |x| * |w| < 2**53, K-chunked otherwise; reference: direct int64
    loops; identical bits); y = requantize(acc + B[o], fx + fw, fy)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x, w = ctx.inputs[0], ctx.inputs[1]
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        if not w.is_const:
            ctx.unsupported("weights computed at run time")
        if x.frac is None:
            ctx.unsupported("convolution of a plain integer tensor")
        weight = np.asarray(w.value, dtype=np.float64)
        rank = weight.ndim - 2
        kernel = list(ctx.attr("kernel_shape", weight.shape[2:]))
        strides = list(ctx.attr("strides", [1] * rank))
        dilations = list(ctx.attr("dilations", [1] * rank))
        pads = auto_pads(ctx, kernel, strides, dilations)
        normalize(rank, strides, pads, dilations)
        w_frac = weight_frac(weight)
        consts = {"weight": quantize_const(weight, w_frac, 16)}
        absorbed = {1}
        if bias is not None:
            if not bias.is_const:
                ctx.unsupported("bias computed at run time")
            consts["bias"] = quantize_const(np.asarray(bias.value, dtype=np.float64), x.frac + w_frac, BIAS_BITS)
            absorbed.add(2)
        group = int(ctx.attr("group", 1))
        w_bound = int(np.max(np.abs(consts["weight"]))) if weight.size else 0
        plan = plan_conv(x.shape, weight.shape, group, qmax(ACT_BITS), w_bound)
        out_frac = ctx.out_frac()
        attrs = {"strides": strides, "pads": pads, "dilations": dilations, "group": group,
                 "acc_frac": x.frac + w_frac, "out_frac": out_frac, "path": plan.path, "path_reason": plan.reason}
        return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed=absorbed)

    @staticmethod
    def run(inputs, attrs, consts):
        acc = conv(inputs[0], prepared(consts["weight"]), strides=attrs["strides"], pads=attrs["pads"],
                   dilations=attrs["dilations"], group=attrs["group"], path=kernel_path())
        if "bias" in consts:
            acc += consts["bias"].reshape((1, -1) + (1,) * (acc.ndim - 2))
        return [requantize(acc, attrs["acc_frac"], attrs["out_frac"])]

    @staticmethod
    def cost(shapes, attrs, consts):
        x, w = shapes[0], consts["weight"].shape
        rank = len(w) - 2
        out = output_shape(x[2:], w[2:], *normalize(rank, attrs["strides"], attrs["pads"], attrs["dilations"]))
        return int(x[0]) * int(w[0]) * math.prod(out) * math.prod(w[1:])
