from verifier.ops import CompileContext, Lowering


class Not:
    """Boolean negation of a plain integer (0/1) tensor: y = (x == 0) as int64."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if ctx.inputs[0].frac is not None:
            ctx.unsupported("boolean op on a fixed-point tensor")
        return Lowering(out_fracs=[None])

    @staticmethod
    def run(inputs, attrs, consts):
        return [(inputs[0] == 0).astype("int64")]
