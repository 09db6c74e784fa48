from verifier.ops import CompileContext, Lowering


class Neg:
    """y = -q; frac unchanged (the range is symmetric, so no saturation is needed)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[ctx.inputs[0].frac])

    @staticmethod
    def run(inputs, attrs, consts):
        return [-inputs[0]]
