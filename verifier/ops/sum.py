from verifier.ops import CompileContext, Lowering
from verifier.ops._binary import bind_sum, lower_sum, run_sum
from verifier.ops._ranges import requantized


class Sum:
    """y = requantize(sum_i (x_i << (c - f_i)), c, fy), c = max(f_i, fy); n-ary Add with broadcasting."""

    range_bits = staticmethod(requantized)  # (_ranges.py)

    fuses_relu = True  # run_sum applies attrs["relu"]

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_sum(ctx, [1] * len(ctx.inputs))

    @staticmethod
    def run(inputs, attrs, consts):
        return run_sum(inputs, attrs, consts)

    bind = staticmethod(bind_sum)  # (interpreter replays)
