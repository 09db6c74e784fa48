import numpy as np

from verifier.fixedpoint import ACT_BITS, qmax, requantize, round_shift
from verifier.kernels import gemm, plan_gemm
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import kernel_path, prepared, quantize_const, weight_frac

BIAS_BITS = 61  # a bias may dwarf the products at the accumulator scale; int64 still holds the sum


class Gemm:
    """Y = alpha * A' B' + beta * C. A constant B is quantized once as alpha * B' at its 16-bit frac fb and
    C as beta * C at the accumulator frac fa + fb; then acc = A' @ B' exactly in int64 (fast path: float
    BLAS under the bound K * |A| * |B| < 2**53, K-chunked otherwise; reference: int64 loops; identical
    bits), y = requantize(acc + C, fa + fb, fy). A run-time B must have alpha = 1; a run-time C (beta = 1)
    is moved to the accumulator frac by round_shift(C, fc - fa - fb) before the sum."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        a, b = ctx.inputs[0], ctx.inputs[1]
        c = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
        trans_a, trans_b = int(ctx.attr("transA", 0)), int(ctx.attr("transB", 0))
        if a.frac is None or (not b.is_const and b.frac is None):
            ctx.unsupported("Gemm on plain integer tensors")
        consts, absorbed = {}, set()
        if b.is_const:
            weight = np.asarray(b.value, dtype=np.float64) * alpha
            weight = weight.T if trans_b else weight
            b_frac = weight_frac(weight)
            consts["weight"] = quantize_const(weight, b_frac, 16)
            absorbed.add(1)
            b_bound = int(np.max(np.abs(consts["weight"]))) if weight.size else 0
            K = weight.shape[0]
        else:
            if alpha != 1.0:
                ctx.unsupported("alpha != 1 with a run-time B")
            b_frac, b_bound = b.frac, qmax(ACT_BITS)
            K = (b.shape or (None, None))[1 if trans_b else 0]
        acc_frac = a.frac + b_frac
        c_shift = None
        if c is not None and c.is_const:
            consts["bias"] = quantize_const(np.asarray(c.value, dtype=np.float64) * beta, acc_frac, BIAS_BITS)
            absorbed.add(2)
        elif c is not None:
            if beta != 1.0 or c.frac is None:
                ctx.unsupported("a run-time C needs beta = 1 and a fixed-point tensor")
            c_shift = acc_frac - c.frac  # C moves to the accumulator scale (exact when >= 0)
        plan = plan_gemm(K or 1, qmax(ACT_BITS), b_bound)
        out_frac = ctx.out_frac()
        attrs = {"transA": trans_a, "transB": 0 if b.is_const else trans_b, "acc_frac": acc_frac,
                 "out_frac": out_frac, "path": plan.path, "path_reason": plan.reason}
        if c_shift is not None:
            attrs["c_shift"] = c_shift
        return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed=absorbed)

    @staticmethod
    def run(inputs, attrs, consts):
        a = inputs[0].T if attrs["transA"] else inputs[0]
        if "weight" in consts:
            acc = gemm(a, prepared(consts["weight"]), path=kernel_path())
        else:
            b = inputs[1].T if attrs["transB"] else inputs[1]
            acc = gemm(a, b, path=kernel_path())
        if "bias" in consts:
            acc += consts["bias"]
        elif "c_shift" in attrs:
            acc = acc + round_shift(inputs[2], -attrs["c_shift"])
        return [requantize(acc, attrs["acc_frac"], attrs["out_frac"])]

    @staticmethod
    def cost(shapes, attrs, consts):
        a = shapes[0]
        n = consts["weight"].shape[1] if "weight" in consts else shapes[1][0 if attrs["transB"] else 1]
        return int(a[0]) * int(a[1]) * int(n) + int(a[0]) * int(n)
