import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints, reshaped
from verifier.ops._ranges import of_first_input


class Unsqueeze:
    """Insert size-1 axes at the given positions of the output; values and frac unchanged."""

    range_bits = staticmethod(of_first_input)  # (its values are its input's: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        axes = const_ints(ctx, 1, "axes") if len(ctx.inputs) > 1 else ctx.attr("axes")
        if axes is None:
            ctx.unsupported("axes computed at run time")
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs={"axes": [int(a) for a in axes]}, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        rank = x.ndim + len(attrs["axes"])
        return [np.expand_dims(x, tuple(sorted(a % rank for a in attrs["axes"])))]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None):
        """run for an input of this shape (interpreter replays): the output shape worked out once."""
        return reshaped(Unsqueeze.run, shapes[0], attrs, consts)
