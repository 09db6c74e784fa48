"""Infinite values in the integer domain (attention masks built with -inf, or with float32's lowest value as
Hugging Face exports do: any magnitude >= INFINITE_MAGNITUDE = 2**127, float32's top binade, counts as
infinite). Fixed point has no infinity: a +-inf saturates to +-qmax. When the calibration run saw +-inf in a tensor (Operand.may_be_infinite), a
saturated value of it *is* +-inf for the ops that must keep it so: Add keeps it sticky (x + -inf = -inf,
whatever x), Softmax/LogSoftmax give it probability 0 (verifier/nonlinear/exp_log.py, masked=True)."""

import numpy as np

from verifier.fixedpoint import ACT_BITS, qmax
from verifier.ops import CompileContext, Lowering

INFINITE_MAGNITUDE = 2.0**127


def is_infinite(value: np.ndarray) -> np.ndarray:
    """Elementwise: +-inf or a float32 overflow marker such as torch.finfo(torch.float32).min (NaN: False)."""
    with np.errstate(invalid="ignore"):
        return np.abs(np.asarray(value, dtype=np.float64)) >= INFINITE_MAGNITUDE


def finite_part(value: np.ndarray) -> np.ndarray:
    """The values that set a scale: infinite ones replaced by 0."""
    return np.where(is_infinite(value), 0, value)


def flag_infinite_operands(ctx: CompileContext, lowering: Lowering) -> Lowering:
    """attrs["infinite"]: indices of the run-time operands that may hold +-inf (none: nothing recorded)."""
    flagged = [i for i, o in enumerate(ctx.inputs) if o is not None and not o.is_const and o.may_be_infinite]
    if flagged and lowering.out_fracs[0] is not None:
        lowering.attrs["infinite"] = flagged
    return lowering


def keep_infinite(total: np.ndarray, inputs, attrs) -> np.ndarray:
    """total with +-qmax wherever a flagged operand is saturated (its +-inf), then the fused Relu again."""
    flagged = attrs.get("infinite")
    if not flagged:
        return total
    limit = qmax(ACT_BITS)
    for index in flagged:
        x = inputs[index]
        total = np.where(x <= -limit, -limit, np.where(x >= limit, limit, total))
    if attrs.get("relu"):
        total = np.maximum(total, 0)
    return np.asarray(total, dtype=np.int64)
