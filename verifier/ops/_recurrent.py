"""Shared by the recurrent ops (RNN, GRU, LSTM): the constant weights, the gate tables and the loop over
time and directions (docs/fixed-point.md, "Recurrent ops").

Scales come from the cell's own ranges, not from calibration: the hidden state H, every gate and every tanh
lie in [-1, 1] and are held at STATE_FRAC (2**-15). A gate's pre-activation is summed exactly at the
accumulator frac A = max(fx + fw, 15 + fr) (input and recurrent products shifted left to it, the biases
quantized at it), clipped if the node says so, rounded to GATE_FRAC (2**-11, saturated at +-16, where
sigmoid and tanh are within 2**-23 of their limits) and looked up in a correctly rounded 16-bit table.
LSTM's cell state C stays in int64 at CELL_FRAC (2**-30).
"""

from __future__ import annotations

import math

import numpy as np

from verifier import cost
from verifier.fixedpoint import qmax, quantize, requantize, round_shift
from verifier.kernels import gemm, plan_gemm
from verifier.nonlinear.tables import apply_table, build_table, sigmoid, tanh
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import checked_range, kernel_path, prepared, quantize_const, weight_frac

STATE_FRAC = 15
GATE_FRAC = 11
CELL_FRAC = 30
ACC_LIMIT = 1 << 61
STEP_BASE = cost.HEAVY_NODE_BASE  # one time step of one direction: products, tables, the cell (~80 us measured)
GATE_ELEMENT = cost.NONLINEAR // 4  # one gate element: its rounding, its lookup, its share of the cell

FUNCTIONS = {"sigmoid": sigmoid, "tanh": tanh}


def lower_recurrent(ctx: CompileContext, gates: int, activations: list[str], headroom: int = 0) -> Lowering:
    """Compile time, common to the three ops (inputs X, W, R, B, sequence_lens, initial_h, ...): W, R and B
    quantized per direction ("w<d>", "r<d>" transposed for x @ w; "bias_x<d>", "bias_h<d>" at A), the
    sigmoid and tanh tables, the shifts to A. Y and Y_h are produced at STATE_FRAC. `headroom`: bits a cell
    multiplies a recurrent product by (GRU's reset gate) that must still fit int64."""
    x, w, r = ctx.inputs[0], ctx.inputs[1], ctx.inputs[2]
    bias = ctx.inputs[3] if len(ctx.inputs) > 3 else None
    if x.frac is None:
        ctx.unsupported("needs a fixed-point (float) input")
    if not w.is_const or not r.is_const or (bias is not None and not bias.is_const):
        ctx.unsupported("weights computed at run time")
    direction = ctx.attr("direction", "forward")
    directions = 2 if direction == "bidirectional" else 1
    given = [a.lower() for a in ctx.attr("activations", [])]
    if given and given != [a.lower() for a in activations] * directions:
        ctx.unsupported(f"activations {ctx.attr('activations')} (only the default {activations})")
    w_value, r_value = (np.asarray(v.value, dtype=np.float64) for v in (w, r))
    hidden = int(ctx.attr("hidden_size", r_value.shape[-1]))
    if (w_value.ndim != 3 or w_value.shape[:2] != (directions, gates * hidden)
            or r_value.shape != (directions, gates * hidden, hidden)):
        ctx.unsupported(f"W {w_value.shape} / R {r_value.shape} do not fit {directions} direction(s) of "
                        f"{gates} gates of hidden_size {hidden}")
    w_frac, r_frac = weight_frac(w_value), weight_frac(r_value)
    acc_frac = max(x.frac + w_frac, STATE_FRAC + r_frac)
    attrs = {"hidden": hidden, "directions": directions, "reverse": int(direction == "reverse"),
             "layout": int(ctx.attr("layout", 0)), "acc_frac": acc_frac,
             "x_shift": acc_frac - x.frac - w_frac, "h_shift": acc_frac - STATE_FRAC - r_frac}
    for shift, k in ((attrs["x_shift"], w_value.shape[2]), (attrs["h_shift"], hidden)):
        if (k * qmax(16) ** 2) << shift >= ACC_LIMIT >> headroom:
            ctx.unsupported(f"the input and recurrent products' scales are {shift} bits apart")
    b_value = np.zeros((directions, 2 * gates * hidden)) if bias is None else np.asarray(bias.value, np.float64)
    consts = {}
    for d in range(directions):
        consts[f"w{d}"] = quantize_const(w_value[d].T, w_frac, 16)
        consts[f"r{d}"] = quantize_const(r_value[d].T, r_frac, 16)
        consts[f"bias_x{d}"] = quantize_const(b_value[d, :gates * hidden], acc_frac)
        consts[f"bias_h{d}"] = quantize_const(b_value[d, gates * hidden:], acc_frac)
    for name, fn in FUNCTIONS.items():
        attrs[f"lo_{name}"], consts[name] = build_table(fn, GATE_FRAC, STATE_FRAC)
    if ctx.attr("clip") is not None:
        attrs["clip"] = int(min(quantize(float(ctx.attr("clip")), GATE_FRAC), qmax(16)))
    plan = plan_gemm(w_value.shape[2], qmax(16), int(np.max(np.abs(consts["w0"]))) if w_value.size else 0)
    attrs.update(path=plan.path, path_reason=plan.reason)
    initial_h = ctx.inputs[5] if len(ctx.inputs) > 5 else None
    if initial_h is not None:
        outside = initial_h.is_const and float(np.max(np.abs(initial_h.value), initial=0.0)) > 1.0
        if initial_h.frac is None or outside:  # (a run-time one saturates at +-1, the hidden state's range)
            ctx.unsupported("an initial_h outside [-1, 1] (the hidden state's range)")
        attrs["in_frac5"] = initial_h.frac
    names = ctx.output_names
    out_fracs = [STATE_FRAC if names[i] else None for i in range(min(len(names), 2))]
    return Lowering(out_fracs=out_fracs, attrs=attrs, consts=consts, absorbed={1, 2, 3})


class Cell:
    """What a step needs at run time: the gate functions and the recurrent product of one direction."""

    def __init__(self, consts: dict, attrs: dict, direction: int):
        self.consts, self.attrs, self.direction = consts, attrs, direction
        self.path = kernel_path()
        self.r = prepared(consts[f"r{direction}"])
        self.bias_h = consts[f"bias_h{direction}"]

    def recurrent(self, h: np.ndarray, columns: slice | None = None) -> np.ndarray:
        """H R^T + Rb at the accumulator frac (only the gate `columns` when given)."""
        if columns is None:
            product = gemm(h, self.r, a_bound=qmax(16), path=self.path)
            return (product << self.attrs["h_shift"]) + self.bias_h
        product = gemm(h, self.r.values[:, columns], a_bound=qmax(16), b_bound=self.r.bound, path=self.path)
        return (product << self.attrs["h_shift"]) + self.bias_h[columns]

    def gate(self, name: str, pre: np.ndarray, frac: int | None = None) -> np.ndarray:
        """sigmoid or tanh, at STATE_FRAC, of a pre-activation at the accumulator frac (or `frac`); the
        node's clip applies to the pre-activations of the gates."""
        q = requantize(pre, self.attrs["acc_frac"] if frac is None else frac, GATE_FRAC)
        if "clip" in self.attrs and frac is None:
            q = np.clip(q, -self.attrs["clip"], self.attrs["clip"], out=q)
        return apply_table(q, self.attrs[f"lo_{name}"], self.consts[name])


def run_recurrent(inputs, attrs, consts, step, cell_state: bool = False) -> list[np.ndarray]:
    """Y, Y_h (and the final cell state at CELL_FRAC when `cell_state`) of every direction.
    step(cell, xw_t, h, c) -> (h, c) advances one time step; xw_t is X_t W^T + Wb at the accumulator frac."""
    x = inputs[0]
    features, hidden = consts["w0"].shape[0], attrs["hidden"]
    if x.ndim != 3 or x.shape[2] != features:
        raise ValueError(f"recurrent op: input of shape {x.shape} does not fit weights of {features} features")
    checked_range(x)
    x = x.transpose(1, 0, 2) if attrs["layout"] else x  # (sequence, batch, features)
    seq, batch = x.shape[:2]
    lengths = _lengths(inputs[4] if len(inputs) > 4 else None, seq, batch)
    directions = attrs["directions"]
    y = np.zeros((seq, directions, batch, hidden), dtype=np.int64)
    last_h = np.zeros((directions, batch, hidden), dtype=np.int64)
    last_c = np.zeros((directions, batch, hidden), dtype=np.int64)
    for d in range(directions):
        cell = Cell(consts, attrs, d)
        xw = gemm(x.reshape(seq * batch, features), prepared(consts[f"w{d}"]), a_bound=qmax(16), path=cell.path)
        xw = (xw.reshape(seq, batch, -1) << attrs["x_shift"]) + consts[f"bias_x{d}"]
        h = _initial(inputs, 5, d, batch, hidden, attrs, STATE_FRAC)
        c = _initial(inputs, 6, d, batch, hidden, attrs, CELL_FRAC) if cell_state else None
        backwards = attrs["reverse"] or d == 1
        for t in (range(seq - 1, -1, -1) if backwards else range(seq)):
            new_h, new_c = step(cell, xw[t], h, c)
            if lengths is None:
                h, c = new_h, new_c
                y[t, d] = h
            else:
                live = (t < lengths)[:, None]
                h = np.where(live, new_h, h)
                c = None if c is None else np.where(live, new_c, c)
                y[t, d] = np.where(live, new_h, 0)
        last_h[d] = h
        if cell_state:
            last_c[d] = c
    if attrs["layout"]:
        y, last_h, last_c = y.transpose(2, 0, 1, 3), last_h.transpose(1, 0, 2), last_c.transpose(1, 0, 2)
    return [y, last_h] + ([last_c] if cell_state else [])


def _lengths(sequence_lens, seq: int, batch: int) -> np.ndarray | None:
    if sequence_lens is None:
        return None
    lengths = np.asarray(sequence_lens, dtype=np.int64).reshape(-1)
    if lengths.shape != (batch,) or lengths.min(initial=0) < 0 or lengths.max(initial=0) > seq:
        raise ValueError(f"sequence_lens {lengths.tolist()} do not fit a batch of {batch} sequences of {seq} steps")
    return None if np.all(lengths == seq) else lengths


def _initial(inputs, index: int, direction: int, batch: int, hidden: int, attrs: dict, frac: int) -> np.ndarray:
    """initial_h (saturated to the hidden state's 16 bits) / initial_c of one direction at `frac`, from their own
    frac (attrs f"in_frac{index}"); zeros when absent."""
    state = inputs[index] if len(inputs) > index else None
    if state is None:
        return np.zeros((batch, hidden), dtype=np.int64)
    state = state.transpose(1, 0, 2) if attrs["layout"] else state
    if state.shape != (attrs["directions"], batch, hidden):
        raise ValueError(f"recurrent op: initial state of shape {state.shape}, expected "
                         f"{(attrs['directions'], batch, hidden)}")
    own = attrs[f"in_frac{index}"]
    if frac == STATE_FRAC:
        return requantize(state[direction], own, STATE_FRAC)
    return round_shift(state[direction], own - frac)


class Recurrent:
    """What RNN, GRU and LSTM share beyond the steps: the cost and output size of `gates` gates."""

    gates = None
    output_size_from_shapes = True

    @classmethod
    def cost(cls, shapes, attrs, consts):
        return recurrent_cost(shapes, attrs, consts, cls.gates)

    @classmethod
    def output_size(cls, inputs, attrs, consts):
        return recurrent_output_size(inputs, attrs, consts, cls.gates)


def recurrent_cost(shapes, attrs, consts, gates: int) -> int:
    """Units: the products' MACs (float path), STEP_BASE per time step and direction, GATE_ELEMENT per gate
    element, one pass over input and outputs."""
    x = shapes[0]
    seq, batch = (int(x[1]), int(x[0])) if attrs["layout"] else (int(x[0]), int(x[1]))
    features, hidden, directions = int(consts["w0"].shape[0]), attrs["hidden"], attrs["directions"]
    steps = seq * directions
    macs = steps * batch * gates * hidden * (features + hidden)
    gate_elements = steps * batch * gates * hidden
    elements = math.prod(int(d) for d in x) + steps * batch * hidden * 3
    return (macs * cost.FLOAT_MAC + steps * STEP_BASE + gate_elements * GATE_ELEMENT + elements * cost.ARITH)


def recurrent_output_size(inputs, attrs, consts, gates: int) -> int:
    """The largest buffer: the input products of every step, or Y."""
    x = inputs[0].shape
    steps_batch = int(x[0]) * int(x[1])
    return steps_batch * max(gates * attrs["hidden"], attrs["directions"] * attrs["hidden"])
