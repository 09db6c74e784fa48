import importlib.util

import numpy as np

from verifier.fixedpoint import requantize, with_sign_of
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import multiplier_for

RECIPROCAL_BITS = 30


class Div:
    """Division by a constant: 1/c becomes an integer multiplier m with shift s (m / 2**s ~= 1/c, |m| <
    2**30), per element of c with broadcasting; y = requantize(x * m, fx + s, fy). A tensor divisor is
    lowered by verifier/ops/_div_tensor.py (integer division, docs/fixed-point-nonlinear.md).
    Plain integer tensors divide with truncation toward zero (C semantics, as onnxruntime)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x, divisor = ctx.inputs
        if x.frac is None and divisor.frac is None:
            return Lowering(out_fracs=[None], attrs={"integer": 1})
        if not divisor.is_const:
            if importlib.util.find_spec("verifier.ops._div_tensor") is None:
                ctx.unsupported("division by a tensor computed at run time")
            from verifier.ops._div_tensor import lower_div_by_tensor

            return lower_div_by_tensor(ctx)
        value = np.asarray(divisor.value, dtype=np.float64)
        if value.size == 0 or np.any(value == 0) or not np.all(np.isfinite(value)):
            ctx.unsupported("division by zero or a non-finite constant")
        if x.frac is None:
            ctx.unsupported("divides a plain integer tensor by a float constant")
        reciprocal = 1.0 / value
        shift = max(multiplier_for(float(r), RECIPROCAL_BITS)[1] for r in reciprocal.reshape(-1))
        multipliers = np.array([multiplier_for_shift(float(r), shift) for r in reciprocal.reshape(-1)],
                               dtype=np.int64).reshape(value.shape)
        out_frac = ctx.out_frac()
        return Lowering(out_fracs=[out_frac], attrs={"acc_frac": x.frac + shift, "out_frac": out_frac},
                        consts={"multiplier": multipliers}, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x, divisor = inputs
        if attrs.get("integer"):
            if np.any(divisor == 0):
                raise ZeroDivisionError("integer division by zero")
            quotient = np.abs(x) // np.abs(divisor)
            return [with_sign_of(x ^ divisor, quotient)]  # (negative exactly when the signs differ)
        if "multiplier" not in consts:
            from verifier.ops._div_tensor import run_div_by_tensor

            return run_div_by_tensor(inputs, attrs, consts)
        return [requantize(np.multiply(x, consts["multiplier"], dtype=np.int64), attrs["acc_frac"], attrs["out_frac"])]


def multiplier_for_shift(real: float, shift: int) -> int:
    from verifier.fixedpoint import quantize

    return int(quantize(np.array([real]), shift, 63)[0])
