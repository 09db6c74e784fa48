import math

import numpy as np

from verifier import cost
from verifier.fixedpoint import ACT_BITS, qmax, round_shift
from verifier.kernels import gemm, plan_gemm
from verifier.kernels.exact_gemm import bind_gemm
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import epilogue, kernel_path, prepared, quantize_const, requantize_spec, weight_frac
from verifier.ops._ranges import proven_width as _proven, saturated
from verifier.ops._operands import (bound_activations, entering, narrowed, narrowing, operand_bits, operand_bound,
                                    output_scale)

BIAS_BITS = 61  # a bias may dwarf the products at the accumulator scale; int64 still holds the sum


class Gemm:
    """Y = alpha * A' B' + beta * C. A constant B is quantized once as alpha * B' at its 16-bit frac fb and
    C as beta * C at the accumulator frac fa + fb (at matmul_bits=8 A, B are narrowed to 8 bits first:
    _operands.py); then acc = A' @ B' exactly in int64 (fast path: float
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
        bits, narrow = ctx.matmul_bits, narrowing(ctx, a, "a_shift")
        if not b.is_const:
            narrow.update(narrowing(ctx, b, "b_shift"))
        if b.is_const:
            weight = np.asarray(b.value, dtype=np.float64) * alpha
            weight = weight.T if trans_b else weight
            b_frac = weight_frac(weight, bits)
            consts["weight"] = quantize_const(weight, b_frac, bits)
            absorbed.add(1)
            b_bound = int(np.max(np.abs(consts["weight"]))) if weight.size else 0
            K = weight.shape[0]
        else:
            if alpha != 1.0:
                ctx.unsupported("alpha != 1 with a run-time B")
            b_frac, b_bound = b.frac - narrow.get("b_shift", 0), qmax(bits)
            K = (b.shape or (None, None))[1 if trans_b else 0]
        acc_frac = a.frac - narrow.get("a_shift", 0) + b_frac
        c_shift = None
        if c is not None and c.is_const:
            consts["bias"] = quantize_const(np.asarray(c.value, dtype=np.float64) * beta, acc_frac, BIAS_BITS)
            absorbed.add(2)
        elif c is not None:
            if beta != 1.0 or c.frac is None:
                ctx.unsupported("a run-time C needs beta = 1 and a fixed-point tensor")
            c_shift = acc_frac - c.frac  # C moves to the accumulator scale (exact when >= 0)
        plan = plan_gemm(K or 1, qmax(bits), b_bound)
        out_frac, out_attrs = output_scale(ctx)
        attrs = {"transA": trans_a, "transB": 0 if b.is_const else trans_b, "acc_frac": acc_frac,
                 "out_frac": out_frac, "path": plan.path, "path_reason": plan.reason}
        if c_shift is not None:
            attrs["c_shift"] = c_shift
        attrs.update(narrow, **out_attrs)
        return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed=absorbed)

    fuses_relu = True  # run applies attrs["relu"] in its epilogue
    output_size_from_shapes = True
    range_bits = staticmethod(saturated)  # (its epilogue saturates: _ranges.py)
    takes_proven_ranges = True  # run(..., proven=): operands the program proves in range go unchecked

    @staticmethod
    def run(inputs, attrs, consts, proven=()):
        path = kernel_path()
        a, a_bound, a_range = narrowed(inputs[0].T if attrs["transA"] else inputs[0], attrs, "a_shift", path,
                                       _proven(proven, 0))
        weight = prepared(consts["weight"]) if "weight" in consts else None
        if weight is not None and path != "reference" and "c_shift" not in attrs:
            spec = requantize_spec(weight, attrs, consts.get("bias"), weight.shape[1])
            if spec is not None:  # the kernel ends with the epilogue, fused where it can
                return [gemm(a, weight, a_bound=a_bound, a_range=a_range, path=path, requantize=spec)]
        if weight is not None:
            acc = gemm(a, weight, a_bound=a_bound, path=path)
        else:
            b, b_bound, _ = narrowed(inputs[1].T if attrs["transB"] else inputs[1], attrs, "b_shift", path,
                                    _proven(proven, 1))
            acc = gemm(a, b, a_bound=a_bound, b_bound=b_bound, path=path)
        bias = consts.get("bias")
        if bias is None and "c_shift" in attrs:
            bias = round_shift(inputs[2], -attrs["c_shift"])
            if np.broadcast_shapes(bias.shape, acc.shape) != acc.shape:
                acc = acc + bias  # a C wider than the product: the sum takes C's shape
                bias = None
        return [epilogue(acc, attrs, bias, path)]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None, proven=()):
        """run's fast path for inputs of these shapes, its kernel chosen once (interpreter replays), where B is a
        constant; else None."""
        if "weight" not in consts or "c_shift" in attrs:
            return None
        weight = prepared(consts["weight"])
        spec = requantize_spec(weight, attrs, consts.get("bias"), weight.shape[1])
        transposed = attrs["transA"]
        kernel = spec and bind_gemm(_matrix(shapes[0], transposed), weight, operand_bound(attrs), spec)
        if not kernel:
            return None
        take = entering(attrs, "a_shift", _proven(proven, 0))
        if transposed:
            return lambda inputs: [kernel(take(inputs[0].T))]
        return bound_activations(kernel, take)

    @staticmethod
    def cost(shapes, attrs, consts):
        """Units: M*K*N MACs at the weight of the fast run's exact path, plus one pass over the operands,
        C and the output."""
        a = _matrix(shapes[0], attrs["transA"])
        b = consts["weight"].shape if "weight" in consts else _matrix(shapes[1], attrs["transB"])
        b_bound = prepared(consts["weight"]).bound if "weight" in consts else operand_bound(attrs)
        m, k, n = a[0], a[1], b[1]
        plan = plan_gemm(k, operand_bound(attrs), b_bound)
        narrowed_elements = 0 if operand_bits(attrs) == ACT_BITS else m * k + (0 if "weight" in consts else k * n)
        elements = (m * k + k * n + m * n + narrowed_elements
                    + sum(math.prod(int(d) for d in s) for s in shapes[2:] if s is not None))
        return m * k * n * cost.mac_weight(plan.path) + elements * cost.ARITH

    @staticmethod
    def output_size(inputs, attrs, consts):
        a = _matrix(inputs[0].shape, attrs["transA"])
        n = consts["weight"].shape[1] if "weight" in consts else _matrix(inputs[1].shape, attrs["transB"])[1]
        c = inputs[2].size if len(inputs) > 2 and inputs[2] is not None else 0
        return max(a[0] * int(n), int(c))


def _matrix(shape, transposed) -> tuple[int, int]:
    if len(shape) != 2:
        raise ValueError(f"Gemm takes 2-D operands, got shape {tuple(shape)}")
    rows, cols = int(shape[0]), int(shape[1])
    return (cols, rows) if transposed else (rows, cols)
