from verifier.ops import CompileContext, Lowering
from verifier.ops._binary import bind_sum, lower_sum, run_sum
from verifier.ops._infinity import flag_infinite_operands, keep_infinite
from verifier.ops._ranges import requantized


class Add:
    """y = requantize((a << (c - fa)) + (b << (c - fb)), c, fy) with c = max(fa, fb, fy): both operands are
    moved exactly to the common frac, added in int64, rounded once and saturated. A constant operand is
    quantized directly at frac c. Plain integer tensors add exactly. An operand that may hold +-inf (a -inf
    attention mask, seen in calibration) keeps it: where it is saturated, y = that saturated value."""

    range_bits = staticmethod(requantized)  # (_ranges.py)

    fuses_relu = True  # run_sum applies attrs["relu"]

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return flag_infinite_operands(ctx, lower_sum(ctx, [1, 1]))

    @staticmethod
    def run(inputs, attrs, consts):
        (total,) = run_sum(inputs, attrs, consts)
        return [keep_infinite(total, inputs, attrs)]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None):
        """run's fast path for inputs of these shapes (interpreter replays: _binary.bind_sum), where no operand may
        hold +-inf."""
        return None if attrs.get("infinite") else bind_sum(shapes, attrs, consts)
