"""Compile-time fusion of Log(Sigmoid(x)) into one LogSigmoid table (verifier/compiler/fuse_tables.py):
torch's LogSigmoid export then rounds once, within 0.5 output step of ln(sigmoid(x)) everywhere, where
the two-table chain loses many steps for x far below 0."""

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from verifier import InferenceSession, compile_model

RNG = np.random.default_rng(3)
CALIBRATION = {"x": RNG.normal(0, 4.0, (64, 32)).astype(np.float32)}


def exact_log_sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def torch_log_sigmoid() -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.LogSigmoid().eval(), (torch.zeros(4, 32),), buffer, opset_version=17,
                          dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return onnx.load_from_string(buffer.getvalue())


def sigmoid_log_graph(expose_sigmoid: bool) -> onnx.ModelProto:
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Log", ["s"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 32])]
    if expose_sigmoid:
        outputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, [None, 32]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 32])], outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def steps_of_error(program, x):
    x_frac, y_frac = program.inputs[0].frac, program.outputs[0].frac
    x = on_input_grid(x, x_frac)  # no input rounding
    got = InferenceSession(program).run_fixed({"x": x}).outputs["y"].astype(np.float64)
    return np.abs(got - exact_log_sigmoid(x) * 2.0**y_frac)


def test_torch_log_sigmoid_export_is_log_of_sigmoid_and_compiles_to_one_table():
    model = torch_log_sigmoid()
    assert [n.op_type for n in model.graph.node] == ["Sigmoid", "Log"]
    program = compile_model(model, calibration=CALIBRATION)
    assert [node.op for node in program.nodes] == ["LogSigmoid"]


def test_fused_log_sigmoid_is_within_half_an_output_step_of_ln_sigmoid_over_the_whole_input_range():
    program = compile_model(torch_log_sigmoid(), calibration=CALIBRATION)
    limit = 32767 * 2.0**-program.inputs[0].frac
    x = np.linspace(-limit, limit, 32 * 512).reshape(-1, 32)
    err = steps_of_error(program, x)
    representable = np.abs(exact_log_sigmoid(x) * 2.0**program.outputs[0].frac) <= 32767
    assert err[representable].max() <= 0.5 + 1e-9


def test_fusion_removes_the_loss_of_the_two_table_chain_near_x_minus_8():
    x = np.linspace(-9, -7, 32 * 8).reshape(-1, 32)
    fused = compile_model(sigmoid_log_graph(expose_sigmoid=False), calibration=CALIBRATION)
    chained = compile_model(sigmoid_log_graph(expose_sigmoid=True), calibration=CALIBRATION)
    assert [n.op for n in chained.nodes] == ["Sigmoid", "Log"]
    assert steps_of_error(fused, x).max() <= 0.5 + 1e-9
    fused_error = steps_of_error(fused, x).max() * 2.0**-fused.outputs[0].frac
    chained_error = steps_of_error(chained, x).max() * 2.0**-chained.outputs[0].frac
    assert chained_error > 4 * fused_error  # the chain rounds sigmoid to 2**-14 first: what the fusion buys


def _ort(model, x):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_fused_log_sigmoid_matches_onnxruntime_within_half_a_step_plus_input_rounding_and_its_float_error():
    model = sigmoid_log_graph(expose_sigmoid=False)
    program = compile_model(model, calibration=CALIBRATION)
    x = RNG.normal(0, 4.0, (16, 32)).astype(np.float32)
    (got,), (want,) = InferenceSession(program).run(None, {"x": x}), _ort(model, x)  # |d/dx ln sigmoid| <= 1
    input_half_step, output_step = 2.0 ** -(program.inputs[0].frac + 1), 2.0 ** -program.outputs[0].frac
    onnxruntime_own_error = np.abs(want - exact_log_sigmoid(x))  # its float32 Sigmoid is ~1e-3 off near x = -12
    assert np.all(np.abs(got - want) <= 0.5 * output_step + input_half_step + onnxruntime_own_error + 1e-6)


def test_sigmoid_read_by_another_consumer_is_not_fused_and_both_outputs_keep_their_bounds():
    model = sigmoid_log_graph(expose_sigmoid=True)
    program = compile_model(model, calibration=CALIBRATION)
    assert [n.op for n in program.nodes] == ["Sigmoid", "Log"]
    x = on_input_grid(RNG.normal(0, 4.0, (16, 32)), program.inputs[0].frac)
    y, s = InferenceSession(program).run(None, {"x": x})
    want_s, want_y = np.exp(exact_log_sigmoid(x)), exact_log_sigmoid(x)
    s_half_step = 2.0 ** -(program.fracs["s"] + 1)
    assert np.abs(s - want_s).max() <= s_half_step * (1 + 1e-6)
    representable = want_s > 2 * s_half_step  # sigmoid rounds to >= 1 step: its log is finite
    log_budget = 0.5 * 2.0 ** -program.fracs["y"] + -np.log1p(-s_half_step / want_s[representable]) + 1e-6
    assert np.all(np.abs(y - want_y)[representable] <= log_budget)


def on_input_grid(x, frac):
    return (np.round(x * 2.0**frac) * 2.0**-frac).astype(np.float32)


def test_fused_program_survives_its_bytes_and_gives_the_same_commitment():
    from verifier.program import Program

    program = compile_model(torch_log_sigmoid(), calibration=CALIBRATION)
    again = compile_model(torch_log_sigmoid(), calibration=CALIBRATION)
    restored = Program.from_bytes(program.to_bytes())
    assert again.hash == program.hash == restored.hash
    x = CALIBRATION["x"][:8]
    assert len({InferenceSession(p).run_fixed({"x": x}).commitment for p in (program, again, restored)}) == 1
