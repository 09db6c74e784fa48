from verifier.ops import CompileContext, Lowering
from verifier.ops._ranges import of_first_input


class Identity:
    """y = x (kept only where a graph output is an alias of another tensor)."""

    range_bits = staticmethod(of_first_input)  # (its values are its input's: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[ctx.inputs[0].frac])

    @staticmethod
    def run(inputs, attrs, consts):
        return [inputs[0]]
