import math

from verifier.ops import CompileContext, Lowering
from verifier.ops._common import reshaped
from verifier.ops._ranges import of_first_input


class Flatten:
    """Reshape to (prod(dims[:axis]), prod(dims[axis:])); values and frac unchanged."""

    range_bits = staticmethod(of_first_input)  # (its values are its input's: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs={"axis": int(ctx.attr("axis", 1))})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        axis = attrs["axis"] % x.ndim if x.ndim and attrs["axis"] < 0 else attrs["axis"]
        return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]  # (not -1: an empty x has a shape)

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None):
        """run for an input of this shape (interpreter replays): the output shape worked out once."""
        return reshaped(Flatten.run, shapes[0], attrs, consts)
