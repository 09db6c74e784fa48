from verifier.ops import CompileContext, Lowering
from verifier.ops._recurrent import Recurrent, lower_recurrent, run_recurrent


class RNN(Recurrent):
    """ONNX RNN (forward, reverse, bidirectional; layout 0/1; sequence_lens; initial_h; clip) with the default
    activation Tanh (docs/fixed-point.md, "Recurrent ops"; shared steps in _recurrent.py): per step
    H = tanh(X W + Wb + H R + Rb) from its table, at 2**-15. Y and Y_h at 2**-15."""

    gates = 1

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_recurrent(ctx, 1, ["Tanh"])

    @staticmethod
    def run(inputs, attrs, consts):
        def step(cell, xw_t, h, c):
            return cell.gate("tanh", xw_t + cell.recurrent(h)), None

        return run_recurrent(inputs, attrs, consts, step)
