from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints, reshaped
from verifier.ops._ranges import of_first_input


class Squeeze:
    """Drop the given size-1 axes (all size-1 axes when none are given); values and frac unchanged."""

    range_bits = staticmethod(of_first_input)  # (its values are its input's: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        axes = const_ints(ctx, 1, "axes") if len(ctx.inputs) > 1 else ctx.attr("axes")
        if len(ctx.inputs) > 1 and ctx.inputs[1] is not None and axes is None:
            ctx.unsupported("axes computed at run time")
        attrs = {} if axes is None else {"axes": [int(a) for a in axes]}
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs=attrs, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        axes = attrs.get("axes")
        if axes is None:
            return [x.squeeze()]
        return [x.squeeze(axis=tuple(a % x.ndim for a in axes))]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None):
        """run for an input of this shape (interpreter replays): the output shape worked out once."""
        return reshaped(Squeeze.run, shapes[0], attrs, consts)
