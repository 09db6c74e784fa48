import numpy as np

from verifier.kernels import gemm
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import kernel_path
from verifier.ops._quantized import lower_requantization, requantized_output
from verifier.ops.matmulinteger import MatMulInteger


class QLinearMatMul:
    """Quantized MatMul (inputs a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    acc = (a - za) @ (b - zb) exact in int64 (MatMulInteger's paths); y = clip(round(acc * m) + zy) with
    m = fl(fl(sa * sb) / sy) and every float32 step of onnxruntime's requantization replicated exactly on
    integers (_quantized.requantized_output); b's scale and zero point may be one per column. A plain
    integer tensor of y_zero_point's type."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if ctx.inputs[0].frac is not None or ctx.inputs[3].frac is not None:
            ctx.unsupported("needs integer (quantized) operands")
        attrs, consts = lower_requantization(ctx, 1, 4, 6)
        return Lowering(out_fracs=[None], attrs=attrs, consts=consts, absorbed={1, 4, 6, 7})

    output_size_from_shapes = True

    @staticmethod
    def run(inputs, attrs, consts):
        a, a_zero, b, b_zero = inputs[0], inputs[2], inputs[3], inputs[5]
        a_zero = np.zeros((), np.int64) if a_zero is None else a_zero.reshape(())
        b_zero = np.zeros((), np.int64) if b_zero is None else b_zero
        acc = gemm(a - a_zero, b - b_zero, path=kernel_path())
        return [requantized_output(acc, attrs, consts, channel_axis=-1)]

    @staticmethod
    def cost(shapes, attrs, consts):
        return MatMulInteger.cost([shapes[0], shapes[3]], attrs, consts)

    @staticmethod
    def output_size(inputs, attrs, consts):
        return MatMulInteger.output_size([inputs[0], inputs[3]], attrs, consts)
