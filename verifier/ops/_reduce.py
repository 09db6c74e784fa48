"""Shared by the Reduce* ops: axes (attribute before opset 18, constant input from 18) and the exact reductions."""

import numpy as np

from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints


def reduce_attrs(ctx: CompileContext) -> dict:
    axes = ctx.attr("axes")
    if len(ctx.inputs) > 1 and ctx.inputs[1] is not None:
        axes = const_ints(ctx, 1, "axes")
        if axes is None:
            ctx.unsupported("axes computed at run time")
    attrs = {"keepdims": int(ctx.attr("keepdims", 1)), "noop": int(ctx.attr("noop_with_empty_axes", 0))}
    if axes is not None and len(axes):
        attrs["axes"] = [int(a) for a in axes]
    return attrs


def axes_of(x, attrs):
    """The reduced axes, or None for the identity (noop_with_empty_axes with no axes)."""
    if "axes" in attrs:
        return tuple(sorted(a % x.ndim for a in attrs["axes"]))
    return None if attrs["noop"] else tuple(range(x.ndim))


def summed(terms: np.ndarray, attrs: dict) -> np.ndarray:
    """The exact int64 sum of `terms` over the reduced axes (keepdims per the attribute; the terms
    themselves for the identity)."""
    axes = axes_of(terms, attrs)
    return terms if axes is None else terms.sum(axis=axes, keepdims=bool(attrs["keepdims"]))


def grouped(x: np.ndarray, attrs: dict) -> tuple[np.ndarray, list]:
    """(x with its reduced axes moved last and flattened, (..., n); the shape the reduction's result takes,
    keepdims as the attribute says) - for reductions that walk each group (ReduceLogSumExp, ReduceProd)."""
    axes = axes_of(x, attrs) or ()
    kept = [a for a in range(x.ndim) if a not in axes]
    rows = np.transpose(x, kept + list(axes)).reshape([x.shape[a] for a in kept] + [-1])
    if attrs["keepdims"]:
        return rows, [1 if a in axes else d for a, d in enumerate(x.shape)]
    return rows, [x.shape[a] for a in kept]


def lower_sum(ctx: CompileContext) -> Lowering:
    """ReduceSum, ReduceL1 (terms q, |q|) and ReduceSumSquare (q * q): the sum of the terms is exact at
    frac fx (2 fx for squares) and is requantized to the output's calibrated frac fy (attrs in_frac = fx,
    out_frac). Plain integer tensors sum exactly (no fracs)."""
    attrs = reduce_attrs(ctx)
    x = ctx.inputs[0]
    if x.frac is None:
        return Lowering(out_fracs=[None], attrs=attrs, absorbed={1})
    out_frac = ctx.out_frac()
    attrs.update({"in_frac": x.frac, "out_frac": out_frac})
    return Lowering(out_fracs=[out_frac], attrs=attrs, absorbed={1})


def lower_to_calibrated(ctx: CompileContext) -> Lowering:
    """A reduction of a fixed-point input to a new scale (ReduceLogSum, ReduceLogSumExp): attrs in_frac = fx
    and out_frac = the output's calibrated frac."""
    x = ctx.inputs[0]
    if x.frac is None:
        ctx.unsupported("needs a fixed-point (float) input")
    attrs = reduce_attrs(ctx)
    attrs.update(in_frac=x.frac, out_frac=ctx.out_frac())
    return Lowering(out_fracs=[attrs["out_frac"]], attrs=attrs, absorbed={1})


def requantized_sum(terms: np.ndarray, attrs: dict, power: int = 1) -> np.ndarray:
    """summed(terms) moved from frac power * in_frac to out_frac (terms: q**power or |q|)."""
    total = summed(terms, attrs)
    return total if "out_frac" not in attrs else requantize(total, power * attrs["in_frac"], attrs["out_frac"])


class ExactReduction:
    """y = numpy_fn over the axes (keepdims per the attribute); frac unchanged, exact."""

    numpy_fn = None

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs=reduce_attrs(ctx), absorbed={1})

    @classmethod
    def run(cls, inputs, attrs, consts):
        x = inputs[0]
        axes = axes_of(x, attrs)
        return [x if axes is None else cls.numpy_fn(x, axis=axes, keepdims=bool(attrs["keepdims"]))]
