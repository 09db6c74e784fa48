from verifier.fixedpoint import round_shift
from verifier.ops import CompileContext, Lowering
from verifier.ops._recurrent import STATE_FRAC, Recurrent, lower_recurrent, run_recurrent


class GRU(Recurrent):
    """ONNX GRU (gates z, r, h; forward, reverse, bidirectional; layout 0/1; sequence_lens; initial_h; clip;
    linear_before_reset 0 or 1 - torch exports 1) with the default activations Sigmoid, Tanh
    (docs/fixed-point.md, "Recurrent ops"; shared steps in _recurrent.py). Per step, gates at 2**-15:
    linear_before_reset=1: h~ = tanh(X Wh + Wbh + round_shift(r * (H Rh + Rbh), 15));
    linear_before_reset=0: h~ = tanh(X Wh + Wbh + round_shift(r * H, 15) Rh + Rbh);
    H = round_shift((2**15 - z) * h~ + z * H, 15). Y and Y_h at 2**-15."""

    gates = 3

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        lowering = lower_recurrent(ctx, 3, ["Sigmoid", "Tanh"], headroom=STATE_FRAC)
        lowering.attrs["linear_before_reset"] = int(ctx.attr("linear_before_reset", 0))
        return lowering

    @staticmethod
    def run(inputs, attrs, consts):
        hidden, before_reset = attrs["hidden"], attrs["linear_before_reset"]

        def step(cell, xw_t, h, c):
            recurrent = cell.recurrent(h)
            z = cell.gate("sigmoid", xw_t[:, :hidden] + recurrent[:, :hidden])
            r = cell.gate("sigmoid", xw_t[:, hidden:2 * hidden] + recurrent[:, hidden:2 * hidden])
            if before_reset:
                reset = round_shift(r * recurrent[:, 2 * hidden:], STATE_FRAC)
            else:
                reset = cell.recurrent(round_shift(r * h, STATE_FRAC), slice(2 * hidden, None))
            candidate = cell.gate("tanh", xw_t[:, 2 * hidden:] + reset)
            return round_shift(((1 << STATE_FRAC) - z) * candidate + z * h, STATE_FRAC), None

        return run_recurrent(inputs, attrs, consts, step)
