import numpy as np

from verifier.fixedpoint import requantize, round_shift
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import quantize_const, weight_frac
from verifier.ops._recurrent import CELL_FRAC, STATE_FRAC, Recurrent, lower_recurrent, run_recurrent

CELL_LIMIT = 1 << 46  # |C| <= 65536 at 2**-30: f * C stays below 2**61


class LSTM(Recurrent):
    """ONNX LSTM (gates i, o, f, c; forward, reverse, bidirectional; layout 0/1; sequence_lens; initial_h /
    initial_c; peepholes; clip) with the default activations Sigmoid, Tanh, Tanh (docs/fixed-point.md,
    "Recurrent ops"; shared steps in _recurrent.py). Per step, with every gate at 2**-15 from its table:
    C = clamp(round_shift(f * C, 15) + i * g, +-2**46) at 2**-30 (both products exact in int64);
    H = round_shift(o * tanh(C), 15). Peepholes P (quantized at their 16-bit frac fp) add
    round_shift(P * C, 30 + fp - A) to the i and f pre-activations (the previous C) and to o's (the new C).
    Y and Y_h at 2**-15; Y_c requantized to its calibrated frac. input_forget=1 is refused."""

    gates = 4

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if int(ctx.attr("input_forget", 0)):
            ctx.unsupported("input_forget=1")
        peepholes = ctx.inputs[7] if len(ctx.inputs) > 7 else None
        if peepholes is not None and not peepholes.is_const:
            ctx.unsupported("peepholes (P) computed at run time")
        lowering = lower_recurrent(ctx, 4, ["Sigmoid", "Tanh", "Tanh"])
        if peepholes is not None and np.any(peepholes.value):
            value = np.asarray(peepholes.value, dtype=np.float64)
            frac = weight_frac(value)
            for d in range(lowering.attrs["directions"]):
                lowering.consts[f"p{d}"] = quantize_const(value[d].reshape(3, -1), frac, 16)
            lowering.attrs["peephole_shift"] = CELL_FRAC + frac - lowering.attrs["acc_frac"]
            if lowering.attrs["peephole_shift"] < 0:
                ctx.unsupported("peepholes at a scale coarser than the gates' accumulator")
        initial_c = ctx.inputs[6] if len(ctx.inputs) > 6 else None
        if initial_c is not None:
            if initial_c.frac is None or initial_c.frac > CELL_FRAC:
                ctx.unsupported("initial_c must be a fixed-point tensor")
            lowering.attrs["in_frac6"] = initial_c.frac
        if len(ctx.output_names) > 2:
            if ctx.output_names[2]:
                lowering.attrs["cell_out_frac"] = ctx.out_frac(2)
            lowering.out_fracs.append(lowering.attrs.get("cell_out_frac"))
        lowering.absorbed |= {7} if peepholes is not None else set()
        return lowering

    @staticmethod
    def run(inputs, attrs, consts):
        hidden = attrs["hidden"]

        def step(cell, xw_t, h, c):
            pre = xw_t + cell.recurrent(h)
            peepholes = consts.get(f"p{cell.direction}")
            if peepholes is not None:  # i and f see the previous C
                pre[:, :hidden] += round_shift(peepholes[0] * c, attrs["peephole_shift"])
                pre[:, 2 * hidden:3 * hidden] += round_shift(peepholes[2] * c, attrs["peephole_shift"])
            i, f = cell.gate("sigmoid", pre[:, :hidden]), cell.gate("sigmoid", pre[:, 2 * hidden:3 * hidden])
            g = cell.gate("tanh", pre[:, 3 * hidden:])
            c = np.clip(round_shift(f * c, STATE_FRAC) + i * g, -CELL_LIMIT, CELL_LIMIT)
            if peepholes is not None:  # o sees the new C
                pre[:, hidden:2 * hidden] += round_shift(peepholes[1] * c, attrs["peephole_shift"])
            o = cell.gate("sigmoid", pre[:, hidden:2 * hidden])
            return round_shift(o * cell.gate("tanh", c, CELL_FRAC), STATE_FRAC), c

        y, y_h, y_c = run_recurrent(inputs, attrs, consts, step, cell_state=True)
        outputs = [y, y_h]
        if "cell_out_frac" in attrs:
            outputs.append(requantize(y_c, CELL_FRAC, attrs["cell_out_frac"]))
        return outputs
