"""Shared by the Reduce* ops: axes (attribute before opset 18, constant input from 18) and the exact reductions."""

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
