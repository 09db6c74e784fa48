"""Axes handling shared by the Reduce* ops (attribute before opset 18, constant input from 18)."""

from verifier.ops import CompileContext
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
