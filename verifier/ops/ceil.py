from verifier.ops import CompileContext, Lowering
from verifier.ops._rounding import lower_rounding, rounded


class Ceil:
    """y = ceil(x) on the exact real value q * 2**-f: computed on q with shifts and a comparison with the
    remainder, back at frac f (saturated); exact. Plain integers are unchanged."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_rounding(ctx)

    @staticmethod
    def run(inputs, attrs, consts):
        return [rounded(inputs[0], attrs, "ceil")]
