"""Lowering shared by ops that combine fixed-point operands elementwise without scaling them (Min, Max,
Where, comparisons): every operand moves exactly to the common frac c = max(f_i); constants are quantized
at c. Plain integer operands stay as they are when all operands are plain integers."""

import numpy as np

from verifier.fixedpoint import round_shift
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import quantize_const

WIDE_BITS = 60
MAX_ALIGN_SHIFT = 44  # a 16-bit operand shifted left by at most this stays below 2**60


def align_operands(ctx: CompileContext, indices) -> tuple[dict, dict, set, int | None]:
    """(attrs, consts, absorbed, common frac or None for plain integers) for operands `indices`."""
    operands = [ctx.inputs[i] for i in indices]
    runtime_fracs = [o.frac for o in operands if not o.is_const]
    float_consts = [o for o in operands if o.is_const and o.value.dtype.kind == "f"]
    if all(f is None for f in runtime_fracs) and not float_consts:
        return {"integer": 1}, {}, set(), None
    if any(f is None for f in runtime_fracs):
        ctx.unsupported("mixes plain integer and fixed-point tensors")
    common = max([f for f in runtime_fracs] or [o.frac for o in operands])
    if runtime_fracs and common - min(runtime_fracs) > MAX_ALIGN_SHIFT:
        common = min(runtime_fracs) + MAX_ALIGN_SHIFT  # finer operands are rounded to c instead
    consts, absorbed, shifts = {}, set(), {}
    for i, operand in zip(indices, operands):
        if operand.is_const:
            consts[f"k{i}"] = quantize_const(np.asarray(operand.value, dtype=np.float64), common, WIDE_BITS)
            absorbed.add(i)
        else:
            shifts[str(i)] = common - operand.frac
    return {"shifts": shifts, "common": common}, consts, absorbed, common


def lower_aligned(ctx: CompileContext, indices) -> Lowering:
    """align_operands, with the result requantized from c to the output's calibrated frac (attrs out_frac);
    plain integers stay exact."""
    attrs, consts, absorbed, common = align_operands(ctx, indices)
    if common is not None:
        attrs["out_frac"] = ctx.out_frac()
    return Lowering(out_fracs=[attrs.get("out_frac")], attrs=attrs, consts=consts, absorbed=absorbed)


def aligned(inputs, attrs, consts, index: int):
    """Operand `index` at the common frac (or as is for plain integers)."""
    x = inputs[index]
    if x is None:
        return consts[f"k{index}"]
    if attrs.get("integer"):
        return x
    shift = attrs["shifts"][str(index)]
    return x if shift == 0 else round_shift(x, -shift)
