from verifier.ops import CompileContext, Lowering
from verifier.ops._ranges import of_first_input


class Transpose:
    """Permute axes (default: reverse them); values and frac unchanged."""

    range_bits = staticmethod(of_first_input)  # (its values are its input's: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        perm = ctx.attr("perm")
        attrs = {} if perm is None else {"perm": [int(p) for p in perm]}
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs=attrs)

    @staticmethod
    def run(inputs, attrs, consts):
        return [inputs[0].transpose(attrs.get("perm"))]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None):
        """run, called straight from a replay (no shape to work out: a transposed view)."""
        perm = attrs.get("perm")
        return lambda inputs: [inputs[0].transpose(perm)]
