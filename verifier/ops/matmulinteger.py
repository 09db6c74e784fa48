import math

import numpy as np

from verifier import cost
from verifier.kernels import gemm, plan_gemm
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import kernel_path


class MatMulInteger:
    """y = (A - a_zero_point) @ (B - b_zero_point), numpy matmul semantics, as exact int64 (the int32 of
    ONNX cannot overflow for 8-bit operands under 2**15 terms); a plain integer tensor. a_zero_point is one
    value or one per row of A, b_zero_point one value or one per column of B. The product runs on the exact
    GEMM paths (float32 BLAS under K * 255 * 255 < 2**24 or its chunks; int64 loops on the reference path)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if any(o is not None and o.frac is not None for o in ctx.inputs):
            ctx.unsupported("needs integer (quantized) operands")
        return Lowering(out_fracs=[None])

    output_size_from_shapes = True

    @staticmethod
    def run(inputs, attrs, consts):
        a, b = inputs[0], inputs[1]
        a_zero = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.zeros((), np.int64)
        b_zero = inputs[3] if len(inputs) > 3 and inputs[3] is not None else np.zeros((), np.int64)
        if a_zero.ndim == 1 and a.ndim >= 2:
            a_zero = a_zero.reshape(-1, 1)  # (one per row of A)
        return [gemm(a - a_zero, b - b_zero, path=kernel_path())]

    @staticmethod
    def cost(shapes, attrs, consts):
        """Units: M*K*N MACs at the weight of a float path of 8-bit operands, plus one pass over each operand."""
        a, b = shapes[0], shapes[1]
        k = int(a[-1]) if len(a) else 1
        n = int(b[-1]) if len(b) > 1 else 1
        rows = math.prod(int(d) for d in a[:-1]) if len(a) > 1 else 1
        batch = math.prod(int(d) for d in b[:-2]) if len(b) > 2 else 1
        plan = plan_gemm(k, 255, 255)
        elements = math.prod(int(d) for d in a) + math.prod(int(d) for d in b) + rows * n * batch
        return rows * batch * k * n * cost.mac_weight(plan.path) + elements * cost.ARITH

    @staticmethod
    def output_size(inputs, attrs, consts):
        a, b = inputs[0].shape, inputs[1].shape
        return int(np.prod(np.broadcast_shapes(a[:-2], b[:-2]) if len(a) > 2 or len(b) > 2 else (), dtype=np.int64)) \
            * (int(a[-2]) if len(a) > 1 else 1) * (int(b[-1]) if len(b) > 1 else 1)
