"""The operands of a Conv / Gemm / MatMul product at the program's operand width (compile_model's
`matmul_bits`, one of fixedpoint.MATMUL_BITS).

At 16 bits (the default) a run-time operand enters the product as it is and a constant is quantized at
its own 16-bit frac. At 8 bits both are narrowed first: a constant at compile time (quantized at its own
8-bit frac), a run-time operand x of frac f at run time, to y = requantize(x, f, f - shift, 8) - the one
rounding rule, saturating at +-127 - with `shift` fixed at compile time from the tensor's calibrated range
(attrs["<name>_shift"]). Products of 8-bit operands are exact in float32 BLAS (exact_gemm.plan_gemm: chunks
of up to 1040 products stay below 2**24), about twice float64's speed on half the bytes.
"""

import dataclasses
from collections.abc import Callable

import numpy as np

from verifier import fixedpoint
from verifier.fixedpoint import ACT_BITS, frac_for_range, qmax
from verifier.kernels import loops, window
from verifier.ops._common import checked_range


def narrowing(ctx, operand, shift_key: str) -> dict:
    """Compile time: the attrs that narrow a run-time operand to ctx.matmul_bits, {"operand_bits": 8,
    shift_key: shift} ({} at 16 bits); the operand enters the product at frac operand.frac - shift.
    Its narrow frac is the finest that holds its calibrated range in 8 bits (without a range: 8 bits
    coarser than its own), never finer than its own frac."""
    bits = ctx.matmul_bits
    if bits == ACT_BITS:
        return {}
    frac = operand.frac - (ACT_BITS - bits) if operand.range is None else frac_for_range(operand.range, bits)
    return {"operand_bits": bits, shift_key: min(max(operand.frac - frac, 0), 62)}


def output_scale(ctx) -> tuple[int, dict]:
    """Compile time: (out_frac, attrs) of a Conv/Gemm/MatMul output. One that only ever enters 8-bit
    products (ctx.narrow_output) is produced at its 8-bit frac and saturated at +-127 (attrs["out_bits"]),
    so its readers narrow it with shift 0 - no pass - and it is rounded once instead of twice."""
    if not ctx.narrow_output or ctx.matmul_bits == ACT_BITS:
        return ctx.out_frac(), {}
    return frac_for_range(ctx.out_range(), ctx.matmul_bits), {"out_bits": ctx.matmul_bits}


def operand_bits(attrs: dict) -> int:
    """The width of a node's product operands: attrs["operand_bits"], else 16."""
    return int(attrs.get("operand_bits", ACT_BITS))


def operand_bound(attrs: dict) -> int:
    """The proven bound of a run-time product operand, which plans and costs the product."""
    return qmax(operand_bits(attrs))


def enters_unchecked(attrs: dict, shift_key: str, proven_bits: int) -> bool:
    """Whether an operand proven within qmax(proven_bits) enters the fast path's product as it is: proven within the
    operand width, and not narrowed (16 bits, or a shift of 0)."""
    bits = operand_bits(attrs)
    return 0 < proven_bits <= bits and (bits == ACT_BITS or int(attrs.get(shift_key, 0)) == 0)


def entering(attrs: dict, shift_key: str, proven_bits: int):
    """The fast path's operand as a function of the run-time tensor, narrowed(x, ...)[0] (checked, and narrowed at 8
    bits): for a node's bound kernels (interpreter replays). The identity where it enters unchecked."""
    if enters_unchecked(attrs, shift_key, proven_bits):
        return _unchanged
    bits, shift = operand_bits(attrs), int(attrs.get(shift_key, 0))
    if bits == ACT_BITS or not 0 < shift <= 62:  # (a 16-bit check, or a form compile_model never sets)
        return lambda x: narrowed(x, attrs, shift_key, "fast", proven_bits, with_range=False)[0]
    return _Narrowing(shift, qmax(bits))


def bound_activations(kernel: Callable, take: Callable) -> Callable:
    """A node's bound run [kernel(take(a))] for a product of activations a by a constant, carrying the kernel's
    direct.Link (where it is a direct call) with how a enters - as it is, or by a narrowing - so that replays may
    chain it with its neighbours (direct.chain_kernel)."""

    def run(inputs: list) -> list:
        return [kernel(take(inputs[0]))]

    link = getattr(kernel, "link", None)
    narrowing = (0, 0) if take is _unchanged else getattr(take, "narrowing", None)
    if link is not None and narrowing is not None:
        run.link = dataclasses.replace(link, take=take, narrowing=narrowing)
    return run


def _unchanged(x):
    return x


class _Narrowing:
    """entering's 8-bit narrowing of an operand (narrowed's fast path, its constants taken once): the operand
    checked within 16 bits, then requantized by 2**-shift and saturated at +-limit."""

    def __init__(self, shift: int, limit: int):
        self.narrowing = (shift, limit)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return _narrowed_in_one_pass(x, *self.narrowing)[0]


def narrowed(x: np.ndarray, attrs: dict, shift_key: str, path: str, proven_bits: int = 0,
             with_range: bool = True) -> tuple[np.ndarray, int, tuple[int, int] | None]:
    """Run time: (operand, bound, (min, max)) of a run-time tensor entering the product. Any operand is checked
    to lie in the 16-bit activation range (checked_range); at 8 bits it is then requantized by attrs[shift_key].
    The fast path narrows in one compiled pass that also takes the range (kernels.loops.narrow); both paths
    round with the one rule (fixedpoint.requantize), which is monotone: the narrowed range is the range's
    narrowing.

    proven_bits: a width the program proves the operand's values within (|x| <= qmax(proven_bits): the
    interpreter's range facts, made by a saturating producer). On the fast path an operand proven within its
    operand width enters the product unchecked and untouched, its range then None (taken by the kernels that
    need it); the reference path checks the proof instead, so every reference run tests it. with_range=False: the
    narrowed range is not computed either (None)."""
    if path != "reference" and enters_unchecked(attrs, shift_key, proven_bits):
        return x, operand_bound(attrs), None
    bits = operand_bits(attrs)
    shift = int(attrs.get(shift_key, 0))
    if bits == ACT_BITS or path == "reference" or not 0 < shift <= 62:
        value_range = checked_range(x)
        if proven_bits and not -qmax(proven_bits) <= value_range[0] <= value_range[1] <= qmax(proven_bits):
            raise AssertionError(f"an operand proven within +-{qmax(proven_bits)} holds {value_range}: "
                                 "the interpreter's range facts (verifier/interpreter.py) are wrong")
        if bits == ACT_BITS or (shift == 0 and -qmax(bits) <= value_range[0] and value_range[1] <= qmax(bits)):
            return x, qmax(bits), value_range  # (already narrow: produced at its 8-bit scale, output_scale)
        out = fixedpoint.requantize(x, shift, 0, bits)  # (also a shift compile_model never sets)
    else:
        out, value_range = _narrowed_in_one_pass(x, shift, qmax(bits))
    if not with_range:
        return out, qmax(bits), None
    low, high = (int(v) for v in fixedpoint.requantize(np.array(value_range, dtype=np.int64), shift, 0, bits))
    return out, qmax(bits), (low, high)


def _narrowed_in_one_pass(x: np.ndarray, shift: int, limit: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(requantize(x, shift, 0, bits) saturated at +-limit, x's range checked: checked_range) by one compiled pass
    that narrows x and takes its range (kernels.loops.narrow)."""
    out = np.empty(np.shape(x), dtype=np.int64)
    value_range = loops.narrow(window.loop_operand(x).reshape(-1), shift, limit, out.reshape(-1))
    return out, checked_range(x, value_range)
