import numpy as np

from verifier.kernels import conv
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import kernel_path, window_geometry
from verifier.ops._quantized import centered_weights, lower_requantization, requantized_output
from verifier.ops.convinteger import ConvInteger


class QLinearConv:
    """Quantized Conv (inputs x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point,
    B): acc = Conv(x - zx, w - zw) + B exact in int64 (ConvInteger's paths; w, its zero point - one value or
    one per output channel - and the int32 bias are constants); y = clip(round(acc * m[c]) + zy) with
    m[c] = fl(fl(sx * sw[c]) / sy), every float32 step of onnxruntime's requantization replicated exactly on
    integers (_quantized.requantized_output). A plain integer tensor of y_zero_point's type."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        weight = centered_weights(ctx, 3, 5)
        _, strides, pads, dilations = window_geometry(ctx, weight.shape)
        attrs, consts = lower_requantization(ctx, 1, 4, 6)
        attrs.update(strides=strides, pads=pads, dilations=dilations, group=int(ctx.attr("group", 1)))
        consts["weight"] = weight
        bias = ctx.inputs[8] if len(ctx.inputs) > 8 else None
        if bias is not None:
            if not bias.is_const:
                ctx.unsupported("a bias computed at run time")
            consts["bias"] = np.asarray(bias.value).astype(np.int64)
        return Lowering(out_fracs=[None], attrs=attrs, consts=consts, absorbed={1, 3, 4, 5, 6, 7, 8})

    output_size_from_shapes = True

    @staticmethod
    def run(inputs, attrs, consts):
        x, x_zero = inputs[0], inputs[2]
        x_zero = np.zeros((), np.int64) if x_zero is None else x_zero.reshape(())
        acc = conv(x - x_zero, consts["weight"], strides=attrs["strides"], pads=attrs["pads"],
                   dilations=attrs["dilations"], group=attrs["group"], path=kernel_path())
        if "bias" in consts:
            acc = acc + consts["bias"].reshape((1, -1) + (1,) * (acc.ndim - 2))
        return [requantized_output(acc, attrs, consts, channel_axis=1)]

    cost = staticmethod(ConvInteger.cost)
    output_size = staticmethod(ConvInteger.output_size)
