from verifier.fixedpoint import frac_for_range
from verifier.nonlinear.exp_log import softmax
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import kernel_path, or_run
from verifier.ops._softmax import bind_fast_softmax, fast_softmax, lower_softmax, run_on_axis
from verifier.ops._ranges import requantized


class Softmax:
    """Along `axis` (docs/fixed-point-nonlinear.md, "Softmax"): t = max(q) - q >= 0;
    e = exp_neg(t, f_in) (exp(-t * 2**-f_in) at 2**-30, by range reduction over the spec tables, exactly
    2**30 for the maximum); y = rounding_divide(e * 2**f_out, sum(e)), saturated. f_out = 14 (1.0 fits).
    Error: at most 0.501 output step from the exact softmax of the input's exact values.
    Opset < 13 flattens the input to 2-D at `axis` first (the old ONNX semantics)."""

    range_bits = staticmethod(requantized)  # (saturated at 16 bits: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_softmax(ctx, frac_for_range(1.0))

    @staticmethod
    def run(inputs, attrs, consts):
        return [run_on_axis(softmax if kernel_path() == "reference" else fast_softmax, inputs[0], attrs)]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None):
        """run's fast path for an input of these shapes (interpreter replays: _softmax.bind_fast_softmax), the op's
        run where its compiled loop declines."""
        return or_run(bind_fast_softmax(shapes[0], attrs), Softmax, attrs, consts)
