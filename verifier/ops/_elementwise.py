"""Small base classes for elementwise ops that differ only in their numpy function (as the onnx reference
evaluator's OpRunBinaryNum does). Subclasses set `numpy_fn` and write their integer semantics in their own
docstring; the op table still finds each op by its own file and class name."""

import functools

import numpy as np

from verifier.fixedpoint import ACT_BITS, qmax, requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._align import align_operands, aligned
from verifier.ops._infinity import is_infinite


class Comparison:
    """y = numpy_fn(a, b) as a plain 0/1 integer tensor, both operands compared exactly at the common frac
    c = max(fa, fb); numpy broadcasting. A float constant compares by its exact real value, not a rounded
    one: k = value * 2**c is replaced by floor(k) or ceil(k), whichever makes the integer comparison equal
    the real one (x <= k iff q <= floor(k), x < k iff q < ceil(k), mirrored when the constant is on the
    left; Equal: k itself when it is an integer, else a value no operand reaches). A +-inf constant is
    beyond every value, except against an operand that may hold +-inf (_infinity.py): there it is that
    operand's saturated +-qmax (at c), so `x == -inf` finds a masked attention row as in float."""

    numpy_fn = None
    const_rounding = (None, None)  # for a constant on the left, on the right: "floor", "ceil" or "exact"

    @classmethod
    def compile(cls, ctx: CompileContext) -> Lowering:
        attrs, consts, absorbed, common = align_operands(ctx, [0, 1])
        for index in absorbed:
            value = np.asarray(ctx.inputs[index].value)
            if value.dtype.kind == "f" and common is not None:
                consts[f"k{index}"] = exact_threshold(value, common, cls.const_rounding[index])
                other = ctx.inputs[1 - index]
                if not other.is_const and other.may_be_infinite:
                    saturated = qmax(ACT_BITS) << (common - other.frac)
                    signed = np.where(value > 0, saturated, -saturated)  # (ints: float16 cannot hold qmax)
                    consts[f"k{index}"] = np.where(is_infinite(value), signed, consts[f"k{index}"]).astype(np.int64)
        return Lowering(out_fracs=[None], attrs=attrs, consts=consts, absorbed=absorbed)

    @classmethod
    def run(cls, inputs, attrs, consts):
        a, b = aligned(inputs, attrs, consts, 0), aligned(inputs, attrs, consts, 1)
        return [cls.numpy_fn(a, b).astype(np.int64)]


UNREACHABLE = 1 << 61  # above every aligned operand (< 2**60)


def exact_threshold(value: np.ndarray, frac: int, rounding: str) -> np.ndarray:
    """Compile time: value * 2**frac (exact in float64 for float32 constants) rounded as the comparison needs."""
    scaled = np.asarray(value, dtype=np.float64) * 2.0**frac
    if rounding == "exact":
        integral = np.floor(scaled) == scaled
        scaled = np.where(integral, scaled, float(UNREACHABLE))
    else:
        scaled = np.floor(scaled) if rounding == "floor" else np.ceil(scaled)
    return np.clip(np.nan_to_num(scaled, nan=float(UNREACHABLE)), -(1 << 60), UNREACHABLE).astype(np.int64)


class Logical:
    """numpy_fn of two plain integer tensors read as booleans (non-zero = true), numpy broadcasting;
    a plain 0/1 int64 result. Fixed-point operands are refused at compile time."""

    numpy_fn = None

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if any(o.frac is not None for o in ctx.inputs):
            ctx.unsupported("boolean op on a fixed-point tensor")
        return Lowering(out_fracs=[None])

    @classmethod
    def run(cls, inputs, attrs, consts):
        return [cls.numpy_fn(inputs[0] != 0, inputs[1] != 0).astype(np.int64)]


class Bitwise(Logical):
    """numpy_fn of the bits of two plain integer tensors (and, or, xor: the same bits for any integer type,
    signed values sign-extended into int64), numpy broadcasting."""

    @classmethod
    def run(cls, inputs, attrs, consts):
        return [cls.numpy_fn(inputs[0], inputs[1]).astype(np.int64)]


class Extremum:
    """numpy_fn folded over all operands (numpy broadcasting), compared exactly at the common frac
    c = max(f_i), then requantized to the smallest run-time operand frac (exact when all fracs are equal)."""

    numpy_fn = None

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        indices = list(range(len(ctx.inputs)))
        attrs, consts, absorbed, common = align_operands(ctx, indices)
        if common is None:
            return Lowering(out_fracs=[None], attrs=attrs)
        runtime_fracs = [o.frac for o in ctx.inputs if not o.is_const]
        out_frac = min(runtime_fracs) if runtime_fracs else common
        attrs["out_frac"] = out_frac
        attrs["count"] = len(indices)
        return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed=absorbed)

    @classmethod
    def run(cls, inputs, attrs, consts):
        values = [aligned(inputs, attrs, consts, i) for i in range(len(inputs))]
        result = functools.reduce(cls.numpy_fn, values)
        if attrs.get("integer"):
            return [result]
        return [requantize(result, attrs["common"], attrs["out_frac"])]


class NeverTrue:
    """y = 0 everywhere, a plain int64 tensor of x's shape: a float predicate no integer satisfies."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[None])

    @staticmethod
    def run(inputs, attrs, consts):
        return [np.zeros(inputs[0].shape, dtype=np.int64)]
