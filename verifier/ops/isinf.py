import numpy as np

from verifier.ops import CompileContext, Lowering


class IsInf:
    """Integers are never infinite (feeds with inf are refused; results saturate): y = 0, plain int64."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[None])

    @staticmethod
    def run(inputs, attrs, consts):
        return [np.zeros(inputs[0].shape, dtype=np.int64)]
