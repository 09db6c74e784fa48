import numpy as np

from verifier.ops import CompileContext, Lowering


class Shape:
    """The input's shape as a plain int64 tensor (start/end slice the dims). Folded at compile time when
    the shape is static; computed here only for symbolic dims such as a dynamic batch."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        attrs = {"start": int(ctx.attr("start", 0))}
        if ctx.attr("end") is not None:
            attrs["end"] = int(ctx.attr("end"))
        return Lowering(out_fracs=[None], attrs=attrs)

    reads_only_shapes = True  # its output depends on its input's shape alone (interpreter: cached per feed shapes)

    @staticmethod
    def run(inputs, attrs, consts):
        return [np.array(inputs[0].shape[attrs["start"] : attrs.get("end")], dtype=np.int64)]

    @staticmethod
    def cost(shapes, attrs, consts):
        return len(shapes[0])
