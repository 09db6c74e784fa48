import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints


class Expand:
    """Broadcast x to np.broadcast_shapes(x.shape, shape) (the ONNX rule); values and frac unchanged. The
    shape is a program constant or a run-time integer tensor (metered by the output size)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        shape = const_ints(ctx, 1, "shape")
        if shape is None:
            return Lowering(out_fracs=[ctx.inputs[0].frac])
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs={"shape": shape}, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        return [np.broadcast_to(x, _target(x.shape, inputs, attrs)).copy()]

    @staticmethod
    def output_size(inputs, attrs, consts):
        return int(np.prod(_target(inputs[0].shape, inputs, attrs), dtype=object))


def _target(x_shape, inputs, attrs):
    shape = attrs["shape"] if "shape" in attrs else [int(d) for d in inputs[1].reshape(-1)]
    return np.broadcast_shapes(tuple(x_shape), tuple(shape))
