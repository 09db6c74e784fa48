from verifier.ops import CompileContext, Lowering
from verifier.ops._recurrent import lower_recurrent, recurrent_cost, recurrent_output_size, run_recurrent


class RNN:
    """ONNX RNN (forward, reverse, bidirectional; layout 0/1; sequence_lens; initial_h; clip) with the default
    activation Tanh (docs/fixed-point.md, "Recurrent ops"; shared steps in _recurrent.py): per step
    H = tanh(X W + Wb + H R + Rb) from its table, at 2**-15. Y and Y_h at 2**-15."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_recurrent(ctx, 1, ["Tanh"])

    output_size_from_shapes = True

    @staticmethod
    def run(inputs, attrs, consts):
        def step(cell, xw_t, h, c):
            return cell.gate("tanh", xw_t + cell.recurrent(h)), None

        return run_recurrent(inputs, attrs, consts, step)

    @staticmethod
    def cost(shapes, attrs, consts):
        return recurrent_cost(shapes, attrs, consts, gates=1)

    @staticmethod
    def output_size(inputs, attrs, consts):
        return recurrent_output_size(inputs, attrs, consts, gates=1)
