import numpy as np

from verifier.ops import CompileContext, Lowering


class Size:
    """The number of elements, a plain int64 scalar (folded at compile time when the shape is static)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[None])

    reads_only_shapes = True  # (as Shape's)

    @staticmethod
    def run(inputs, attrs, consts):
        return [np.array(inputs[0].size, dtype=np.int64)]
