"""Shared by ScatterND and ScatterElements: data and updates at one scale, and the reductions."""

import numpy as np

from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._align import align_operands, aligned

REDUCTIONS = ("none", "add", "max", "min")


def lower_scatter(ctx: CompileContext) -> Lowering:
    """data and updates moved exactly to c = max(f_data, f_updates) (constants quantized at c); the result is
    requantized to min of the run-time fracs for none / max / min (a value of either), to the calibrated
    output frac for add (sums may grow). Plain integers stay exact."""
    reduction = ctx.attr("reduction", "none")
    if reduction not in REDUCTIONS:
        ctx.unsupported(f"reduction {reduction!r} (only {', '.join(REDUCTIONS)})")
    if ctx.inputs[1].frac is not None:
        ctx.unsupported("indices must be an integer tensor")
    attrs, consts, absorbed, common = align_operands(ctx, [0, 2])
    attrs["reduction"] = reduction
    if common is None:
        return Lowering(out_fracs=[None], attrs=attrs, consts=consts, absorbed=absorbed)
    runtime = [ctx.inputs[i].frac for i in (0, 2) if not ctx.inputs[i].is_const]
    attrs["out_frac"] = ctx.out_frac() if reduction == "add" or not runtime else min(runtime)
    return Lowering(out_fracs=[attrs["out_frac"]], attrs=attrs, consts=consts, absorbed=absorbed)


def operands(inputs, attrs, consts):
    data = np.array(aligned(inputs, attrs, consts, 0), dtype=np.int64)  # a copy: the result
    return data, inputs[1], np.asarray(aligned(inputs, attrs, consts, 2), dtype=np.int64)


def combine(result, places, updates, reduction: str) -> None:
    """result[places] <- updates, in order (later duplicates win for none, accumulate otherwise)."""
    if reduction == "none":
        result[places] = updates
    elif reduction == "add":
        np.add.at(result, places, updates)
    elif reduction == "max":
        np.maximum.at(result, places, updates)
    else:
        np.minimum.at(result, places, updates)


def finish(result, attrs):
    return result if attrs.get("integer") else requantize(result, attrs["common"], attrs["out_frac"])


def checked_indices(indices, sizes, op: str):
    """Negative indices counted from the end; anything outside is a run error."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if indices.size and (np.any(indices < -sizes) or np.any(indices >= sizes)):
        raise IndexError(f"{op} index outside the data's shape {tuple(sizes.tolist())}")
    return np.where(indices < 0, indices + sizes, indices)
