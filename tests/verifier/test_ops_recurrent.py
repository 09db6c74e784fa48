"""RNN, GRU and LSTM (docs/fixed-point.md, "Recurrent ops") against onnxruntime on inputs on the program's
grid: every direction, sequence_lens, initial states, clip, GRU's linear_before_reset, LSTM's peepholes,
batch-first layout (against the onnx reference evaluator: onnxruntime refuses layout=1); the fast and the
reference paths agree bit for bit; torch's nn.LSTM / nn.GRU / nn.RNN export and match; what is refused is
named. The gates' inputs are rounded to 2**-11 each step, so the states carry ~1e-4 of error per step that
the recurrence mixes: the bound below is the measured worst case (9.1e-4) with margin."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from test_torch_layers import export
from verifier import InferenceSession, compile_model
from verifier.errors import UnsupportedOpError

STATE_ERROR = 1.5e-3  # absolute, on states in [-1, 1] (and on LSTM's cell state)
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def recurrent_model(op, direction="forward", seq=7, batch=3, features=8, hidden=16, lengths=False, initial=False,
                    peepholes=False, layout=0, seed=0, **attrs):
    rng = np.random.default_rng(seed)
    gates, dirs = GATES[op], 2 if direction == "bidirectional" else 1
    weights = {"W": rng.standard_normal((dirs, gates * hidden, features)) * 0.5,
               "R": rng.standard_normal((dirs, gates * hidden, hidden)) * 0.5,
               "B": rng.standard_normal((dirs, 2 * gates * hidden)) * 0.3}
    x_shape = [batch, seq, features] if layout else [seq, batch, features]
    state = [batch, dirs, hidden] if layout else [dirs, batch, hidden]
    feeds = {"x": (rng.standard_normal(x_shape) * 2).astype(np.float32)}
    names, inputs = ["x", "W", "R", "B"], [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)]
    names.append("lens" if lengths else "")
    if lengths:
        feeds["lens"] = rng.integers(1, seq + 1, batch).astype(np.int32)
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [batch]))
    for name, wanted in (("h0", initial), ("c0", initial and op == "LSTM")):
        names.append(name if wanted else "")
        if wanted:
            feeds[name] = rng.uniform(-0.9, 0.9, state).astype(np.float32) * (2 if name == "c0" else 1)
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, state))
    if peepholes:
        names.append("P")
        weights["P"] = rng.standard_normal((dirs, 3 * hidden)) * 0.3
    while names[-1] == "":
        names.pop()
    outputs = ["y", "y_h"] + (["y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, names, outputs, hidden_size=hidden, direction=direction, layout=layout, **attrs)
    y_shape = [batch, seq, dirs, hidden] if layout else [seq, dirs, batch, hidden]
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, y_shape if o == "y" else state)
                               for o in outputs],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), feeds


def on_grid(program, feeds):
    return {k: (np.round(v * 2.0**info.frac) * 2.0**-info.frac).astype(v.dtype) if info.frac is not None else v
            for (k, v), info in zip(feeds.items(), program.inputs)}


def check(model, feeds, reference=None):
    program = compile_model(model, calibration=feeds)
    feeds = on_grid(program, feeds)
    ours = InferenceSession(program).run(None, feeds)
    expected = (reference or ort.InferenceSession(model.SerializeToString()).run)(None, feeds)
    for mine, theirs in zip(ours, expected):
        assert mine.shape == theirs.shape
        assert np.max(np.abs(mine - theirs)) <= STATE_ERROR
    fast = InferenceSession(program, path="fast").run_fixed(feeds)
    assert fast.commitment == InferenceSession(program, path="reference").run_fixed(feeds).commitment


CASES = [("forward", {}), ("reverse", {"lengths": True}), ("bidirectional", {"initial": True}),
         ("forward", {"clip": 2.5}), ("bidirectional", {"lengths": True, "initial": True})]


@pytest.mark.parametrize("op", list(GATES))
@pytest.mark.parametrize("direction,options", CASES, ids=[f"{d}-{o}" for d, o in CASES])
def test_recurrent_ops_follow_onnxruntime(op, direction, options):
    check(*recurrent_model(op, direction, **options))


def test_gru_linear_before_reset_as_torch_exports_it():
    check(*recurrent_model("GRU", "forward", lengths=True, initial=True, linear_before_reset=1))


def test_lstm_with_peepholes():
    check(*recurrent_model("LSTM", "bidirectional", initial=True, peepholes=True))


@pytest.mark.parametrize("op", list(GATES))
def test_batch_first_layout_follows_the_onnx_reference(op):
    from onnx.reference import ReferenceEvaluator

    model, feeds = recurrent_model(op, "bidirectional", layout=1, initial=True)
    check(model, feeds, ReferenceEvaluator(model).run)


def test_non_default_activations_are_refused_by_name():
    model, feeds = recurrent_model("RNN", activations=["Relu"])
    with pytest.raises(UnsupportedOpError, match="RNN.*activations \\['Relu'\\]"):
        compile_model(model, calibration=feeds)


def test_input_forget_is_refused_by_name():
    model, feeds = recurrent_model("LSTM", input_forget=1)
    with pytest.raises(UnsupportedOpError, match="LSTM.*input_forget"):
        compile_model(model, calibration=feeds)


class Sequence(nn.Module):
    def __init__(self, kind):
        super().__init__()
        layer = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[kind]
        self.rnn = layer(8, 12, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(24, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_torch_stacked_bidirectional_recurrent_classifiers_match(kind, dynamo):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 8)).astype(np.float32)
    model = export(Sequence(kind).eval(), torch.from_numpy(x), dynamo)
    ops = {node.op_type for node in model.graph.node}
    assert kind in ops or (dynamo and kind == "RNN")  # (the dynamo exporter unrolls nn.RNN into Gemm, Tanh, ...)
    calibration = rng.standard_normal((8, 6, 8)).astype(np.float32)
    fixed = InferenceSession(compile_model(model, calibration={"x": calibration})).run(None, {"x": x})[0]
    reference = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert np.max(np.abs(fixed - reference)) <= 0.01 * np.max(np.abs(reference)) + 1e-3
