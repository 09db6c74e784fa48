from verifier.ops import CompileContext, Lowering


class GlobalMaxPool:
    """y[n, c] = max of x[n, c, ...], kept as size-1 spatial dims. Output frac = input frac."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[ctx.inputs[0].frac])

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]
