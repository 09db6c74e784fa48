import math

import numpy as np

from verifier import cost
from verifier.fixedpoint import ACT_BITS, qmax
from verifier.kernels import gemm, plan_gemm
from verifier.kernels.exact_gemm import bind_gemm, bind_product
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import (epilogue, kernel_path, prepared, quantize_const, requantize_spec, runtime_spec,
                                  weight_frac)
from verifier.ops._ranges import proven_width as _proven, saturated
from verifier.ops._operands import (bound_activations, entering, narrowed, narrowing, operand_bits, operand_bound,
                                    output_scale)


class MatMul:
    """y = requantize(a @ b [+ bias], fa + fb, fy), numpy matmul semantics (batch broadcasting, 1-D operands
    promoted and squeezed); the bias, one value per output column at fa + fb, is an Add the compiler folded in
    (compiler/fuse.py). The product is exact int64 (fast float BLAS path under the proven bound,
    or int64 loops; identical bits). A constant operand is quantized at its own 16-bit frac (at
    matmul_bits=8 both operands are narrowed to 8 bits first: _operands.py)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        a, b = ctx.inputs
        consts, absorbed, fracs, bounds, narrow = {}, set(), [], [], {}
        bits = ctx.matmul_bits
        for index, operand in enumerate((a, b)):
            if operand.is_const:
                frac = weight_frac(operand.value, bits)
                consts[f"k{index}"] = quantize_const(np.asarray(operand.value, dtype=np.float64), frac, bits)
                absorbed.add(index)
                fracs.append(frac)
                bounds.append(int(np.max(np.abs(consts[f"k{index}"]))) if operand.value.size else 0)
            elif operand.frac is None:
                ctx.unsupported("MatMul on plain integer tensors")
            else:
                key = "ab"[index] + "_shift"
                narrow.update(narrowing(ctx, operand, key))
                fracs.append(operand.frac - narrow.get(key, 0))
                bounds.append(qmax(bits))
        k = (a.shape or (None,))[-1]
        plan = plan_gemm(k or 1, bounds[0], bounds[1])
        out_frac, out_attrs = output_scale(ctx)
        attrs = {"acc_frac": fracs[0] + fracs[1], "out_frac": out_frac, "path": plan.path, "path_reason": plan.reason,
                 **narrow, **out_attrs}
        return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed=absorbed)

    fuses_relu = True  # run applies attrs["relu"] in its epilogue
    output_size_from_shapes = True
    range_bits = staticmethod(saturated)  # (its epilogue saturates: _ranges.py)
    takes_proven_ranges = True  # run(..., proven=): operands the program proves in range go unchecked

    @staticmethod
    def run(inputs, attrs, consts, proven=()):
        path = kernel_path()
        a, a_bound, a_range = ((prepared(consts["k0"]), None, None) if inputs[0] is None
                               else narrowed(inputs[0], attrs, "a_shift", path, _proven(proven, 0)))
        b, b_bound, _ = ((prepared(consts["k1"]), None, None) if inputs[1] is None
                         else narrowed(inputs[1], attrs, "b_shift", path, _proven(proven, 1)))
        a_vector, b_vector = np.ndim(_values(a)) == 1, np.ndim(_values(b)) == 1
        if a_vector:
            a = _values(a)[None, :]
        if b_vector:
            b = _values(b)[:, None]
        bias = consts.get("bias")  # (a folded bias Add: compiler/fuse.py, at acc_frac, one per column)
        if path != "reference" and inputs[0] is not None and inputs[1] is None and not b_vector:
            spec = requantize_spec(b, attrs, bias, b.shape[-1])  # activations @ weight: ends with the epilogue
            out = gemm(a, b, a_bound=a_bound, a_range=a_range, path=path, requantize=spec)
            return [out[..., 0, :] if a_vector else out]
        if path != "reference" and inputs[0] is not None and inputs[1] is not None:  # both at run time
            return [_squeezed(gemm(a, b, a_bound=a_bound, b_bound=b_bound, path=path, requantize=runtime_spec(attrs)),
                              a_vector, b_vector)]
        acc = _squeezed(gemm(a, b, a_bound=a_bound, b_bound=b_bound, path=path), a_vector, b_vector)
        return [epilogue(acc, attrs, bias, path)]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None, proven=()):
        """run's fast path for inputs of these shapes, its kernel chosen once (interpreter replays): run-time
        operands of two or more axes, by a constant 2-D b or by each other; else None."""
        a_shape, b_shape = shapes[0], shapes[1] if shapes[1] is not None else consts["k1"].shape
        if a_shape is None or len(a_shape) < 2 or len(b_shape) < 2:
            return None
        take_a = entering(attrs, "a_shift", _proven(proven, 0))
        if shapes[1] is None:  # activations @ weight: ends with the epilogue
            weight = prepared(consts["k1"])
            spec = requantize_spec(weight, attrs, consts.get("bias"), b_shape[-1])
            kernel = spec and bind_gemm(a_shape, weight, operand_bound(attrs), spec)
            return bound_activations(kernel, take_a) if kernel else None
        if "bias" in consts:
            return None
        bound, take_b = operand_bound(attrs), entering(attrs, "b_shift", _proven(proven, 1))
        kernel = bind_product(a_shape, b_shape, bound, bound, runtime_spec(attrs))
        return (lambda inputs: [kernel(take_a(inputs[0]), take_b(inputs[1]))]) if kernel else None

    @staticmethod
    def cost(shapes, attrs, consts):
        """Units: the (batched) M*K*N MACs at the weight of the fast run's exact path, plus one pass over
        the operands and the output."""
        a = shapes[0] if shapes[0] is not None else consts["k0"].shape
        b = shapes[1] if shapes[1] is not None else consts["k1"].shape
        batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])) if len(a) > 2 or len(b) > 2 else ()
        m = a[-2] if len(a) > 1 else 1
        n = b[-1] if len(b) > 1 else 1
        bounds = [prepared(consts[f"k{i}"]).bound if shapes[i] is None else operand_bound(attrs) for i in (0, 1)]
        plan = plan_gemm(int(a[-1]), *bounds)
        macs = math.prod(int(d) for d in batch) * int(m) * int(a[-1]) * int(n)
        narrowed_elements = 0 if operand_bits(attrs) == ACT_BITS else sum(
            math.prod(int(d) for d in shape) for shape in shapes[:2] if shape is not None)
        elements = (math.prod(int(d) for d in a) + math.prod(int(d) for d in b) + _output_size_of(a, b)
                    + narrowed_elements)
        return macs * cost.mac_weight(plan.path) + elements * cost.ARITH


def _output_size(inputs, attrs, consts):
    a = inputs[0].shape if inputs[0] is not None else consts["k0"].shape
    b = inputs[1].shape if inputs[1] is not None else consts["k1"].shape
    return _output_size_of(a, b)


def _output_size_of(a, b) -> int:
    batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])) if len(a) > 2 or len(b) > 2 else ()
    size = (a[-2] if len(a) > 1 else 1) * (b[-1] if len(b) > 1 else 1)
    for d in batch:
        size *= int(d)
    return int(size)


MatMul.output_size = staticmethod(_output_size)


def _squeezed(y, a_vector: bool, b_vector: bool):
    """The product of promoted 1-D operands with their promoted axes dropped again (numpy matmul)."""
    if a_vector:
        y = y[..., 0, :]
    return y[..., 0] if b_vector else y


def _values(x):
    return x.values if hasattr(x, "values") else x
