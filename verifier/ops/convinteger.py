import math

import numpy as np

from verifier import cost
from verifier.kernels import conv, plan_conv
from verifier.kernels.window import kernel_size
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import kernel_path, window_geometry
from verifier.ops._quantized import centered_weights
from verifier.ops.conv import conv_output_spatial


class ConvInteger:
    """y = Conv(x - x_zero_point, w - w_zero_point), exact int64 (ONNX's int32 for 8-bit operands), a plain
    integer tensor: the padding holds x's zero point (zero after the subtraction). w and its zero point (one
    value or one per output channel) are constants, subtracted at compile time; the product runs on the exact
    conv paths of Conv. Strides, pads (auto_pad), dilations, groups."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        weight = centered_weights(ctx, 1, 3)
        _, strides, pads, dilations = window_geometry(ctx, weight.shape)
        attrs = {"strides": strides, "pads": pads, "dilations": dilations, "group": int(ctx.attr("group", 1))}
        return Lowering(out_fracs=[None], attrs=attrs, consts={"weight": weight}, absorbed={1, 3})

    output_size_from_shapes = True

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        x_zero = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.zeros((), np.int64)
        return [conv(x - x_zero.reshape(()), consts["weight"], strides=attrs["strides"], pads=attrs["pads"],
                     dilations=attrs["dilations"], group=attrs["group"], path=kernel_path())]

    @staticmethod
    def cost(shapes, attrs, consts):
        """Units: MACs at the weight of the exact path for the weights' bound, plus the im2col columns and one
        pass over input and output."""
        x, w = shapes[0], consts["weight"].shape
        out = conv_output_spatial(x, w, attrs)
        positions = int(x[0]) * math.prod(out)
        plan = plan_conv(tuple(x), w, attrs["group"], 255, int(np.max(np.abs(consts["weight"]), initial=0)),
                         strides=attrs["strides"], pads=attrs["pads"], dilations=attrs["dilations"])
        macs = positions * int(w[0]) * math.prod(int(d) for d in w[1:])
        columns = positions * int(w[1]) * attrs["group"] * kernel_size(w[2:])
        return macs * cost.mac_weight(plan.path) + columns * cost.COLUMN + (
            math.prod(int(d) for d in x) + positions * int(w[0])) * cost.ARITH

    @staticmethod
    def output_size(inputs, attrs, consts):
        x, w = inputs[0].shape, consts["weight"].shape
        positions = int(x[0]) * math.prod(conv_output_spatial(x, w, attrs))
        return max(positions * int(w[0]), positions * int(w[1]) * attrs["group"] * kernel_size(w[2:]))

